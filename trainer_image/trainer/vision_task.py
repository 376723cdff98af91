"""ResNet-50 on CIFAR-10: SGD (Nesterov momentum) with cosine decay, crop+flip augmentation on the device.

The dataset stays uint8 (N, 3, 32, 32) on the training device (CIFAR-10's 50,000 training images are
150 MB): a batch is an index into it, the random crop (4 px padding) and horizontal flip are drawn by
a generator on the device, and resize to the training resolution and normalisation run batched there.
No DataLoader, no worker processes and no host-to-device copy per step: nothing in a step waits for
the GPU. The epoch's index order is copied to the device once per epoch (from pinned memory).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn

from trainer.cache import missing, resnet50_weights_path
from trainer.config import RunConfig
from trainer.data import (
    EpochBatchSampler,
    eval_shard,
    global_batch_at,
    load_splits,
    steps_per_epoch,
)
from trainer.distributed import Dist, shard_bounds
from trainer.eval_metrics import accuracy, top_k_accuracy
from trainer.optim import decay_groups, fused_kwargs
from trainer.tasks import PreparedTask

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_CLASSES = 10  # CIFAR-10's; a trial uses its task's num_labels
TINY_WIDTHS = (4, 8, 16, 32)
CROP_PADDING = 4


def cifar_stem(model: nn.Module, width: int = 64) -> nn.Module:
    """Replace the ImageNet stem (7x7/2 conv + max-pool) by a 3x3/1 conv without pooling."""
    model.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def tiny_resnet(num_classes: int = NUM_CLASSES) -> nn.Module:
    """torchvision's ResNet with one Bottleneck per stage and widths 4/8/16/32 (CIFAR stem).

    The same class and blocks as ResNet-50, narrowed so a trial trains in about a second on one CPU
    core (ResNet-50 itself needs seconds per step there).
    """
    from torchvision.models.resnet import Bottleneck, ResNet

    class NarrowResNet(ResNet):
        def __init__(self) -> None:
            nn.Module.__init__(self)
            self._norm_layer = nn.BatchNorm2d
            self.inplanes, self.dilation, self.groups, self.base_width = TINY_WIDTHS[0], 1, 1, 64
            self.conv1 = nn.Conv2d(3, TINY_WIDTHS[0], kernel_size=3, stride=1, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(TINY_WIDTHS[0])
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.Identity()
            self.layer1 = self._make_layer(Bottleneck, TINY_WIDTHS[0], 1)
            self.layer2 = self._make_layer(Bottleneck, TINY_WIDTHS[1], 1, stride=2)
            self.layer3 = self._make_layer(Bottleneck, TINY_WIDTHS[2], 1, stride=2)
            self.layer4 = self._make_layer(Bottleneck, TINY_WIDTHS[3], 1, stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(TINY_WIDTHS[3] * Bottleneck.expansion, num_classes)
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    return NarrowResNet()


def load_vision_model(cfg: RunConfig) -> tuple[nn.Module, str, bool]:
    """(model, source, imagenet_normalisation) for the preset and ``--model``."""
    classes = cfg.spec.num_labels
    if cfg.preset == "tiny":
        return (
            tiny_resnet(classes),
            "tiny-resnet (torchvision ResNet, Bottleneck [1,1,1,1], widths 4-32)",
            False,
        )
    from torchvision.models import resnet50

    if cfg.model == "resnet50-cifar":
        return (
            cifar_stem(resnet50(weights=None, num_classes=classes)),
            "resnet50 (from scratch, CIFAR stem)",
            False,
        )
    path = resnet50_weights_path(cfg.cache_dir)
    if path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        from trainer.cache import offline, resnet50_weights_url

        if offline():
            raise missing("ImageNet ResNet-50 weights", path, cfg.cache_dir, cfg.task)
        state = torch.hub.load_state_dict_from_url(resnet50_weights_url(), map_location="cpu", progress=False)
    model = resnet50(weights=None)
    model.load_state_dict(state)
    model.fc = nn.Linear(model.fc.in_features, classes)
    return model, f"resnet50 (ImageNet weights {path.name})", True


def images_to_tensor(images: list[Any]) -> torch.Tensor:
    """PIL images (or HWC arrays) -> uint8 tensor (N, 3, H, W)."""
    arrays = [
        np.asarray(img.convert("RGB") if hasattr(img, "convert") else img, dtype=np.uint8) for img in images
    ]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def random_crop_flip(
    images: torch.Tensor,
    generator: torch.Generator,
    padding: int = CROP_PADDING,
    within: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Random crop after zero padding plus random horizontal flip, for a whole batch (any device).

    The offsets and flips are drawn by ``generator`` on its own device: a generator on the images'
    GPU draws them there, so no host-to-device copy (a stream sync from pageable memory) is needed.

    ``within=(start, total)``: ``images`` are rows ``start..`` of a batch of ``total`` (a rank's slice
    of a global batch); the random draws are made for the whole batch and this slice's are used, so
    every image gets the crop and flip it would get in a single process.
    """
    n, _c, h, w = images.shape
    start, total = within if within is not None else (0, n)
    where = generator.device  # drawn where the generator lives (the images' device in training)
    offsets = torch.randint(0, 2 * padding + 1, (2, total), generator=generator, device=where)
    flips = torch.rand(total, generator=generator, device=where) < 0.5
    offsets = offsets[:, start : start + n].to(images.device, non_blocking=True)
    flips = flips[start : start + n].to(images.device, non_blocking=True)
    padded = nnf.pad(images, (padding, padding, padding, padding))
    rows = (offsets[0][:, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (offsets[1][:, None] + torch.arange(w, device=images.device))[:, None, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channels = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    cropped = padded[batch, channels, rows, cols]
    return torch.where(flips[:, None, None, None], cropped.flip(3), cropped)


class Normaliser:
    """uint8 batch -> float, resized to the training resolution, normalised, channels_last.

    channels_last (NHWC) is what cuDNN and oneDNN convolutions prefer, on the GPU and on the CPU alike.
    """

    def __init__(self, size: int, imagenet: bool, device: torch.device) -> None:
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if imagenet else (CIFAR_MEAN, CIFAR_STD)
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255.0
        self.size = size

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() - self.mean) / self.std
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = nnf.interpolate(
                x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True
            )
        return x.contiguous(memory_format=torch.channels_last)


class ResidentImages:
    """uint8 images and labels held on the training device; batches are gathered there by index.

    ``batches(index_batches)`` copies all the given index batches to the device in one transfer
    (pinned memory, ``non_blocking``) and yields each batch's (images, labels) as device tensors.
    """

    def __init__(self, images: torch.Tensor, labels: list[int], device: torch.device) -> None:
        self.device = device
        self.images = images.to(device)
        self.labels = torch.tensor(labels, dtype=torch.long, device=device)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batches(self, index_batches: list[list[int]]) -> Any:
        """(images, labels) per batch of indices, in order, gathered on the device."""
        flat = torch.tensor([i for batch in index_batches for i in batch], dtype=torch.long)
        if self.device.type == "cuda":
            flat = flat.pin_memory().to(self.device, non_blocking=True)
        start = 0
        for batch in index_batches:
            index = flat[start : start + len(batch)]
            start += len(batch)
            yield self.images[index], self.labels[index]


def step_generator(device: torch.device) -> torch.Generator:
    """The generator the augmentation draws from, on ``device`` (reseeded every step)."""
    return torch.Generator(device=device)


def augmentation_seed(seed: int, epoch: int, step: int) -> int:
    """The seed of step ``step``'s crops and flips: a function of (seed, epoch, step) only."""
    return (seed * 1_000_003 + epoch) * 100_003 + step


def prepare_vision(
    cfg: RunConfig, device: torch.device, autocast: Any, num_workers: int, dist: Dist | None = None
) -> PreparedTask:
    """Build an image classification task (CIFAR-10): model, uint8 image tensors, loaders, loss, evaluation and SGD.

    Under data parallelism (``dist``) each rank trains on its slice of every global batch (with the
    augmentation a single process would draw for those images) and evaluates its block of the test
    batches; the metrics are computed from all ranks' logits.
    """
    dist = dist or Dist()
    splits = load_splits(cfg.task, cfg.preset, cfg.cache_dir)
    model, source, imagenet = load_vision_model(cfg)
    (image_column,), label_column = cfg.spec.input_columns, cfg.spec.label_column
    train_x = images_to_tensor(splits["train"][image_column])
    train_y = [int(y) for y in splits["train"][label_column]]
    eval_name = cfg.spec.eval_split
    eval_x = images_to_tensor(splits[eval_name][image_column])
    eval_y = [int(y) for y in splits[eval_name][label_column]]
    model.to(device, memory_format=torch.channels_last)
    size = int(cfg.image_size or 32)
    normalise = Normaliser(size, imagenet, device)
    train_set = ResidentImages(train_x, train_y, device)
    eval_set = ResidentImages(eval_x, eval_y, device)
    global_batch = cfg.batch_size * dist.world_size
    generator = step_generator(device)

    def train_batches(epoch: int, start_step: int) -> Any:
        sampler = EpochBatchSampler(
            len(train_set),
            global_batch,
            cfg.seed,
            epoch,
            start_step,
            min_batch=2,
            rank=dist.rank,
            world_size=dist.world_size,
        )
        return train_set.batches(list(sampler))

    def batch_loss(net: nn.Module, batch: Any, epoch: int, step: int) -> tuple[torch.Tensor, int]:
        images, labels = batch
        generator.manual_seed(augmentation_seed(cfg.seed, epoch, step))
        total = global_batch_at(len(train_set), global_batch, step)
        start = shard_bounds(total, dist.rank, dist.world_size)[0]
        x = normalise(random_crop_flip(images, generator, within=(start, total)))
        with autocast():
            logits = net(x)
        return nnf.cross_entropy(logits.float(), labels), int(labels.shape[0])

    eval_batch = min(max(cfg.batch_size, 128), 1024)
    eval_batches = eval_shard(len(eval_set), eval_batch, dist.rank, dist.world_size).batch_list

    @torch.no_grad()
    def evaluate(net: nn.Module) -> dict[str, float]:
        net.eval()
        logits_all = [torch.zeros((0, cfg.spec.num_labels), device=device)]
        labels_all = [torch.zeros((0,), dtype=torch.long, device=device)]
        for images, labels in eval_set.batches(eval_batches):
            with autocast():
                logits_all.append(net(normalise(images)).float())
            labels_all.append(labels)
        net.train()
        logits_local, labels_local = torch.cat(logits_all).cpu(), torch.cat(labels_all).cpu()
        logits, truth = dist.gather_rows(logits_local), dist.gather_rows(labels_local)
        if truth.shape[0] != len(eval_set):
            raise RuntimeError(f"evaluated {truth.shape[0]} images, expected {len(eval_set)}")
        return {
            "accuracy": accuracy(logits.argmax(dim=1), truth),
            "top5_accuracy": top_k_accuracy(logits, truth, 5),
            "eval_loss": float(nnf.cross_entropy(logits.double(), truth, reduction="sum")) / len(eval_set),
        }

    extra = fused_kwargs(device)
    optimizer = torch.optim.SGD(
        decay_groups(model, cfg.effective_weight_decay),
        lr=cfg.effective_learning_rate,
        momentum=cfg.momentum,
        nesterov=cfg.momentum > 0,
        **extra,
    )
    return PreparedTask(
        model=model,
        train_size=len(train_set),
        steps_per_epoch=steps_per_epoch(
            len(train_set), global_batch, min_batch=2, world_size=dist.world_size
        ),
        train_batches=train_batches,
        batch_loss=batch_loss,
        evaluate=evaluate,
        optimizer=optimizer,
        schedule="cosine",
        info={
            "model_source": source,
            "image_size": size,
            "train_examples": len(train_set),
            "eval_examples": len(eval_set),
        },
    )
