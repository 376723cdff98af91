"""Tiny stand-ins for the models and datasets the trainer downloads, under their real hub names.

:func:`build_standins` lays out a folder for :class:`client.rehearsal.hub.LoopbackHub`:

- ``models/bert-base-uncased``: the trainer's tiny BERT (``trainer.text_task.tiny_bert``) and its
  WordPiece tokenizer over the tiny vocabulary, saved with ``save_pretrained`` plus ``vocab.txt``;
- ``datasets/nyu-mll/glue``: configs ``sst2`` and ``mrpc`` as parquet files laid out as on the hub
  (``<config>/<split>-00000-of-00001.parquet``, README YAML ``configs`` + ``dataset_info``), rows from
  ``trainer.tiny_data`` with GLUE's features (test labels -1, as in GLUE);
- ``datasets/uoft-cs/cifar10``: config ``plain_text`` (the hub's default), train/test parquet;
- ``files/models/resnet50-<hash>.pth``: a ResNet-50 state dict (seeded random init, ImageNet shape)
  at the path torchvision's weights have on download.pytorch.org.

Everything is deterministic (same bytes on every build) and takes seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.cache import RESNET50_WEIGHTS_FILE
from trainer.tasks import get_task

TEXT_MODEL = "bert-base-uncased"
RESNET50_PATH = f"models/{RESNET50_WEIGHTS_FILE}"  # below files/, and below download.pytorch.org/
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
GITATTRIBUTES = "".join(
    f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n" for ext in ("safetensors", "bin", "parquet", "pth")
)


def _text_features(task: str) -> Any:
    """GLUE's features for ``task`` (the column names the hub's parquet files carry)."""
    import datasets

    if task == "sst2":
        columns = {"sentence": datasets.Value("string")}
        names = ["negative", "positive"]
    else:
        columns = {"sentence1": datasets.Value("string"), "sentence2": datasets.Value("string")}
        names = ["not_equivalent", "equivalent"]
    label = datasets.ClassLabel(names=names)
    return datasets.Features({**columns, "label": label, "idx": datasets.Value("int32")})


def _cifar10_features() -> Any:
    import datasets

    return datasets.Features(
        {"img": datasets.Image(), "label": datasets.ClassLabel(names=list(CIFAR10_CLASSES))}
    )


def build_text_model(root: Path, name: str = TEXT_MODEL) -> Path:
    """``models/<name>``: tiny BERT + WordPiece tokenizer (``save_pretrained``) and ``vocab.txt``."""
    import torch
    from trainer.text_task import tiny_bert, tiny_tokenizer
    from trainer.tiny_data import vocabulary

    target = root / "models" / name
    tokenizer = tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = tiny_bert(len(tokenizer), tokenizer.pad_token_id)
    tokenizer.save_pretrained(target)
    model.save_pretrained(target)
    (target / "vocab.txt").write_text("\n".join(vocabulary()) + "\n")
    (target / ".gitattributes").write_text(GITATTRIBUTES)
    return target


def _write_dataset_repo(target: Path, configs: dict[str, dict[str, Any]], default: str | None) -> None:
    """Write ``<config>/<split>-00000-of-00001.parquet`` files and the README the hub would hold.

    ``configs`` maps a config name to ``{"features": Features, "splits": {split: columns}}``.
    """
    import datasets
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    metadata: dict[str, Any] = {}
    infos = {}
    for config, spec in configs.items():
        data_files = []
        for split, columns in spec["splits"].items():
            shard = target / config / f"{split}-00000-of-00001.parquet"
            shard.parent.mkdir(parents=True, exist_ok=True)
            datasets.Dataset.from_dict(columns, features=spec["features"]).to_parquet(str(shard))
            data_files.append({"split": split, "path": f"{config}/{split}-*"})
        metadata[config] = {"data_files": data_files} | ({"default": True} if config == default else {})
        infos[config] = DatasetInfo(features=spec["features"], config_name=config)
    card_data = DatasetCardData()
    DatasetInfosDict(infos).to_dataset_card_data(card_data)
    MetadataConfigs(metadata).to_dataset_card_data(card_data)
    card = DatasetCard(f"---\n{card_data.to_yaml()}\n---\n# Stand-in for {target.name} (tiny rows)\n")
    card.save(target / "README.md")
    (target / ".gitattributes").write_text(GITATTRIBUTES)


def _first_rows(splits: dict[str, dict[str, list[Any]]], rows: int | None) -> dict[str, dict[str, list[Any]]]:
    """Each split cut to its first ``rows`` rows (all of them when None)."""
    if rows is None:
        return splits
    return {split: {k: v[:rows] for k, v in columns.items()} for split, columns in splits.items()}


def build_glue(root: Path, tasks: tuple[str, ...] = ("sst2", "mrpc"), rows: int | None = None) -> Path:
    """``datasets/<GLUE repo>`` with one parquet config per task, rows from ``trainer.tiny_data`` (the
    first ``rows`` of each split when set)."""
    from trainer.tiny_data import tiny_dataset

    (repo,) = {get_task(task).hub_dataset[0] for task in tasks}
    configs = {
        get_task(task).hub_dataset[1]: {
            "features": _text_features(task),
            "splits": _first_rows(tiny_dataset(task), rows),
        }
        for task in tasks
    }
    target = root / "datasets" / repo
    _write_dataset_repo(target, configs, default=None)
    return target


def build_cifar10(root: Path, rows: int | None = None) -> Path:
    """``datasets/<CIFAR-10 repo>``: config ``plain_text`` (default), train/test parquet (the first
    ``rows`` of each split when set)."""
    from trainer.tiny_data import tiny_dataset

    repo = get_task("cifar10").hub_dataset[0]
    target = root / "datasets" / repo
    spec = {"features": _cifar10_features(), "splits": _first_rows(tiny_dataset("cifar10"), rows)}
    _write_dataset_repo(target, {"plain_text": spec}, default="plain_text")
    return target


def build_resnet50_weights(root: Path) -> Path:
    """``files/models/resnet50-<hash>.pth``: a seeded ResNet-50 state dict with ImageNet's shapes."""
    import torch
    from torchvision.models import resnet50

    target = root / "files" / RESNET50_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = resnet50(weights=None).state_dict()
    torch.save(state, target)
    return target


def build_standins(root: str | Path, text_rows: int | None = None, image_rows: int | None = None) -> Path:
    """Build every stand-in under ``root`` (created if needed); returns ``root``. ``text_rows`` /
    ``image_rows`` cut each split of the GLUE / CIFAR-10 stand-ins to that many rows (a rehearsal's
    ResNet-50 runs at its full resolution on a CPU, so its data must be small)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    build_text_model(root)
    build_glue(root, rows=text_rows)
    build_cifar10(root, rows=image_rows)
    build_resnet50_weights(root)
    return root
