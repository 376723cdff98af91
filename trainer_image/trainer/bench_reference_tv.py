"""Reference: the same CIFAR trial under torchvision's classification reference recipe.

A re-implementation, from reading ``references/classification/train.py`` and ``presets.py`` of
pytorch/vision, of its single-GPU training loop with that recipe's settings:

- data: a map-style dataset of PIL images with the recipe's per-image CPU transforms
  (``RandomResizedCrop(crop)`` + ``RandomHorizontalFlip`` + ``PILToTensor`` + ``ConvertImageDtype`` +
  ``Normalize`` for training; ``Resize(crop * 256 / 224)`` + ``CenterCrop(crop)`` for evaluation), a
  ``DataLoader`` with a ``RandomSampler``, ``num_workers`` = its default 16 (capped at the CPU count),
  ``pin_memory=True`` (on CUDA), the evaluation loader with the training batch size and a ``SequentialSampler``;
- model ``torchvision.models.resnet50(num_classes=10)`` (the same weights as the trial's backbone), no
  ``channels_last`` (the recipe does not use it), ``cudnn.benchmark = True``;
- ``CrossEntropyLoss``; SGD with momentum 0.9 and weight decay on every parameter (``--opt sgd``,
  no Nesterov); ``--lr-scheduler cosineannealinglr`` stepped per epoch (the trial decays by cosine too);
- ``--amp`` on CUDA: ``autocast`` (float16) around forward and loss, ``GradScaler``; fp32 on CPU;
- per step, as the recipe's metric logger does: ``loss.item()`` and top-1/top-5 accuracy ``.item()``;
- after each epoch: evaluation under ``inference_mode`` with the same per-batch ``.item()`` calls, then
  two ``torch.save`` of {model, optimizer, lr_scheduler, epoch} (``model_<epoch>.pth`` and
  ``checkpoint.pth``), as the recipe does whenever ``--output-dir`` is set (its default is ``.``).

The same synthetic images, resolution, batch size, learning rate, weight decay and number of optimizer
steps and samples as the trial-shaped benchmark. Two epochs of ``steps`` steps run; the second is timed.
The tiny preset uses the trial's tiny ResNet at its 12 px resolution.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainer.bench_synthetic import DATA_SEED, build_cache
from trainer.bench_trial import SEED_TRIALS, TINY_IMAGE_SIZE, real_steps_per_epoch, synthetic_sizes
from trainer.vision_task import IMAGENET_MEAN, IMAGENET_STD

RECIPE_WORKERS = 16
MOMENTUM = 0.9


class PilImages(torch.utils.data.Dataset):
    """uint8 HWC arrays served as PIL images through a torchvision transform, like ``ImageFolder``."""

    def __init__(self, images: np.ndarray, labels: list[int], transform: Any) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def recipe_transforms(crop: int) -> tuple[Any, Any]:
    """(train, eval) transforms of the recipe's ``ClassificationPresetTrain`` / ``ClassificationPresetEval``."""
    from torchvision import transforms

    tail = [
        transforms.PILToTensor(),
        transforms.ConvertImageDtype(torch.float),
        transforms.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
    ]
    train = transforms.Compose(
        [transforms.RandomResizedCrop(crop, antialias=True), transforms.RandomHorizontalFlip(0.5), *tail]
    )
    evaluation = transforms.Compose(
        [transforms.Resize(round(crop * 256 / 224), antialias=True), transforms.CenterCrop(crop), *tail]
    )
    return train, evaluation


def _accuracy(output: torch.Tensor, target: torch.Tensor, topk: tuple[int, ...]) -> list[torch.Tensor]:
    """Top-k accuracies in percent, as the recipe's ``utils.accuracy`` computes them."""
    with torch.inference_mode():
        maxk = min(max(topk), output.shape[1])
        _, pred = output.topk(maxk, 1, True, True)
        correct = pred.t().eq(target[None])
        return [
            correct[: min(k, maxk)].flatten().sum(dtype=torch.float32) * (100.0 / target.shape[0])
            for k in topk
        ]


def _model(preset: str, cache_dir: Path) -> nn.Module:
    if preset == "tiny":
        from trainer.vision_task import tiny_resnet

        return tiny_resnet(10)
    from torchvision.models import resnet50

    from trainer.cache import resnet50_weights_path

    model = resnet50(weights=None)
    model.load_state_dict(torch.load(resnet50_weights_path(cache_dir), map_location="cpu", weights_only=True))
    model.fc = nn.Linear(model.fc.in_features, 10)
    return model


def _images(
    preset: str, cache_dir: Path, task: str, eval_split: str
) -> dict[str, tuple[np.ndarray, list[int]]]:
    """The trial's synthetic images per split, as uint8 HWC arrays."""
    if preset == "tiny":
        from trainer.tiny_data import tiny_dataset

        splits: Any = tiny_dataset(task)
    else:
        from datasets import load_from_disk

        splits = load_from_disk(str(cache_dir / "datasets" / task))
    out = {}
    for split in ("train", eval_split):
        table = splits[split]
        images = np.stack(
            [
                np.asarray(img.convert("RGB") if hasattr(img, "convert") else img, dtype=np.uint8)
                for img in table["img"]
            ]
        )
        out[split] = (images, [int(y) for y in table["label"]])
    return out


