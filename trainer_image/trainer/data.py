"""Datasets as column dicts, epoch-deterministic batch order, and a DataLoader builder."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from trainer.cache import HUB_DATASETS, dataset_dir, missing, offline, warm_cache_command
from trainer.errors import MissingCacheError
from trainer.tiny_data import Splits, tiny_dataset

TASK_COLUMNS = {
    "sst2": ("sentence", "label"),
    "mrpc": ("sentence1", "sentence2", "label"),
    "cifar10": ("img", "label"),
}
EVAL_SPLIT = {"sst2": "validation", "mrpc": "validation", "cifar10": "test"}


def load_splits(task: str, preset: str, cache_dir: str) -> Splits:
    """Train and evaluation splits of ``task`` as ``{split: {column: list}}``.

    ``tiny`` makes them in code; ``full`` reads ``<cache>/datasets/<task>`` (save_to_disk layout) or,
    when online and the cache lacks it, the hub dataset.
    """
    if preset == "tiny":
        return tiny_dataset(task)
    import datasets

    path = dataset_dir(cache_dir, task)
    if path.is_dir():
        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as exc:
            raise MissingCacheError(
                f"dataset cache {path} cannot be read ({type(exc).__name__}: {exc}); rebuild it with: "
                f"{warm_cache_command(cache_dir, task)}"
            ) from exc
    elif offline():
        raise missing(f"dataset {task!r}", path, cache_dir, task)
    else:
        repo, config = HUB_DATASETS[task]
        loaded = datasets.load_dataset(repo, config)
    wanted = ("train", EVAL_SPLIT[task])
    absent = [split for split in wanted if split not in loaded]
    if absent:
        raise MissingCacheError(f"dataset at {path} has no split(s) {absent}; found {list(loaded)}")
    out: Splits = {}
    for split in wanted:
        table = loaded[split]
        lacking = [c for c in TASK_COLUMNS[task] if c not in table.column_names]
        if lacking:
            raise MissingCacheError(
                f"dataset {task} split {split} lacks column(s) {lacking}; has {table.column_names}"
            )
        out[split] = {column: list(table[column]) for column in TASK_COLUMNS[task]}
    return out


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The training order of ``epoch``: a function of (seed, epoch) only, so a resumed run matches."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of indices for one epoch, starting at ``start_step`` (to resume mid-epoch).

    A trailing batch of a single sample is dropped when ``min_batch`` is 2 (BatchNorm needs two).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        epoch: int,
        start_step: int = 0,
        shuffle: bool = True,
        min_batch: int = 1,
    ) -> None:
        self.order = epoch_permutation(n, seed, epoch).tolist() if shuffle else list(range(n))
        self.batch_size = batch_size
        self.start_step = start_step
        self.min_batch = min_batch

    def batches(self) -> list[list[int]]:
        """All batches of the epoch (including those before ``start_step``)."""
        out = [self.order[i : i + self.batch_size] for i in range(0, len(self.order), self.batch_size)]
        if out and len(out[-1]) < self.min_batch:
            out.pop()
        return out

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()[self.start_step :]

    def __len__(self) -> int:
        return max(0, len(self.batches()) - self.start_step)


def steps_per_epoch(n: int, batch_size: int, min_batch: int = 1) -> int:
    """Optimizer steps in one epoch for ``n`` samples."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest >= min_batch and rest > 0 else 0)


class ListDataset(torch.utils.data.Dataset):
    """Items addressed by index; ``__getitems__`` lets the DataLoader fetch a batch at once."""

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.items[index]

    def __getitems__(self, indices: list[int]) -> list[Any]:
        return [self.items[i] for i in indices]


def make_loader(
    dataset: torch.utils.data.Dataset,
    batch_sampler: Sampler[list[int]],
    collate: Callable[[list[Any]], Any],
    num_workers: int,
    pin_memory: bool,
) -> DataLoader:
    """A DataLoader that never touches the global RNG (so resumed runs replay dropout exactly)."""
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(0),
        persistent_workers=False,
    )
