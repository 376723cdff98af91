"""Synthetic data and models shaped like the seed's trials, written as a trainer cache folder.

The trial-shaped benchmark runs the real training path (``trainer.engine.prepare`` reading
``<cache>/datasets/<task>`` and a model folder), so the synthetic data takes the cache's form:

- SST-2-like sentences: token counts (with [CLS] and [SEP]) from a normal(35, 12) clipped to 6-66
  tokens (mostly 20-60, the longest SST-2 sentence is 66 BERT tokens);
- MRPC-like sentence pairs: each sentence normal(25, 7) clipped to 8-48 tokens, about 40-100 tokens a
  pair with the three special tokens;
- CIFAR-10-like images: uniform random uint8 32x32x3 with random labels.

Words are ``w<i>``, one vocabulary entry (one token) each, so a sentence of k words is k tokens. The
BERT (BERT-base, or the tiny preset's 2-layer BERT) and ResNet-50 weights are random: speed does not
depend on them. The references (Hugging Face Trainer, torchvision's recipe) read the same folder.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
FULL_VOCAB = 30522  # bert-base-uncased
TINY_VOCAB = 1000
# (mean, sd, low, high) of the token count per sentence, special tokens excluded
SST2_WORDS = (33.0, 12.0, 4, 64)
MRPC_WORDS = (25.0, 7.0, 8, 48)
TEXT_TASKS = ("sst2", "mrpc")
IMAGE_SIDE = 32
NUM_CLASSES = 10
DATA_SEED = 1234


@dataclass(frozen=True)
class SyntheticCache:
    """A cache folder for one (task, preset, sizes): ``cache_dir`` for ``--cache-dir``, ``model`` for ``--model``."""

    cache_dir: Path
    model: str | None  # the text model folder (None for vision: the cache's ResNet-50 weights)
    train_examples: int
    eval_examples: int


def _lengths(rng: np.random.Generator, n: int, shape: tuple[float, float, int, int]) -> np.ndarray:
    mean, sd, low, high = shape
    return np.clip(np.rint(rng.normal(mean, sd, n)), low, high).astype(int)


def _sentences(rng: np.random.Generator, lengths: np.ndarray, vocab: int) -> list[str]:
    words = vocab - len(SPECIAL_TOKENS)
    return [" ".join(f"w{i}" for i in rng.integers(0, words, int(k))) for k in lengths]


def text_columns(task: str, n: int, vocab: int, rng: np.random.Generator) -> dict[str, list[Any]]:
    """``n`` synthetic examples of ``task`` (``sst2``: sentence; ``mrpc``: sentence1, sentence2) with labels."""
    labels = rng.integers(0, 2, n).tolist()
    if task == "sst2":
        return {"sentence": _sentences(rng, _lengths(rng, n, SST2_WORDS), vocab), "label": labels}
    if task == "mrpc":
        first = _sentences(rng, _lengths(rng, n, MRPC_WORDS), vocab)
        second = _sentences(rng, _lengths(rng, n, MRPC_WORDS), vocab)
        return {"sentence1": first, "sentence2": second, "label": labels}
    raise ValueError(f"no synthetic text for task {task!r}; allowed: {', '.join(TEXT_TASKS)}")


def image_arrays(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """``n`` random uint8 (32, 32, 3) images and labels in [0, 10)."""
    images = rng.integers(0, 256, (n, IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.uint8)
    return images, rng.integers(0, NUM_CLASSES, n).tolist()


def write_text_model(folder: Path, preset: str, seed: int = 0) -> None:
    """A random-weight BERT for sequence classification plus its word-level tokenizer, ``save_pretrained``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from trainer.text_task import TINY_BERT

    vocab = FULL_VOCAB if preset == "full" else TINY_VOCAB
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"
    words = [f"w{i}" for i in range(vocab - len(SPECIAL_TOKENS))]
    vocab_file.write_text("\n".join([*SPECIAL_TOKENS, *words]) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(vocab_file), do_lower_case=True)
    extra = {} if preset == "full" else TINY_BERT
    config = BertConfig(vocab_size=vocab, num_labels=2, pad_token_id=tokenizer.pad_token_id, **extra)
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def write_resnet50_weights(path: Path, seed: int = 0) -> None:
    """Random ImageNet-shaped (1000-class) ResNet-50 weights where the trainer looks for the pretrained ones."""
    import torch
    from torchvision.models import resnet50

    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(resnet50(weights=None).state_dict(), path)


def _write_dataset(
    folder: Path, task: str, train: dict[str, list[Any]], evaluation: dict[str, list[Any]]
) -> None:
    import datasets

    from trainer.tasks import get_task

    spec = get_task(task)
    features = None
    if spec.family == "vision":
        features = datasets.Features(
            {"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=NUM_CLASSES)}
        )
    splits = {
        "train": datasets.Dataset.from_dict(train, features=features),
        spec.eval_split: datasets.Dataset.from_dict(evaluation, features=features),
    }
    datasets.DatasetDict(splits).save_to_disk(str(folder))


def _image_columns(n: int, rng: np.random.Generator) -> dict[str, list[Any]]:
    from PIL import Image

    images, labels = image_arrays(n, rng)
    return {"img": [Image.fromarray(image) for image in images], "label": labels}


def build_cache(
    root: Path, task: str, preset: str, train_examples: int, eval_examples: int
) -> SyntheticCache:
    """Write (or reuse) the synthetic cache for ``task`` under ``root``; safe when several processes race.

    Text: a dataset plus a model folder for every preset. Vision: the dataset and ResNet-50 weights for
    ``full``; the tiny preset's ResNet and images are built by the trainer itself (nothing written).
    """
    from trainer.cache import dataset_dir, resnet50_weights_path
    from trainer.tasks import get_task

    spec = get_task(task)
    text = spec.family == "text"
    if not text and preset == "tiny":
        return SyntheticCache(root / "unused", None, train_examples, eval_examples)
    folder = root / f"{task}-{preset}-{train_examples}-{eval_examples}"
    model = str(folder / "models" / "bench-bert") if text else None
    if (folder / "ready.json").is_file():
        return SyntheticCache(folder, model, train_examples, eval_examples)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=root))
    rng = np.random.default_rng(DATA_SEED)
    if text:
        vocab = FULL_VOCAB if preset == "full" else TINY_VOCAB
        train = text_columns(task, train_examples, vocab, rng)
        evaluation = text_columns(task, eval_examples, vocab, rng)
        write_text_model(staging / "models" / "bench-bert", preset)
    else:
        train, evaluation = _image_columns(train_examples, rng), _image_columns(eval_examples, rng)
        write_resnet50_weights(resnet50_weights_path(staging))
    _write_dataset(dataset_dir(staging, task), task, train, evaluation)
    (staging / "ready.json").write_text(json.dumps({"task": task, "preset": preset}) + "\n")
    try:
        staging.rename(folder)
    except OSError:  # another process finished first: use its copy
        shutil.rmtree(staging, ignore_errors=True)
    return SyntheticCache(folder, model, train_examples, eval_examples)
