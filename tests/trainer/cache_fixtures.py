"""Fill a cache folder in exactly the layout ``warm-cache`` writes, from tiny models and data."""

from __future__ import annotations

from pathlib import Path

from trainer.cache import dataset_dir, model_dir, resnet50_weights_path
from trainer.tiny_data import tiny_dataset


def fill_dataset(cache: Path, task: str, sizes: dict[str, int] | None = None) -> Path:
    """``save_to_disk`` a DatasetDict with the real dataset's features (tiny rows)."""
    import datasets

    splits = tiny_dataset(task)
    if task == "cifar10":
        features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    elif task == "sst2":
        features = datasets.Features(
            {
                "sentence": datasets.Value("string"),
                "label": datasets.ClassLabel(names=["negative", "positive"]),
                "idx": datasets.Value("int32"),
            }
        )
    else:
        features = datasets.Features(
            {
                "sentence1": datasets.Value("string"),
                "sentence2": datasets.Value("string"),
                "label": datasets.ClassLabel(names=["not_equivalent", "equivalent"]),
                "idx": datasets.Value("int32"),
            }
        )
    parts = {}
    for split, columns in splits.items():
        n = (sizes or {}).get(split, len(columns["label"]))
        rows = {k: v[:n] for k, v in columns.items()}
        if split == "test" and task != "cifar10":
            rows["label"] = [0] * n  # ClassLabel cannot hold GLUE's -1; the trainer never reads test
        parts[split] = datasets.Dataset.from_dict(rows, features=features)
    target = dataset_dir(cache, task)
    datasets.DatasetDict(parts).save_to_disk(str(target))
    return target


def fill_text_model(cache: Path, name: str = "bert-base-uncased") -> Path:
    """A tiny BERT + tokenizer saved with save_pretrained under the real model's name."""
    from trainer.text_task import tiny_bert, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    model = tiny_bert(len(tokenizer), tokenizer.pad_token_id)
    target = model_dir(cache, name)
    tokenizer.save_pretrained(target)
    model.save_pretrained(target)
    return target


def fill_resnet50_weights(cache: Path) -> Path:
    """A (randomly initialised) ResNet-50 ImageNet-shaped state dict at the weights path."""
    import torch
    from torchvision.models import resnet50

    target = resnet50_weights_path(cache)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(resnet50(weights=None).state_dict(), target)
    return target
