"""Dense bf16 tensor-core peaks per GPU model, matched precisely by the device name.

The datasheets print the peak *with* 2:4 sparsity; the dense peak (what MFU is counted against) is
half of it. One H100 name does not fit all H100s: the SXM part (989 TFLOP/s) is 30% faster than the
PCIe card (756), so a PCIe card scored against the SXM peak would look 24% worse than it is. A name
that matches no row (or an ambiguous plain "H100") gets no MFU, with a note saying why.

Sources (bf16 tensor TFLOP/s with sparsity, halved here):
NVIDIA H100 Tensor Core GPU datasheet: H100 SXM 1,979; H100 PCIe 1,513; H100 NVL 1,671.
NVIDIA H200 Tensor Core GPU datasheet: H200 SXM 1,979; H200 NVL 1,671.
NVIDIA GH200 Grace Hopper Superchip datasheet: 1,979.
NVIDIA A100 Tensor Core GPU datasheet: A100 (SXM and PCIe, 40 and 80 GB) 624.
NVIDIA A30 datasheet: 330. NVIDIA A10 datasheet: 250. NVIDIA L4 datasheet: 242.
NVIDIA L40S datasheet: 362.05 dense | 733 sparse. NVIDIA L40 datasheet: 181.05 | 362.1.
NVIDIA HGX B200 datasheet: 4,500 per GPU (FP16/BF16, sparse).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# (pattern on the CUDA device name, label, dense bf16 TFLOP/s). First match wins: specific before generic.
PEAK_TABLE: tuple[tuple[str, str, float], ...] = (
    (r"\bGH200\b", "GH200", 989.4),
    (r"\bH200\b.*\bNVL\b", "H200 NVL", 835.5),
    (r"\bH200\b", "H200 SXM", 989.4),
    (r"\bH100\b.*\bNVL\b", "H100 NVL", 835.5),
    (r"\bH100\b.*\bPCIe\b", "H100 PCIe", 756.5),
    (r"\bH100\b.*\b(SXM\w*|HBM3)\b", "H100 SXM", 989.4),
    (r"\bB200\b", "B200", 2250.0),
    (r"\bA100\b", "A100", 312.0),
    (r"\bA30\b", "A30", 165.0),
    (r"\bA10\b", "A10", 125.0),
    (r"\bL40S\b", "L40S", 362.05),
    (r"\bL40\b", "L40", 181.05),
    (r"\bL4\b", "L4", 121.0),
)
MIG_SLICES = 7  # compute slices of a full A100/H100/H200 in MIG mode
_MIG_RE = re.compile(r"\bMIG\s+(\d)g\.\d+gb\b", re.IGNORECASE)


@dataclass(frozen=True)
class Peak:
    """The dense bf16 peak of a device (``flops`` None when unknown) and how it was chosen."""

    flops: float | None
    label: str | None
    note: str


def lookup_peak(device_name: str) -> Peak:
    """The dense bf16 peak FLOP/s of ``device_name`` (a CUDA device name, or ``CPU ...``).

    A MIG slice ``MIG <g>g.<mem>gb`` gets ``g/7`` of its card's peak (its share of the compute slices).
    """
    if device_name.startswith("CPU") or not device_name.strip():
        return Peak(None, None, "no MFU on CPUs")
    for pattern, label, tflops in PEAK_TABLE:
        if re.search(pattern, device_name, re.IGNORECASE):
            flops = tflops * 1e12
            mig = _MIG_RE.search(device_name)
            if mig:
                slices = int(mig.group(1))
                return Peak(
                    flops * slices / MIG_SLICES,
                    f"{label} MIG {slices}g",
                    f"{slices}/{MIG_SLICES} of the {label} peak",
                )
            return Peak(flops, label, f"{label} dense bf16 {tflops:g} TFLOP/s")
    return Peak(
        None,
        None,
        f"no MFU: {device_name!r} is not in the peak table (trainer/bench_peaks.py); "
        "add its dense bf16 peak from the NVIDIA datasheet",
    )


def peak_flops(device_name: str) -> float | None:
    """Dense bf16 peak FLOP/s of a known accelerator (None for CPUs, unknown and ambiguous names)."""
    return lookup_peak(device_name).flops
