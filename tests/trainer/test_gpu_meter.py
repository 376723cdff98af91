"""GPU metering: the NVML-absent path (this machine) and the NVML arithmetic with a fake driver."""

from __future__ import annotations

import sys
import time
import types

import pytest
from trainer.gpu_meter import GpuMeter, meter_for_torch_device


def test_cpu_meter_reports_zero_gpu_time() -> None:
    import torch

    meter = meter_for_torch_device(torch.device("cpu"))
    reading = meter.read()
    meter.close()
    assert (reading.device, reading.gpu_count, reading.gpu_seconds, reading.energy_j) == ("cpu", 0, 0.0, 0.0)
    assert reading.wall_seconds >= 0 and not meter.nvml_available


def test_missing_nvml_library_does_not_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = types.ModuleType("pynvml")

    def fail() -> None:
        raise RuntimeError("NVML Shared Library Not Found")

    broken.nvmlInit = fail  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    meter = GpuMeter(["GPU-aaaa"], ["Fake"], started_at=time.monotonic() - 10)
    reading = meter.read()
    meter.close()
    assert not meter.nvml_available
    assert reading.device == "cuda" and reading.energy_j == 0.0
    assert reading.gpu_seconds == pytest.approx(10, abs=1)  # billed GPU time needs no NVML


def fake_nvml(energy_mj: dict[str, list[float]], power_mw: float = 200_000.0) -> types.ModuleType:
    """A pynvml stand-in: two devices, energy counters that advance on each read."""
    module = types.ModuleType("pynvml")
    uuids = ["GPU-aaaa", "GPU-bbbb"]

    class Util:
        gpu = 50.0

    module.nvmlInit = lambda: None  # type: ignore[attr-defined]
    module.nvmlShutdown = lambda: None  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: len(uuids)  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda i: uuids[i]  # type: ignore[attr-defined]
    module.nvmlDeviceGetUUID = lambda h: h.encode()  # type: ignore[attr-defined]
    module.nvmlDeviceGetUtilizationRates = lambda h: Util()  # type: ignore[attr-defined]
    module.nvmlDeviceGetPowerUsage = lambda h: power_mw  # type: ignore[attr-defined]

    def energy(handle: str) -> float:
        values = energy_mj.get(handle)
        if values is None:
            raise RuntimeError("Not Supported")
        return values.pop(0) if len(values) > 1 else values[0]

    module.nvmlDeviceGetTotalEnergyConsumption = energy  # type: ignore[attr-defined]
    return module


def test_energy_from_counter_delta_for_the_matched_device_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml({"GPU-bbbb": [1_000_000.0, 1_450_000.0]}))
    meter = GpuMeter(["bbbb"], ["Fake H100"])  # torch's UUID has no "GPU-" prefix
    meter._sample(1.0)
    reading = meter.read()
    meter.close()
    assert meter.gpu_count == 1
    assert reading.energy_j == pytest.approx(450.0)
    assert reading.mean_utilization == pytest.approx(50.0)


def test_power_sampling_when_energy_counter_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml({}, power_mw=300_000.0))
    meter = GpuMeter(["GPU-aaaa"])
    meter._sample(2.0)  # 300 W for 2 s
    reading = meter.read()
    meter.close()
    assert reading.energy_j == pytest.approx(600.0)
