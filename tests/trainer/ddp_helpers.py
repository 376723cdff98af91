"""Launch a trainer command as a 2-process data-parallel job on the CPU (gloo), two ways.

``torchrun``: through ``python -m torch.distributed.run --standalone``, exactly as the PyTorchJob
does, one combined stdout/stderr (what Katib's collector reads). ``launch_ranks``: each rank started
here with torchrun's environment variables, so each rank's exit code and output can be checked.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from tests.trainer.helpers import REPO, Run, child_env


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def torchrun_command(args: list[str], nproc: int = 2, module: str = "trainer") -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc-per-node N -m MODULE ARGS``."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
        "--monitor-interval", "0.2", "-m", module, *args,
    ]  # fmt: skip


def torchrun(args: list[str], nproc: int = 2, timeout: float = 240) -> Run:
    """Run ``args`` under torchrun (one thread per rank) and wait for it."""
    proc = subprocess.run(
        torchrun_command(args, nproc),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        cwd=REPO,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def launch_ranks(
    args: list[str], world: int = 2, module: str = "trainer", timeout: float = 240, **extra: str
) -> list[Run]:
    """Start ``world`` ranks of ``python -m MODULE ARGS`` with torchrun's variables; one Run per rank."""
    port = str(free_port())
    procs = []
    for rank in range(world):
        env = child_env(
            WORLD_SIZE=str(world),
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            LOCAL_WORLD_SIZE=str(world),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
            **extra,
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", module, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=REPO,
            )
        )
    runs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            runs.append(Run(proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return runs


def single_process_evaluation(args: list[str], checkpoint: Path) -> dict[str, float]:
    """Evaluate the model saved in ``checkpoint`` in this process, as one process would, on the CPU."""
    from trainer.cli import build_parser
    from trainer.config import RunConfig
    from trainer.engine import prepare

    cfg = RunConfig.from_args(build_parser().parse_args(args))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the ranks ran (OMP_NUM_THREADS=1): the same CPU kernels
    try:
        torch.manual_seed(cfg.seed)
        task = prepare(cfg, torch.device("cpu"), 0)
        state: dict[str, Any] = torch.load(checkpoint, map_location="cpu", weights_only=True)
        task.model.load_state_dict(state["model"])
        return task.evaluate(task.model)
    finally:
        torch.set_num_threads(threads)


def collectives_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    """One rank of a 2-process gloo group that exercises every ``Dist`` collective and saves the results."""
    import json
    import os

    from trainer.distributed import Dist, dist_env
    from trainer.errors import MissingCacheError, TrainerError

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    dist = Dist(dist_env())
    dist.start(torch.device("cpu"), 60)
    try:
        results: dict[str, Any] = {}
        only_first = torch.arange(6, dtype=torch.float32).view(3, 2) if rank == 0 else torch.zeros((0, 2))
        results["gather_empty_last"] = dist.gather_rows(only_first).tolist()
        uneven = torch.tensor([[rank, 0]] if rank == 0 else [[rank, 1], [rank, 2]], dtype=torch.long)
        results["gather_uneven"] = dist.gather_rows(uneven).tolist()
        results["per_rank"] = dist.per_rank([rank, float("nan") if rank == 1 else 1.0])
        results["sum"], results["max"] = dist.sum([rank + 1, 0.5]), dist.max([rank, -rank])
        results["objects"] = dist.gather_objects({"rank": rank})

        def fails_on_rank_1() -> int:
            if rank == 1:
                raise MissingCacheError("rank 1 cannot read its cache")
            return 7

        try:
            results["agree"] = dist.agree(fails_on_rank_1, "testing")
        except TrainerError as exc:
            results["agree"] = [exc.exit_code, exc.collective, exc.peer_report, str(exc)]
        buffer = torch.full((2,), float(rank))
        dist.broadcast_state([buffer])
        results["broadcast"] = buffer.tolist()
        Path(out_dir, f"{rank}.json").write_text(json.dumps(results))
    finally:
        dist.close()
