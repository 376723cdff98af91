"""Several trials per GPU: N concurrent trial-shaped processes on one device, trials/hour per GPU.

Each group launches N copies of ``python -m trainer.bench_trial_cli`` for one trial (eager, no FLOP
count, no references) at the same time on the same device; each measures its own per-step, evaluation
and checkpoint times under contention and extrapolates its own trial time. Throughput of the group is
the sum of the copies' trials per hour (a copy finishing a trial in T seconds completes 3600 / T trials
an hour). Each copy's GPU meter says whether it saw the card shared and how its energy was split
(``energy_basis``, see :mod:`trainer.gpu_meter`).

Sharing modes: ``plain`` (time-slicing by the driver, what a time-sliced device plugin gives) always;
``mps`` when ``nvidia-cuda-mps-control`` is on the PATH and the device is CUDA: the sweep starts the MPS
control daemon with its own pipe and log folders, runs the groups under it, and stops it (``quit``).
MIG is only reported: the profiles a MIG-enabled card offers (NVML), or "MIG not enabled"; MIG
settings are never changed here. The copies start together, but each times its epochs on its own, so
the timed windows overlap only approximately.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MPS_CONTROL = "nvidia-cuda-mps-control"
TRAINER_ROOT = Path(__file__).resolve().parents[1]  # the folder holding the trainer package


def mig_status() -> list[dict[str, Any]]:
    """Per GPU: its name and MIG state; with MIG enabled, the GPU instance profiles NVML lists (read only)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:
        return [{"gpu": None, "mig": f"unknown (NVML unavailable: {type(exc).__name__})"}]
    out: list[dict[str, Any]] = []
    try:
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
            try:
                enabled = pynvml.nvmlDeviceGetMigMode(handle)[0] == 1
            except Exception:
                out.append({"gpu": name, "mig": "not supported"})
                continue
            if not enabled:
                out.append({"gpu": name, "mig": "MIG not enabled"})
                continue
            profiles = []
            for profile in range(getattr(pynvml, "NVML_GPU_INSTANCE_PROFILE_COUNT", 0)):
                with contextlib.suppress(Exception):
                    info = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, profile)
                    profiles.append(
                        {
                            "slices": int(info.sliceCount),
                            "memory_mib": int(info.memorySizeMB),
                            "instances": int(info.instanceCount),
                        }
                    )
            out.append({"gpu": name, "mig": "enabled", "profiles": profiles})
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    return out


def mps_available(device_type: str) -> bool:
    """Whether an MPS sweep can run: CUDA and the MPS control program on the PATH."""
    return device_type == "cuda" and shutil.which(MPS_CONTROL) is not None


@contextlib.contextmanager
def mps_daemon(folder: Path) -> Iterator[dict[str, str]]:
    """Start the MPS control daemon (own pipe/log folders) and stop it on exit; yields the clients' env."""
    env = {
        "CUDA_MPS_PIPE_DIRECTORY": str(folder / "pipe"),
        "CUDA_MPS_LOG_DIRECTORY": str(folder / "log"),
    }
    for path in env.values():
        Path(path).mkdir(parents=True, exist_ok=True)
    full = {**os.environ, **env}
    subprocess.run([MPS_CONTROL, "-d"], env=full, check=True, timeout=30)
    try:
        yield env
    finally:
        subprocess.run([MPS_CONTROL], input="quit\n", text=True, env=full, timeout=30, check=False)


def child_command(args: dict[str, Any], json_path: Path, work_dir: Path | None = None) -> list[str]:
    """The command of one concurrent trial copy (``work_dir``: its own folder, default the sweep's)."""
    return [
        sys.executable,
        "-m",
        "trainer.bench_trial_cli",
        "--tasks",
        args["task"],
        "--batch-sizes",
        str(args["batch"]),
        "--preset",
        args["preset"],
        "--device",
        args["device"],
        "--steps",
        str(args["steps"]),
        "--modes",
        "eager",
        "--references",
        "none",
        "--no-flops",
        "--work-dir",
        str(work_dir or args["work_dir"]),
        "--json",
        str(json_path),
        "--quiet",
    ]


