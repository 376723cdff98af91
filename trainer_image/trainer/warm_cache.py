"""``warm-cache``: download every model and dataset a trial needs, once, into the cache layout."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from trainer.cache import dataset_dir, model_dir, resnet50_weights_path, resnet50_weights_url
from trainer.tasks import get_task


def _note(message: str) -> None:
    print(f"warm-cache: {message}", file=sys.stderr, flush=True)


def warm_text_model(cache_dir: str | Path, name: str) -> Path:
    """``save_pretrained`` the model (2-label head) and its tokenizer into ``<cache>/models/<name>``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    target = model_dir(cache_dir, name)
    if (target / "config.json").is_file():
        _note(f"model {name} already cached at {target}")
        return target
    tokenizer = AutoTokenizer.from_pretrained(name)
    model = AutoModelForSequenceClassification.from_pretrained(name, num_labels=2)
    tmp = target.with_name(target.name + ".partial")
    tokenizer.save_pretrained(tmp)
    model.save_pretrained(tmp)
    tmp.replace(target)
    _note(f"model {name} saved to {target}")
    return target


def warm_dataset(cache_dir: str | Path, task: str) -> Path:
    """``save_to_disk`` the hub dataset of ``task`` into ``<cache>/datasets/<task>``."""
    import datasets

    target = dataset_dir(cache_dir, task)
    if target.is_dir():
        _note(f"dataset {task} already cached at {target}")
        return target
    repo, config = get_task(task).hub_dataset
    loaded = datasets.load_dataset(repo, config)
    tmp = target.with_name(target.name + ".partial")
    loaded.save_to_disk(str(tmp))
    tmp.replace(target)
    _note(f"dataset {task} ({repo}{'/' + config if config else ''}) saved to {target}")
    return target


def warm_resnet50(cache_dir: str | Path) -> Path:
    """Download torchvision's ImageNet ResNet-50 weights (IMAGENET1K_V2) into ``<cache>/models/resnet50``."""
    import torch

    target = resnet50_weights_path(cache_dir)
    if target.is_file():
        _note(f"ResNet-50 weights already cached at {target}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    url = resnet50_weights_url()
    torch.hub.download_url_to_file(url, str(target), progress=False)
    _note(f"ResNet-50 ImageNet weights from {url} saved to {target}")
    return target


def model_warmers(cache_dir: str | Path, text_model: str) -> dict[str, Callable[[], Path]]:
    """What fills each model entry a task can list in ``warm_models`` (trainer.tasks.MODEL_ENTRIES)."""
    return {
        "text-model": lambda: warm_text_model(cache_dir, text_model),
        "resnet50-imagenet": lambda: warm_resnet50(cache_dir),
    }


def warm_cache(tasks: list[str], cache_dir: str | Path, text_model: str = "bert-base-uncased") -> None:
    """Fill the cache for ``tasks``: the models they list, once each, then their datasets (idempotent:
    cached entries are kept)."""
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    warmers = model_warmers(cache_dir, text_model)
    entries = dict.fromkeys(entry for task in tasks for entry in get_task(task).warm_models)
    for entry in entries:
        warmers[entry]()
    for task in tasks:
        warm_dataset(cache_dir, task)
