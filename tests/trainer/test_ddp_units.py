"""Data parallelism, the parts that need no second process: launch environment, batch split, shards."""

from __future__ import annotations

import argparse

import pytest
import torch
from trainer.cli import build_parser
from trainer.config import RunConfig
from trainer.data import EpochBatchSampler, eval_shard, global_batch_at, steps_per_epoch
from trainer.distributed import Dist, DistEnv, LaunchError, dist_env, shard_bounds
from trainer.engine import _oom_error
from trainer.errors import TrainerError
from trainer.parallel import check_batch_split, default_num_workers
from trainer.vision_task import random_crop_flip

TORCHRUN = {"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"}
MASTER = {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}


def config(task: str = "cifar10", batch: int = 32) -> RunConfig:
    args = build_parser().parse_args(
        ["train", "--task", task, "--learning-rate", "0.1", "--batch-size", str(batch), "--num-epochs", "1"]
    )
    return RunConfig.from_args(args)


def test_single_process_environment_needs_nothing() -> None:
    assert dist_env({}) == DistEnv() and not DistEnv().enabled
    assert dist_env({"WORLD_SIZE": "1", "RANK": "junk"}) == DistEnv()
    env = dist_env({**TORCHRUN, **MASTER})
    assert (env.world_size, env.rank, env.local_rank, env.local_world_size) == (4, 2, 0, 2)
    assert env.enabled and not env.is_main


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"LOCAL_RANK": None}, "LOCAL_RANK is not set; start multi-process trials with torchrun"),
        ({"RANK": "4"}, "RANK=4 must be at least 0, at most 3"),
        ({"WORLD_SIZE": "four"}, "WORLD_SIZE='four' is not an integer"),
        ({"MASTER_PORT": None}, "MASTER_PORT is not set"),
        ({"LOCAL_WORLD_SIZE": "two"}, "LOCAL_WORLD_SIZE='two' is not an integer"),
    ],
)
def test_incomplete_torchrun_environment_is_an_argument_error(change: dict, expected: str) -> None:
    environ = {**TORCHRUN, **MASTER, **change}
    with pytest.raises(LaunchError, match=expected) as caught:
        dist_env({k: v for k, v in environ.items() if v is not None})
    assert caught.value.exit_code == 2


