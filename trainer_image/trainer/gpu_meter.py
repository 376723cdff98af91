"""GPU time, energy and utilisation for one trial, read with NVML (``nvidia-ml-py``, ``pynvml``).

``gpu_seconds`` is what a cluster bills: wall seconds the process holds its GPUs times the GPU count.
Energy is the difference of two ``nvmlDeviceGetTotalEnergyConsumption`` reads (mJ) per GPU, or, on
GPUs without that counter, the integral of sampled power. Without NVML or without CUDA devices the
meter reports the device as ``cpu`` with zero GPU time and energy and never fails the trial.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

SAMPLE_INTERVAL_S = 1.0


@dataclass
class GpuReading:
    """Totals since the meter started."""

    device: str
    gpu_count: int
    wall_seconds: float
    gpu_seconds: float
    energy_j: float
    mean_utilization: float | None
    names: list[str] = field(default_factory=list)


def _uuid_text(value: Any) -> str:
    text = value.decode() if isinstance(value, bytes) else str(value)
    for prefix in ("GPU-", "MIG-"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text.lower()


class GpuMeter:
    """Measure GPU-time/energy for the CUDA devices this process uses (``cuda_uuids``)."""

    def __init__(
        self,
        cuda_uuids: list[str] | None = None,
        names: list[str] | None = None,
        started_at: float | None = None,
    ) -> None:
        self._uuids = [_uuid_text(u) for u in (cuda_uuids or [])]
        self._names = list(names or [])
        self._start = time.monotonic() if started_at is None else started_at
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._energy_start: list[float | None] = []
        self._power_j: list[float] = []
        self._util_sum = 0.0
        self._util_count = 0
        self._last_util: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        if self._uuids:
            self._open_nvml()

    def _open_nvml(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception:  # library missing, no driver: report without NVML
            return
        by_uuid = {}
        try:
            for index in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                by_uuid[_uuid_text(pynvml.nvmlDeviceGetUUID(handle))] = handle
        except Exception:
            return
        handles = [by_uuid[u] for u in self._uuids if u in by_uuid]
        if not handles:
            return
        self._nvml = pynvml
        self._handles = handles
        self._energy_start = [self._energy_mj(h) for h in handles]
        self._power_j = [0.0] * len(handles)
        self._thread = threading.Thread(target=self._sample_loop, name="gpu-meter", daemon=True)
        self._thread.start()

    def _energy_mj(self, handle: Any) -> float | None:
        try:
            return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        except Exception:
            return None

    def _sample_loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            now = time.monotonic()
            self._sample(now - last)
            last = now

    def _sample(self, dt: float) -> None:
        utils = []
        for i, handle in enumerate(self._handles):
            with contextlib.suppress(Exception):
                utils.append(float(self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
            if self._energy_start[i] is None:
                try:
                    watts = self._nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
                    with self._lock:
                        self._power_j[i] += watts * dt
                except Exception:
                    pass
        if utils:
            mean = sum(utils) / len(utils)
            with self._lock:
                self._util_sum += mean
                self._util_count += 1
                self._last_util = mean

    @property
    def gpu_count(self) -> int:
        """CUDA devices the process uses (0 on CPU)."""
        return len(self._uuids)

    @property
    def nvml_available(self) -> bool:
        """Whether NVML matched at least one of the process's devices."""
        return bool(self._handles)

    def current_utilization(self) -> float | None:
        """Latest sampled mean GPU utilisation in percent (None without NVML)."""
        with self._lock:
            return self._last_util

    def read(self) -> GpuReading:
        """Totals so far (the meter keeps running)."""
        wall = time.monotonic() - self._start
        energy = 0.0
        for i, handle in enumerate(self._handles):
            start = self._energy_start[i]
            now = self._energy_mj(handle) if start is not None else None
            if start is not None and now is not None:
                energy += max(0.0, now - start) / 1000.0
            else:
                with self._lock:
                    energy += self._power_j[i]
        with self._lock:
            mean_util = self._util_sum / self._util_count if self._util_count else None
        return GpuReading(
            device="cuda" if self._uuids else "cpu",
            gpu_count=self.gpu_count,
            wall_seconds=wall,
            gpu_seconds=wall * self.gpu_count,
            energy_j=energy,
            mean_utilization=mean_util,
            names=self._names,
        )

    def close(self) -> None:
        """Stop the sampling thread and release NVML."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * SAMPLE_INTERVAL_S)
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._nvml = None
            self._handles = []


def meter_for_torch_device(
    device: Any, started_at: float | None = None, only_current: bool = False
) -> GpuMeter:
    """A meter for the CUDA devices visible to torch when ``device`` is CUDA, else a CPU meter.

    ``started_at`` (a ``time.monotonic()`` value) backdates the start, e.g. to the process start.
    ``only_current``: meter just ``device`` (one rank of a torchrun job, whose node-mates meter the
    other GPUs; the trainer sums the ranks' readings).
    """
    if getattr(device, "type", str(device)) != "cuda":
        return GpuMeter(started_at=started_at)
    import torch

    if only_current:
        indices = [device.index if device.index is not None else torch.cuda.current_device()]
    else:
        indices = list(range(torch.cuda.device_count()))
    uuids, names = [], []
    for index in indices:
        props = torch.cuda.get_device_properties(index)
        uuids.append(str(getattr(props, "uuid", f"index-{index}")))
        names.append(props.name)
    return GpuMeter(uuids, names, started_at=started_at)
