"""GPU time, energy and utilisation for one trial, read with NVML (``nvidia-ml-py``, ``pynvml``).

``gpu_seconds`` is what a cluster bills: wall seconds the process holds its GPUs times the GPU count.
Energy is the difference of two ``nvmlDeviceGetTotalEnergyConsumption`` reads (mJ) per GPU, or, on
GPUs without that counter, the integral of sampled power. Without NVML or without CUDA devices the
meter reports the device as ``cpu`` with zero GPU time and energy and never fails the trial.

Shared cards. The energy counter is the whole card's. When other processes run on the same card
(seen with ``nvmlDeviceGetComputeRunningProcesses``), the card's energy is not this trial's alone:
``energy_j`` is then this process's share and the reading says how it was split (``energy_basis``):
``sm-share`` (this process's share of the SM utilisation NVML reports per process,
``nvmlDeviceGetProcessUtilization``), else ``equal-split`` over the processes seen (NVML reports host
PIDs, which a containerised process cannot match to its own), while ``card_energy_j`` keeps the
whole card's. A MIG slice (a ``MIG-...`` UUID, matched through its parent's MIG device handles) has no
energy counter of its own: it gets ``g/7`` of its card's energy (``mig-slices``), the slice's share of
the compute slices, and is always reported as shared.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

SAMPLE_INTERVAL_S = 1.0
MIG_SLICES = 7  # compute slices of a full A100/H100/H200


@dataclass
class GpuReading:
    """Totals since the meter started.

    ``energy_j`` is this process's energy (its share when the card is shared, see ``energy_basis``);
    ``card_energy_j`` the whole cards'; ``shared`` whether another process or MIG slice used a card.
    """

    device: str
    gpu_count: int
    wall_seconds: float
    gpu_seconds: float
    energy_j: float
    mean_utilization: float | None
    names: list[str] = field(default_factory=list)
    card_energy_j: float = 0.0
    shared: bool = False
    energy_basis: str = "exclusive"
    max_processes: int = 0
    sm_share: float | None = None


def _uuid_text(value: Any) -> str:
    text = value.decode() if isinstance(value, bytes) else str(value)
    for prefix in ("GPU-", "MIG-"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text.lower()


@dataclass
class _Device:
    """One metered CUDA device: its NVML handle, the handle its energy is read from, and running sums."""

    handle: Any
    energy_handle: Any
    mig_fraction: float | None = None  # g/7 of a MIG slice, None for a whole card
    energy_start: float | None = None
    power_j: float = 0.0
    own_sm: float = 0.0
    all_sm: float = 0.0
    last_sample_us: int = 0
    max_processes: int = 0


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
        self._devices: list[_Device] = []
        self._pid = os.getpid()
        self._util_sum = 0.0
        self._util_count = 0
        self._last_util: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        if self._uuids:
            self._open_nvml()

    def _mig_devices(self, parent: Any) -> dict[str, _Device]:
        """The MIG slices of ``parent`` by UUID (empty when MIG is off or unsupported)."""
        nvml, found = self._nvml, {}
        try:
            if nvml.nvmlDeviceGetMigMode(parent)[0] != 1:
                return {}
            count = nvml.nvmlDeviceGetMaxMigDeviceCount(parent)
        except Exception:
            return {}
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, index)
                uuid = _uuid_text(nvml.nvmlDeviceGetUUID(handle))
            except Exception:  # an empty slot
                continue
            slices = MIG_SLICES
            with contextlib.suppress(Exception):
                slices = int(nvml.nvmlDeviceGetAttributes(handle).gpuInstanceSliceCount)
            found[uuid] = _Device(handle, parent, mig_fraction=slices / MIG_SLICES)
        return found

    def _open_nvml(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception:  # library missing, no driver: report without NVML
            return
        self._nvml = pynvml
        by_uuid: dict[str, _Device] = {}
        try:
            for index in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                by_uuid[_uuid_text(pynvml.nvmlDeviceGetUUID(handle))] = _Device(handle, handle)
                by_uuid.update(self._mig_devices(handle))
        except Exception:
            by_uuid = {}
        devices = [by_uuid[u] for u in self._uuids if u in by_uuid]
        if not devices:
            self._nvml = None
            return
        self._devices = devices
        for device in devices:
            device.energy_start = self._energy_mj(device.energy_handle)
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

    def _sample_processes(self, device: _Device) -> None:
        """Count the card's compute processes and add up per-process SM utilisation since the last read."""
        nvml = self._nvml
        with contextlib.suppress(Exception):
            running = len(nvml.nvmlDeviceGetComputeRunningProcesses(device.energy_handle))
            with self._lock:
                device.max_processes = max(device.max_processes, running)
        try:
            samples = nvml.nvmlDeviceGetProcessUtilization(device.energy_handle, device.last_sample_us)
        except Exception:  # not supported, or no sample since the last read
            return
        own = sum(float(s.smUtil) for s in samples if int(s.pid) == self._pid)
        total = sum(float(s.smUtil) for s in samples)
        with self._lock:
            device.own_sm += own
            device.all_sm += total
            device.last_sample_us = max([device.last_sample_us, *(int(s.timeStamp) for s in samples)])

    def _sample(self, dt: float) -> None:
        utils = []
        for device in self._devices:
            if device.mig_fraction is None:
                with contextlib.suppress(Exception):
                    utils.append(float(self._nvml.nvmlDeviceGetUtilizationRates(device.handle).gpu))
                self._sample_processes(device)
            if device.energy_start is None:
                try:
                    watts = self._nvml.nvmlDeviceGetPowerUsage(device.energy_handle) / 1000.0
                    with self._lock:
                        device.power_j += watts * dt
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
        return bool(self._devices)

    def current_utilization(self) -> float | None:
        """Latest sampled mean GPU utilisation in percent (None without NVML)."""
        with self._lock:
            return self._last_util

    def _device_energy(self, device: _Device) -> tuple[float, float, str, float | None]:
        """(this process's J, the card's J, basis, SM share) of one device so far."""
        start = device.energy_start
        now = self._energy_mj(device.energy_handle) if start is not None else None
        with self._lock:
            card = max(0.0, now - start) / 1000.0 if start is not None and now is not None else device.power_j
            own_sm, all_sm, processes = device.own_sm, device.all_sm, device.max_processes
        if device.mig_fraction is not None:
            return card * device.mig_fraction, card, "mig-slices", None
        if processes <= 1:
            return card, card, "exclusive", None
        if own_sm > 0 and all_sm > 0:
            share = own_sm / all_sm
            return card * share, card, "sm-share", share
        return card / processes, card, "equal-split", None

    def read(self) -> GpuReading:
        """Totals so far (the meter keeps running)."""
        wall = time.monotonic() - self._start
        own = card = 0.0
        bases, shares = [], []
        for device in self._devices:
            device_own, device_card, basis, share = self._device_energy(device)
            own, card = own + device_own, card + device_card
            bases.append(basis)
            if share is not None:
                shares.append(share)
        with self._lock:
            mean_util = self._util_sum / self._util_count if self._util_count else None
            processes = max((d.max_processes for d in self._devices), default=0)
        shared_bases = sorted({b for b in bases if b != "exclusive"})
        return GpuReading(
            device="cuda" if self._uuids else "cpu",
            gpu_count=self.gpu_count,
            wall_seconds=wall,
            gpu_seconds=wall * self.gpu_count,
            energy_j=own,
            mean_utilization=mean_util,
            names=self._names,
            card_energy_j=card,
            shared=bool(shared_bases),
            energy_basis="+".join(shared_bases) or "exclusive",
            max_processes=processes,
            sm_share=sum(shares) / len(shares) if shares else None,
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
            self._devices = []


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