def test_torchrun_environment_without_launcher_fails_in_the_cli(in_process, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    run = in_process(
        ["train", "--task", "sst2", "--learning-rate", "3e-5", "--batch-size", "8", "--num-epochs", "1",
         "--preset", "tiny", "--output-dir", str(tmp_path / "o"), "--checkpoint-dir", str(tmp_path / "c")]
    )  # fmt: skip
    assert run.code == 2 and run.out == ""
    assert "WORLD_SIZE=2 asks for data-parallel training but RANK is not set" in run.err
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_a_launch_error_of_one_rank_only_is_printed_by_that_rank(in_process, tmp_path, monkeypatch) -> None:
    # rank 1 of a node whose pod shows one GPU (nproc-per-node 2): only this rank can say why it stops
    for name, value in {**TORCHRUN, **MASTER, "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    run = in_process(
        ["train", "--task", "sst2", "--learning-rate", "3e-5", "--batch-size", "8", "--num-epochs", "1",
         "--preset", "tiny", "--output-dir", str(tmp_path / "o"), "--checkpoint-dir", str(tmp_path / "c")]
    )  # fmt: skip
    assert run.code == 2 and run.out == ""
    assert run.err.startswith("trainer[rank 1]: python -m trainer train: error: LOCAL_RANK=1 needs GPU 1")


def test_only_rank_0_checks_the_folders_it_alone_writes(in_process, tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")  # a folder below a file cannot be created
    for name, value in {**TORCHRUN, **MASTER, "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)

    def joined(self: Dist, device: torch.device, timeout_s: float = 0) -> None:
        raise TrainerError("joined the process group")

    monkeypatch.setattr(Dist, "start", joined)
    run = in_process(
        ["train", "--task", "sst2", "--learning-rate", "3e-5", "--batch-size", "8", "--num-epochs", "1",
         "--preset", "tiny", "--output-dir", str(blocker / "o"), "--checkpoint-dir", str(blocker / "c")]
    )  # fmt: skip
    # rank 1 never writes there: it goes on to the rendezvous (rank 0 reports the folder, once)
    assert "joined the process group" in run.err and "not a writable directory" not in run.err


@pytest.mark.parametrize(
    ("n", "batch", "world", "min_batch"),
    [(10, 4, 2, 1), (37, 8, 4, 2), (192, 32, 2, 2), (5, 6, 2, 1), (29, 8, 2, 2), (27, 8, 2, 2)],
)
def test_rank_slices_of_each_step_are_the_single_process_batch(
    n: int, batch: int, world: int, min_batch: int
) -> None:
    expected = steps_per_epoch(n, batch, min_batch, world)
    ranks = [
        EpochBatchSampler(n, batch, seed=3, epoch=1, min_batch=min_batch, rank=r, world_size=world).batches()
        for r in range(world)
    ]
    single = EpochBatchSampler(n, batch, seed=3, epoch=1, min_batch=min_batch).global_batches()
    assert all(len(batches) == expected for batches in ranks)  # every rank takes the same number of steps
    for step in range(expected):
        parts = [ranks[r][step] for r in range(world)]
        assert [i for part in parts for i in part] == single[
            step
        ]  # rank order concatenation = the single-process batch
        assert min(map(len, parts)) >= min_batch  # BatchNorm gets at least min_batch per rank
        assert sum(map(len, parts)) == global_batch_at(n, batch, step)
    resumed = EpochBatchSampler(
        n, batch, seed=3, epoch=1, start_step=1, min_batch=min_batch, rank=1, world_size=world
    )
    assert list(resumed) == ranks[1][1:] and len(resumed) == expected - 1


def test_steps_per_epoch_is_unchanged_for_one_process() -> None:
    for n in range(1, 40):
        for batch in (1, 3, 8):
            for min_batch in (1, 2):
                legacy = n // batch + (1 if n % batch > 0 and n % batch >= min_batch else 0)
                assert steps_per_epoch(n, batch, min_batch) == legacy
                assert len(EpochBatchSampler(n, batch, 0, 0, min_batch=min_batch)) == legacy


def test_evaluation_shards_cover_every_example_once_in_order() -> None:
    single = EpochBatchSampler(103, 10, 0, 0, shuffle=False).batches()
    for world in (1, 2, 3, 8, 16):
        shards = [list(eval_shard(103, 10, r, world)) for r in range(world)]
        assert [
            b for shard in shards for b in shard
        ] == single  # same batches, contiguous blocks in rank order
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert [len(eval_shard(3, 1, r, 8)) for r in range(8)].count(0) == 5  # more ranks than batches


def test_shard_bounds_partition() -> None:
    for total in range(0, 30):
        for world in (1, 2, 3, 7):
            bounds = [shard_bounds(total, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == total
            assert all(bounds[r][1] == bounds[r + 1][0] for r in range(world - 1))


def test_batch_size_is_per_process_and_any_size_runs_under_torchrun() -> None:
    """--batch-size is each process's batch (global = batch x WORLD_SIZE): nothing must divide it; only
    image batches of one per CPU process are refused (BatchNorm)."""
    env = DistEnv(world_size=4, rank=0, local_rank=0, local_world_size=4)
    for batch in (3, 30, 33):
        check_batch_split(config(batch=batch), torch.device("cpu"), env)
    with pytest.raises(LaunchError) as caught:
        check_batch_split(config(batch=1), torch.device("cpu"), env)
    assert str(caught.value) == (
        "--batch-size 1 is the batch of each of the 4 CPU processes; BatchNorm needs at least 2 images "
        "per process, so use --batch-size 2 or more"
    )
    check_batch_split(config("sst2", batch=1), torch.device("cpu"), env)  # text has no BatchNorm
    check_batch_split(config(batch=1), torch.device("cpu"), DistEnv())  # one process: anything goes


def test_oom_message_names_the_per_process_and_global_batch() -> None:
    message = str(_oom_error(config(batch=64), torch.cuda.OutOfMemoryError("CUDA out of memory"), 4))
    assert "--batch-size 64 per process (global batch 256 over 4 processes)" in message
    assert "global batch" not in str(_oom_error(config(batch=64), RuntimeError("out of memory")))


def test_rank_slice_gets_the_augmentation_of_its_images() -> None:
    images = torch.randint(0, 255, (10, 3, 8, 8), dtype=torch.uint8)
    whole = random_crop_flip(images, torch.Generator().manual_seed(5))
    parts = [
        random_crop_flip(images[start:stop], torch.Generator().manual_seed(5), within=(start, 10))
        for start, stop in (shard_bounds(10, r, 3) for r in range(3))
    ]
    assert torch.equal(torch.cat(parts), whole)


def test_single_process_collectives_are_identities() -> None:
    dist = Dist()
    dist.start(torch.device("cpu"))  # no process group for one process
    rows = torch.ones((3, 2))
    assert torch.equal(dist.gather_rows(rows), rows)
    assert dist.sum([1.0, 2.0]) == [1.0, 2.0] and dist.max([3.0]) == [3.0]
    assert dist.gather_objects("x") == ["x"] and dist.agree(lambda: 5, "x") == 5
    with pytest.raises(argparse.ArgumentTypeError):
        dist.agree(lambda: (_ for _ in ()).throw(argparse.ArgumentTypeError("bad")), "x")
    dist.barrier()
    dist.close()


def test_default_workers_share_the_node_cores(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 12)
    assert default_num_workers(torch.device("cpu"), DistEnv()) == 0
    assert default_num_workers(torch.device("cuda", 0), DistEnv()) == 4
    assert default_num_workers(torch.device("cuda", 0), DistEnv(8, 0, 0, 8)) == 1
    assert default_num_workers(torch.device("cuda", 0), DistEnv(8, 0, 0, 4)) == 3