def measure_torchvision(
    task_name: str,
    batch: int,
    *,
    preset: str,
    device_choice: str,
    steps: int,
    work_dir: Path,
    workers: int | None = None,
) -> dict[str, Any]:
    """Run the CIFAR trial with the torchvision recipe's loop for two epochs and extrapolate."""
    from trainer.bench import device_name
    from trainer.parallel import pick_device
    from trainer.tasks import get_task

    shape, spec = SEED_TRIALS[task_name], get_task(task_name)
    if spec.family != "vision":
        raise ValueError(f"the torchvision reference runs image tasks, not {task_name!r}")
    device = pick_device(device_choice)
    cuda = device.type == "cuda"
    train_n, eval_n = synthetic_sizes(shape, batch, steps, preset)
    cache = build_cache(work_dir / "cache", task_name, preset, train_n, eval_n)
    crop = shape.image_size if preset == "full" else TINY_IMAGE_SIZE
    data = _images(preset, cache.cache_dir, task_name, spec.eval_split)
    # the trial's numbers of training steps and evaluation images (the tiny preset's splits are larger)
    data = {
        "train": (data["train"][0][:train_n], data["train"][1][:train_n]),
        "eval": (data[spec.eval_split][0][:eval_n], data[spec.eval_split][1][:eval_n]),
    }
    train_tf, eval_tf = recipe_transforms(int(crop or TINY_IMAGE_SIZE))
    if workers is None:
        workers = min(RECIPE_WORKERS, os.cpu_count() or 1) if cuda else 0
    torch.manual_seed(DATA_SEED)
    train_set = PilImages(*data["train"], train_tf)
    eval_set = PilImages(*data["eval"], eval_tf)
    loader = torch.utils.data.DataLoader(
        train_set,
        batch_size=batch,
        sampler=torch.utils.data.RandomSampler(train_set),
        num_workers=workers,
        pin_memory=cuda,
    )
    eval_loader = torch.utils.data.DataLoader(
        eval_set,
        batch_size=batch,
        sampler=torch.utils.data.SequentialSampler(eval_set),
        num_workers=workers,
        pin_memory=cuda,
    )
    torch.backends.cudnn.benchmark = True
    model = _model(preset, cache.cache_dir).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=shape.learning_rate, momentum=MOMENTUM, weight_decay=shape.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(shape.epochs))
    scaler = torch.amp.GradScaler("cuda") if cuda else None

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    def train_one_epoch() -> int:
        model.train()
        done = 0
        for image, target in loader:
            image, target = image.to(device), target.to(device)
            with torch.autocast("cuda", enabled=scaler is not None):
                output = model(image)
                loss = criterion(output, target)
            optimizer.zero_grad()
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            acc1, acc5 = _accuracy(output, target, topk=(1, 5))
            _logged = (loss.item(), acc1.item(), acc5.item())  # the recipe's metric logger, each step
            done += 1
        return done

    def evaluate() -> None:
        model.eval()
        with torch.inference_mode():
            for image, target in eval_loader:
                image = image.to(device, non_blocking=True)
                target = target.to(device, non_blocking=True)
                output = model(image)
                loss = criterion(output, target)
                acc1, acc5 = _accuracy(output, target, topk=(1, 5))
                _logged = (loss.item(), acc1.item(), acc5.item())

    times: list[dict[str, float]] = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tv-ref-", dir=work_dir) as out:
        for epoch in range(2):
            t0 = time.perf_counter()
            done = train_one_epoch()
            scheduler.step()
            sync()
            t1 = time.perf_counter()
            evaluate()
            sync()
            t2 = time.perf_counter()
            checkpoint = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "lr_scheduler": scheduler.state_dict(),
                "epoch": epoch,
            }
            torch.save(checkpoint, Path(out) / f"model_{epoch}.pth")
            torch.save(checkpoint, Path(out) / "checkpoint.pth")
            t3 = time.perf_counter()
            times.append({"train_s": t1 - t0, "eval_s": t2 - t1, "checkpoint_s": t3 - t2, "steps": done})
    total_s = time.perf_counter() - began
    last = times[-1]
    step_s = last["train_s"] / last["steps"]
    eval_scale = shape.eval_examples / len(eval_set)
    real_steps = real_steps_per_epoch(shape, batch)
    per_epoch = real_steps * step_s + last["eval_s"] * eval_scale + last["checkpoint_s"]
    warmup_extra = max(0.0, total_s - 2 * (last["train_s"] + last["eval_s"] + last["checkpoint_s"]))
    return {
        "kind": "reference",
        "reference": "torchvision-recipe",
        "task": task_name,
        "preset": preset,
        "batch_size": batch,
        "device": device_name(device),
        "dtype": "fp16 amp + GradScaler" if cuda else "fp32",
        "optimizer": "SGD momentum 0.9",
        "timed_steps": int(last["steps"]),
        "step_ms": 1000 * step_s,
        "samples_per_second": batch / step_s if step_s else None,
        "eval_s": last["eval_s"],
        "eval_scale": eval_scale,
        "checkpoint_s": last["checkpoint_s"],
        "loader_workers": workers,
        "warmup_extra_s": warmup_extra,
        "real_steps_per_epoch": real_steps,
        "gpu_s_per_epoch": per_epoch,
        "gpu_s_per_trial": {str(e): e * per_epoch + warmup_extra for e in shape.epochs},
        "epochs": list(shape.epochs),
    }
