"""GPU metering: the NVML-absent path (this machine) and the NVML arithmetic with a fake driver."""

from __future__ import annotations

import os
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


class _Sample:
    """One ``nvmlProcessUtilizationSample_t``."""

    def __init__(self, pid: int, sm: float, stamp: int) -> None:
        self.pid, self.smUtil, self.timeStamp = pid, sm, stamp


def test_mig_slice_is_matched_through_its_parent_and_gets_its_slice_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A MIG UUID (the one torch sees) matches a MIG handle; energy is the card's times g/7, marked shared."""
    module = fake_nvml({"GPU-aaaa": [7_000_000.0, 14_000_000.0]})

    class Attributes:
        gpuInstanceSliceCount = 2  # noqa: N815 (NVML's field name)

    module.nvmlDeviceGetMigMode = lambda h: (1, 1) if h == "GPU-aaaa" else (0, 0)  # type: ignore[attr-defined]
    module.nvmlDeviceGetMaxMigDeviceCount = lambda h: 2  # type: ignore[attr-defined]

    def mig_handle(parent: str, index: int) -> str:
        if index == 1:
            raise RuntimeError("Not Found")  # an empty slot
        return "MIG-cccc"

    module.nvmlDeviceGetMigDeviceHandleByIndex = mig_handle  # type: ignore[attr-defined]
    module.nvmlDeviceGetAttributes = lambda h: Attributes()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", module)
    meter = GpuMeter(["MIG-cccc"], ["Fake H100 MIG 2g.20gb"])
    assert meter.nvml_available
    reading = meter.read()
    meter.close()
    assert reading.card_energy_j == pytest.approx(7000.0)
    assert reading.energy_j == pytest.approx(2000.0)  # 2 of 7 compute slices
    assert reading.shared and reading.energy_basis == "mig-slices"


def test_shared_card_energy_is_split_by_this_process_sm_share(monkeypatch: pytest.MonkeyPatch) -> None:
    module = fake_nvml({"GPU-aaaa": [1_000_000.0, 2_000_000.0]})
    module.nvmlDeviceGetComputeRunningProcesses = lambda h: [object(), object()]  # type: ignore[attr-defined]
    pid = os.getpid()
    module.nvmlDeviceGetProcessUtilization = lambda h, since: [  # type: ignore[attr-defined]
        _Sample(pid, 30.0, since + 1),
        _Sample(pid + 1, 90.0, since + 2),
    ]
    monkeypatch.setitem(sys.modules, "pynvml", module)
    meter = GpuMeter(["GPU-aaaa"])
    meter._sample(1.0)
    reading = meter.read()
    meter.close()
    assert reading.shared and reading.energy_basis == "sm-share" and reading.max_processes == 2
    assert reading.sm_share == pytest.approx(0.25)
    assert reading.card_energy_j == pytest.approx(1000.0)
    assert reading.energy_j == pytest.approx(250.0)


def test_shared_card_without_per_process_samples_splits_equally(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a container NVML's host PIDs match nothing: the card's energy is split over the processes seen."""
    module = fake_nvml({"GPU-aaaa": [0.0, 3_000_000.0]})
    module.nvmlDeviceGetComputeRunningProcesses = lambda h: [object()] * 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", module)
    meter = GpuMeter(["GPU-aaaa"])
    meter._sample(1.0)
    reading = meter.read()
    meter.close()
    assert reading.shared and reading.energy_basis == "equal-split"
    assert reading.energy_j == pytest.approx(1000.0) and reading.card_energy_j == pytest.approx(3000.0)


def test_alone_on_the_card_keeps_all_of_its_energy(monkeypatch: pytest.MonkeyPatch) -> None:
    module = fake_nvml({"GPU-aaaa": [0.0, 500_000.0]})
    module.nvmlDeviceGetComputeRunningProcesses = lambda h: [object()]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", module)
    meter = GpuMeter(["GPU-aaaa"])
    meter._sample(1.0)
    reading = meter.read()
    meter.close()
    assert not reading.shared and reading.energy_basis == "exclusive"
    assert reading.energy_j == pytest.approx(500.0) == reading.card_energy_j
