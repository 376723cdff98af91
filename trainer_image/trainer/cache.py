"""The cache layout ``warm-cache`` writes and trials read (offline, HF_HUB_OFFLINE=1).

::

    <cache>/models/<hf-name>/          save_pretrained model + tokenizer (e.g. models/bert-base-uncased)
    <cache>/models/resnet50/<file>.pth torchvision ImageNet ResNet-50 weights (IMAGENET1K_V2)
    <cache>/datasets/<task>/           DatasetDict.save_to_disk of the task's hub dataset (trainer.tasks)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from trainer.errors import MissingCacheError

RESNET50_WEIGHTS_FILE = "resnet50-11ad3fa6.pth"  # torchvision ResNet50_Weights.IMAGENET1K_V2
RESNET50_WEIGHTS_URL = f"https://download.pytorch.org/models/{RESNET50_WEIGHTS_FILE}"
#: Environment variable that replaces ``RESNET50_WEIGHTS_URL`` (an internal mirror, or the rehearsal's
#: loopback hub); the file must be the same torchvision state dict.
RESNET50_WEIGHTS_URL_ENV = "TRAINER_RESNET50_WEIGHTS_URL"
_TRUE = {"1", "true", "yes", "on"}


def offline() -> bool:
    """True when the Hugging Face offline switches forbid downloads."""
    return any(
        os.environ.get(k, "").strip().lower() in _TRUE
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def resnet50_weights_url(env: Mapping[str, str] | None = None) -> str:
    """Where the ImageNet ResNet-50 weights are downloaded from: ``$TRAINER_RESNET50_WEIGHTS_URL`` when
    set and not blank, else torchvision's own URL."""
    value = (os.environ if env is None else env).get(RESNET50_WEIGHTS_URL_ENV, "").strip()
    return value or RESNET50_WEIGHTS_URL


def _safe_name(name: str) -> str:
    parts = Path(name).parts
    if not name or Path(name).is_absolute() or ".." in parts:
        raise MissingCacheError(f"model name {name!r} cannot be used as a cache folder name")
    return name


def model_dir(cache_dir: str | Path, name: str) -> Path:
    """Where ``save_pretrained`` output for the HF model ``name`` lives."""
    return Path(cache_dir) / "models" / _safe_name(name)


def dataset_dir(cache_dir: str | Path, task: str) -> Path:
    """Where ``save_to_disk`` output for ``task`` lives."""
    return Path(cache_dir) / "datasets" / task


def resnet50_weights_path(cache_dir: str | Path) -> Path:
    """Where the torchvision ImageNet ResNet-50 weights live."""
    return Path(cache_dir) / "models" / "resnet50" / RESNET50_WEIGHTS_FILE


def warm_cache_command(cache_dir: str | Path, tasks: str) -> str:
    """The command that fills the cache for ``tasks`` (comma-separated)."""
    return f"python -m trainer warm-cache --tasks {tasks} --cache-dir {cache_dir}"


def missing(what: str, path: Path, cache_dir: str | Path, tasks: str) -> MissingCacheError:
    """The error for a cache entry that is absent while downloads are off."""
    return MissingCacheError(
        f"{what} is not in the cache: {path} does not exist, and downloads are disabled "
        f"(HF_HUB_OFFLINE=1). Fill the cache first: {warm_cache_command(cache_dir, tasks)}"
    )


def resolve_text_model(name_or_path: str, cache_dir: str | Path, task: str) -> str:
    """A local folder for the model if one exists (a path, or the cache), else the hub name when online."""
    if Path(name_or_path).is_dir():
        return str(name_or_path)
    cached = model_dir(cache_dir, name_or_path)
    if (cached / "config.json").is_file():
        return str(cached)
    if offline():
        raise missing(f"model {name_or_path!r}", cached, cache_dir, task)
    return name_or_path
