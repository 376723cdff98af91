"""The dense bf16 peak table: each GPU model gets its own datasheet peak, unknown names get no MFU."""

from __future__ import annotations

import pytest
from trainer.bench_peaks import lookup_peak, peak_flops


@pytest.mark.parametrize(
    ("name", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", 989.4),  # SXM5
        ("NVIDIA H100 PCIe", 756.5),
        ("NVIDIA H100 NVL", 835.5),
        ("NVIDIA H200", 989.4),
        ("NVIDIA H200 NVL", 835.5),
        ("NVIDIA GH200 480GB", 989.4),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA A100 80GB PCIe", 312.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA L40S", 362.05),
        ("NVIDIA L40", 181.05),
        ("NVIDIA A10", 125.0),
        ("NVIDIA A30", 165.0),
    ],
)
def test_known_models_get_their_own_datasheet_peak(name: str, tflops: float) -> None:
    assert peak_flops(name) == pytest.approx(tflops * 1e12)


def test_pcie_and_nvl_h100_are_not_scored_against_the_sxm_peak() -> None:
    sxm, pcie, nvl = (peak_flops(f"NVIDIA H100 {s}") for s in ("80GB HBM3", "PCIe", "NVL"))
    assert sxm is not None and pcie is not None and nvl is not None
    assert pcie < nvl < sxm


@pytest.mark.parametrize(
    "name", ["NVIDIA H100", "NVIDIA A10G", "NVIDIA GeForce RTX 4090", "Tesla T4", "NVIDIA A1000"]
)
def test_unknown_or_ambiguous_names_get_no_mfu_and_say_why(name: str) -> None:
    peak = lookup_peak(name)
    assert peak.flops is None
    assert "not in the peak table" in peak.note and name in peak.note


def test_cpus_get_no_mfu() -> None:
    assert lookup_peak("CPU Intel Xeon (2 threads)").flops is None


def test_a_mig_slice_gets_its_share_of_the_card_peak() -> None:
    peak = lookup_peak("NVIDIA H100 80GB HBM3 MIG 3g.40gb")
    assert peak.flops == pytest.approx(989.4e12 * 3 / 7)
    assert peak.label == "H100 SXM MIG 3g"
