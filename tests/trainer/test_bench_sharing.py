"""Several trials per GPU: the copies' command, speed-ups, MIG listing (fake NVML), a CPU sweep."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from trainer.bench_sharing import child_command, mig_status, mps_available, with_speedups
from trainer.bench_trial_cli import build_parser, main

ARGS = {"task": "mrpc", "batch": 16, "preset": "tiny", "device": "cpu", "steps": 4, "work_dir": "/tmp/w"}


def test_copy_command_is_a_valid_eager_trial_run() -> None:
    command = child_command(ARGS, Path("/tmp/w/copy-0.json"))
    assert command[1:3] == ["-m", "trainer.bench_trial_cli"]
    args = build_parser().parse_args(command[3:])
    assert (args.tasks, args.batch_sizes, args.modes, args.references) == (
        ["mrpc"],
        [16],
        ["eager"],
        ["none"],
    )
    assert args.no_flops and args.quiet and args.json == "/tmp/w/copy-0.json"


def test_speedups_are_relative_to_one_trial_alone() -> None:
    rows = [
        {"kind": "sharing", "mode": "plain", "concurrent": 1, "trials_per_hour": 10.0},
        {"kind": "sharing", "mode": "plain", "concurrent": 4, "trials_per_hour": 25.0},
        {"kind": "sharing", "mode": "mps", "concurrent": 4, "trials_per_hour": 30.0},
        {
            "kind": "sharing",
            "mode": "plain",
            "concurrent": 7,
            "trials_per_hour": None,
            "error": "1 of 7 failed",
        },
    ]
    assert [r.get("vs_one") for r in with_speedups(rows)] == [1.0, 2.5, 3.0, None]


def test_no_mps_without_cuda() -> None:
    assert not mps_available("cpu")


def _fake_nvml(mig_enabled: bool) -> types.ModuleType:
    module = types.ModuleType("pynvml")

    class Profile:
        def __init__(self, slices: int) -> None:
            self.sliceCount, self.memorySizeMB, self.instanceCount = slices, 10_000 * slices, 7 // slices

    def profile_info(handle: str, profile: int) -> Profile:
        if profile >= 3:
            raise RuntimeError("Not Supported")
        return Profile([1, 2, 3][profile])

    module.nvmlInit = lambda: None  # type: ignore[attr-defined]
    module.nvmlShutdown = lambda: None  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: 1  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda i: "gpu0"  # type: ignore[attr-defined]
    module.nvmlDeviceGetName = lambda h: b"NVIDIA H100 80GB HBM3"  # type: ignore[attr-defined]
    module.nvmlDeviceGetMigMode = lambda h: (1, 1) if mig_enabled else (0, 0)  # type: ignore[attr-defined]
    module.NVML_GPU_INSTANCE_PROFILE_COUNT = 8  # type: ignore[attr-defined]
    module.nvmlDeviceGetGpuInstanceProfileInfo = profile_info  # type: ignore[attr-defined]
    module.nvmlDeviceCreateGpuInstance = lambda *a: pytest.fail("MIG settings must never change")  # type: ignore[attr-defined]
    return module


def test_mig_not_enabled_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(False))
    assert mig_status() == [{"gpu": "NVIDIA H100 80GB HBM3", "mig": "MIG not enabled"}]


def test_mig_profiles_are_listed_read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(True))
    (gpu,) = mig_status()
    assert gpu["mig"] == "enabled"
    assert [p["slices"] for p in gpu["profiles"]] == [1, 2, 3]
    assert gpu["profiles"][0] == {"slices": 1, "memory_mib": 10_000, "instances": 7}


@pytest.mark.slow
def test_cpu_sharing_sweep_runs_one_and_two_copies(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    main([
        "--device", "cpu", "--preset", "tiny", "--tasks", "mrpc", "--batch-sizes", "16", "--steps", "4",
        "--modes", "eager", "--references", "none", "--no-flops", "--sharing", "1,2", "--sharing-task", "mrpc",
        "--sharing-batch", "16", "--work-dir", str(tmp_path / "work"), "--json", str(out), "--quiet",
    ])  # fmt: skip
    rows = json.loads(out.read_text())
    sharing = [r for r in rows if r["kind"] == "sharing"]
    assert [(r["mode"], r["concurrent"], r["finished"]) for r in sharing] == [
        ("plain", 1, 1),
        ("plain", 2, 2),
    ]
    for row in sharing:
        assert row["exit_codes"] == [0] * row["concurrent"] and len(row["trial_s"]) == row["concurrent"]
        assert row["trials_per_hour"] == pytest.approx(sum(3600 / t for t in row["trial_s"]))
    copies = tmp_path / "work" / "sharing-plain-2"
    assert (copies / "copy-0" / "runs").is_dir() and (copies / "copy-1" / "runs").is_dir()  # own checkpoints
    info = next(r for r in rows if r["kind"] == "sharing-info")
    assert "MPS: not available" in info["mps"] and info["mig"] == [{"gpu": None, "mig": "no GPU"}]