def run_group(
    n: int, mode: str, args: dict[str, Any], env_extra: dict[str, str], timeout: int
) -> dict[str, Any]:
    """Run ``n`` copies at once; the group's row (per-copy trial seconds, trials/hour per GPU)."""
    folder = Path(args["work_dir"]) / f"sharing-{mode}-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **env_extra,
        "PYTHONPATH": os.pathsep.join([str(TRAINER_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    if args["device"] == "cpu":
        env["OMP_NUM_THREADS"] = "1"  # copies side by side, as the tiny trials run
    paths = [folder / f"copy-{i}.json" for i in range(n)]
    homes = [folder / f"copy-{i}" for i in range(n)]  # own runs and checkpoints, the sweep's cache
    for home in homes:
        home.mkdir(exist_ok=True)
        if not (home / "cache").exists():
            (home / "cache").symlink_to(Path(args["work_dir"]).resolve() / "cache", target_is_directory=True)
    logs = [open(folder / f"copy-{i}.log", "w") for i in range(n)]  # noqa: SIM115 (closed below)
    try:
        procs = [
            subprocess.Popen(child_command(args, path, home), env=env, stdout=log, stderr=subprocess.STDOUT)
            for path, home, log in zip(paths, homes, logs, strict=True)
        ]
        codes = []
        for proc in procs:
            try:
                codes.append(proc.wait(timeout=timeout))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
    finally:
        for log in logs:
            log.close()
    rows = []
    for path in paths:
        with contextlib.suppress(OSError, ValueError):
            rows += [
                r for r in json.loads(path.read_text()) if r.get("kind") == "trial" and not r.get("error")
            ]
    shortest = str(min(int(e) for e in rows[0]["epochs"])) if rows else None
    trial_s = [r["gpu_s_per_trial"][shortest] for r in rows] if shortest else []
    row: dict[str, Any] = {
        "kind": "sharing",
        "mode": mode,
        "concurrent": n,
        "task": args["task"],
        "batch_size": args["batch"],
        "preset": args["preset"],
        "device": rows[0]["device"] if rows else None,
        "epochs": int(shortest) if shortest else None,
        "finished": len(rows),
        "exit_codes": codes,
        "trial_s": trial_s,
        "step_ms": [r["step_ms"] for r in rows],
        "trials_per_hour": sum(3600.0 / t for t in trial_s if t > 0) if len(rows) == n else None,
        "energy_basis": sorted({r.get("energy_basis", "?") for r in rows}),
        "shared_gpu": any(r.get("shared_gpu") for r in rows),
    }
    if len(rows) < n:
        row["error"] = f"{n - len(rows)} of {n} copies did not finish (logs in {folder})"
    return row


def sweep(
    counts: list[int], args: dict[str, Any], device_type: str, timeout: int, on_row: Any = None
) -> list[dict[str, Any]]:
    """Plain sharing for every count, then MPS where available; a ``mig`` row says what MIG offers."""
    from trainer.bench_synthetic import build_cache
    from trainer.bench_trial import SEED_TRIALS, synthetic_sizes

    shape = SEED_TRIALS[args["task"]]
    train_n, eval_n = synthetic_sizes(shape, args["batch"], args["steps"], args["preset"])
    build_cache(
        Path(args["work_dir"]) / "cache", args["task"], args["preset"], train_n, eval_n
    )  # once, before the copies
    rows: list[dict[str, Any]] = []

    def add(row: dict[str, Any]) -> None:
        rows.append(row)
        if on_row is not None:
            on_row(row)

    modes = ["plain"] + (["mps"] if mps_available(device_type) else [])
    for mode in modes:
        context: Any = contextlib.nullcontext({})
        if mode == "mps":
            context = mps_daemon(Path(tempfile.mkdtemp(prefix="mps-", dir=args["work_dir"])))
        try:
            with context as env_extra:
                for n in counts:
                    add(run_group(n, mode, args, env_extra, timeout))
        except (OSError, subprocess.SubprocessError) as exc:
            add(
                {"kind": "sharing", "mode": mode, "concurrent": None, "error": f"{type(exc).__name__}: {exc}"}
            )
    note = (
        "MPS: started and stopped by the sweep"
        if "mps" in modes
        else "MPS: not available (no nvidia-cuda-mps-control or no CUDA)"
    )
    add(
        {
            "kind": "sharing-info",
            "mps": note,
            "mig": mig_status() if device_type == "cuda" else [{"gpu": None, "mig": "no GPU"}],
        }
    )
    return rows


def with_speedups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sharing rows with ``vs_one``: trials/hour relative to one trial alone on the card (plain, N=1)."""
    base = next(
        (
            r["trials_per_hour"]
            for r in rows
            if r.get("kind") == "sharing"
            and r.get("concurrent") == 1
            and r.get("mode") == "plain"
            and r.get("trials_per_hour")
        ),
        None,
    )
    out = []
    for row in rows:
        if row.get("kind") == "sharing" and base and row.get("trials_per_hour"):
            row = {**row, "vs_one": row["trials_per_hour"] / base}
        out.append(row)
    return out
