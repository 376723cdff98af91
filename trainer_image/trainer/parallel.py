"""How a trial is laid out over torchrun's processes: device per rank, batch split, the DDP wrap."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from trainer.config import RunConfig
from trainer.distributed import Dist, DistEnv, LaunchError
from trainer.errors import EXIT_BAD_ARGS, TrainerError

VISION_MIN_PER_RANK = 2  # BatchNorm in training mode needs two samples (per process without SyncBatchNorm)


def pick_device(choice: str, env: DistEnv | None = None) -> torch.device:
    """``auto`` -> CUDA when visible, else CPU; ``cuda`` without a GPU is an argument error.

    Under torchrun each process takes the GPU of its ``LOCAL_RANK`` (and makes it current).
    """
    env = env or DistEnv()
    if choice == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        if env.local_rank >= count:
            raise LaunchError(
                f"LOCAL_RANK={env.local_rank} needs GPU {env.local_rank} but this node shows {count} CUDA "
                f"device(s): torchrun's --nproc-per-node must not exceed the GPUs of the node/pod "
                f"(nvidia.com/gpu); use --device cpu for CPU processes"
            )
        device = torch.device("cuda", env.local_rank)
        if env.enabled:
            torch.cuda.set_device(device)
        return device
    if choice == "cuda":
        error = TrainerError(
            "--device cuda was requested but torch sees no CUDA device; use --device auto or cpu"
        )
        error.exit_code = EXIT_BAD_ARGS
        raise error
    return torch.device("cpu")


def uses_sync_batchnorm(cfg: RunConfig, device: torch.device, env: DistEnv) -> bool:
    """Vision trials over several GPUs normalise with the statistics of the whole global batch.

    SyncBatchNorm only runs on GPUs; on CPU processes each rank uses its own slice's statistics.
    """
    return env.enabled and not cfg.is_text and device.type == "cuda"


def check_batch_split(cfg: RunConfig, device: torch.device, env: DistEnv) -> None:
    """``--batch-size`` is what each process trains on per step; the global batch is that x WORLD_SIZE.

    So the hyperparameter a search tunes is the batch one GPU sees, the same in a 1-GPU and an N-GPU
    trial (the learning rate is not scaled: with N processes the optimizer sees N times the batch).
    Image batches need two samples per process for BatchNorm unless SyncBatchNorm (GPUs) pools them.
    """
    if not env.enabled:
        return
    if not cfg.is_text and cfg.batch_size < VISION_MIN_PER_RANK and not uses_sync_batchnorm(cfg, device, env):
        raise LaunchError(
            f"--batch-size {cfg.batch_size} is the batch of each of the {env.world_size} CPU processes; "
            f"BatchNorm needs at least {VISION_MIN_PER_RANK} images per process, so use --batch-size "
            f"{VISION_MIN_PER_RANK} or more"
        )


def default_num_workers(device: torch.device, env: DistEnv) -> int:
    """DataLoader workers per process: up to 4 on a GPU (the node's cores shared by its ranks), 0 on CPU."""
    if device.type != "cuda":
        return 0
    cores = (os.cpu_count() or 1) // max(1, env.local_world_size)
    return max(1, min(4, cores))


def wrap_for_training(
    model: nn.Module, device: torch.device, dist: Dist, sync_batchnorm: bool, compile_model: bool
) -> tuple[nn.Module, Any, Any]:
    """(model, training net, evaluation net).

    One process: the model itself (compiled with ``--compile``) serves both. Several: BatchNorm
    becomes SyncBatchNorm where asked (the same parameters and buffers, so the optimizer and
    checkpoints are unaffected), training runs through DistributedDataParallel (gradients averaged
    over ranks; compiled after wrapping, as torch.compile expects), and evaluation uses the bare
    model: each rank evaluates a different number of batches, and DDP's forward would broadcast
    buffers, a collective that needs every rank.
    """
    if not dist.enabled:
        net = torch.compile(model) if compile_model else model
        return model, net, net
    if sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    from torch.nn.parallel import DistributedDataParallel

    ddp = DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=False,
        gradient_as_bucket_view=True,
    )
    if compile_model:
        return model, torch.compile(ddp), torch.compile(model)
    return model, ddp, model
