"""BERT sequence classification on GLUE SST-2 / MRPC: AdamW, linear warm-up/decay, dynamic padding."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import nn

from trainer.cache import resolve_text_model
from trainer.config import RunConfig
from trainer.data import (
    EpochBatchSampler,
    ListDataset,
    eval_shard,
    load_splits,
    make_loader,
    steps_per_epoch,
)
from trainer.distributed import Dist
from trainer.eval_metrics import accuracy, binary_f1
from trainer.optim import decay_groups, fused_kwargs
from trainer.tasks import PreparedTask, get_task
from trainer.tiny_data import vocabulary

TINY_BERT = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 512,
}


def tiny_tokenizer() -> Any:
    """A BertTokenizerFast over the tiny vocabulary, built from a vocab file written here."""
    from transformers import BertTokenizerFast

    with tempfile.TemporaryDirectory(prefix="tiny-vocab-") as folder:
        path = Path(folder) / "vocab.txt"
        path.write_text("\n".join(vocabulary()) + "\n")
        return BertTokenizerFast(vocab=str(path), do_lower_case=True)


def tiny_bert(vocab_size: int, pad_token_id: int, num_labels: int = 2) -> nn.Module:
    """A 2-layer, 64-wide BERT for sequence classification (random init from the global seed)."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=vocab_size, pad_token_id=pad_token_id, num_labels=num_labels, **TINY_BERT)
    return BertForSequenceClassification(config)


def load_text_model(cfg: RunConfig) -> tuple[Any, nn.Module, str]:
    """(tokenizer, model, source) for the preset: tiny in code, full from the cache or the hub."""
    num_labels = cfg.spec.num_labels
    if cfg.preset == "tiny":
        tokenizer = tiny_tokenizer()
        return tokenizer, tiny_bert(len(tokenizer), tokenizer.pad_token_id, num_labels), "tiny-bert (in code)"
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = resolve_text_model(cfg.model, cfg.cache_dir, cfg.task)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=num_labels)
    return tokenizer, model, source


def tokenize(
    tokenizer: Any, columns: dict[str, list[Any]], task: str, max_length: int
) -> list[dict[str, Any]]:
    """Tokenized examples (no padding) of ``task``'s input columns, with their labels."""
    spec = get_task(task)
    texts = [columns[c] for c in spec.input_columns]
    labels = columns[spec.label_column]
    encoded = tokenizer(*texts, truncation=True, max_length=max_length, padding=False)
    type_ids = encoded.get("token_type_ids")
    return [
        {
            "input_ids": ids,
            "token_type_ids": type_ids[i] if type_ids is not None else [0] * len(ids),
            "label": int(labels[i]),
        }
        for i, ids in enumerate(encoded["input_ids"])
    ]


class PadCollator:
    """Dynamic padding to the longest example of the batch (rounded up to ``multiple``).

    ``attention_mask`` is only in the batch when some row is padded: the collator knows the lengths
    on the host, so a batch without padding needs no mask at all (and no check of one on the device).
    """

    def __init__(self, pad_id: int, multiple: int = 1) -> None:
        self.pad_id = pad_id
        self.multiple = multiple

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        length = max(len(e["input_ids"]) for e in examples)
        length = -(-length // self.multiple) * self.multiple
        ids = torch.full((len(examples), length), self.pad_id, dtype=torch.long)
        types = torch.zeros((len(examples), length), dtype=torch.long)
        mask = torch.zeros((len(examples), length), dtype=torch.long)
        for row, example in enumerate(examples):
            n = len(example["input_ids"])
            ids[row, :n] = torch.tensor(example["input_ids"])
            types[row, :n] = torch.tensor(example["token_type_ids"])
            mask[row, :n] = 1
        labels = torch.tensor([e["label"] for e in examples], dtype=torch.long)
        batch = {"input_ids": ids, "token_type_ids": types, "labels": labels}
        if any(len(e["input_ids"]) < length for e in examples):
            batch["attention_mask"] = mask
        return batch


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The model's inputs on ``device`` (the labels stay where they are: evaluation keeps them on the host)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "labels"}


def model_attention_mask(mask: torch.Tensor | None, implementation: str | None) -> torch.Tensor | None:
    """The padding mask in the form the model uses as given, so transformers never inspects it.

    With a 2D mask, transformers' SDPA mask helper asks ``padding_mask.all()`` on every forward
    (``masking_utils._ignore_bidirectional_mask_sdpa``), a host-device sync per step on a GPU. A 4D
    mask is returned as is (``_preprocess_mask_arguments``: "If the mask is already 4D, simply return
    as-is"): for SDPA a boolean (batch, 1, 1, length) mask, True where a token is attended to, built
    on the device without a sync. Other attention implementations get the 2D mask (their own path).
    ``None`` (no padding in the batch, decided by the collator on the host) stays None.
    """
    if mask is None or implementation != "sdpa":
        return mask
    return mask[:, None, None, :].bool()


def prepare_text(
    cfg: RunConfig, device: torch.device, autocast: Any, num_workers: int, dist: Dist | None = None
) -> PreparedTask:
    """Build the text task: model, tokenized splits, loaders, loss, evaluation and AdamW.

    Under data parallelism (``dist``) each rank trains on its slice of every global batch and
    evaluates its block of the evaluation batches; the metrics are computed from all ranks' logits.
    """
    dist = dist or Dist()
    splits = load_splits(cfg.task, cfg.preset, cfg.cache_dir)
    tokenizer, model, source = load_text_model(cfg)
    max_length = cfg.effective_max_seq_length
    train = tokenize(tokenizer, splits["train"], cfg.task, max_length)
    attn = getattr(model.config, "_attn_implementation", None)
    # evaluation in length order: batches of similar lengths need little padding (metrics are order-free)
    evaluation = sorted(
        tokenize(tokenizer, splits[cfg.spec.eval_split], cfg.task, max_length),
        key=lambda e: len(e["input_ids"]),
    )
    model.to(device)
    collate = PadCollator(tokenizer.pad_token_id, multiple=8 if device.type == "cuda" else 1)
    pin = device.type == "cuda"
    train_set, eval_set = ListDataset(train), ListDataset(evaluation)

    global_batch = cfg.batch_size * dist.world_size
    # one sampler and one loader for the whole trial (persistent workers); each epoch re-aims the sampler
    sampler = EpochBatchSampler(
        len(train),
        global_batch,
        cfg.seed,
        0,
        rank=dist.rank,
        world_size=dist.world_size,
        lengths=[len(e["input_ids"]) for e in train],
    )
    train_loader = make_loader(train_set, sampler, collate, num_workers, pin)

    def train_batches(epoch: int, start_step: int) -> Any:
        sampler.set_epoch(epoch, start_step)
        return train_loader

    def forward(net: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        batch = _to_device(batch, device)
        with autocast():
            return net(
                input_ids=batch["input_ids"],
                token_type_ids=batch["token_type_ids"],
                attention_mask=model_attention_mask(batch.get("attention_mask"), attn),
            ).logits.float()

    def batch_loss(
        net: nn.Module, batch: dict[str, torch.Tensor], epoch: int, step: int
    ) -> tuple[torch.Tensor, int]:
        labels = batch["labels"]
        logits = forward(net, batch)
        return nnf.cross_entropy(logits, labels.to(device, non_blocking=True)), int(labels.shape[0])

    eval_batch = min(max(cfg.batch_size, 64), 512)
    eval_loader = make_loader(
        eval_set,
        eval_shard(len(evaluation), eval_batch, dist.rank, dist.world_size),
        collate,
        num_workers,
        pin,
    )

    @torch.no_grad()
    def evaluate(net: nn.Module) -> dict[str, float]:
        net.eval()
        logits_all = [torch.zeros((0, cfg.spec.num_labels), device=device)]
        labels_all = [torch.zeros((0,), dtype=torch.long)]
        for batch in eval_loader:
            logits_all.append(forward(net, batch))  # stays on the device: one copy at the end
            labels_all.append(batch["labels"])
        net.train()
        logits_local = torch.cat(logits_all).cpu()
        logits, truth = dist.gather_rows(logits_local), dist.gather_rows(torch.cat(labels_all))
        if truth.shape[0] != len(evaluation):
            raise RuntimeError(f"evaluated {truth.shape[0]} examples, expected {len(evaluation)}")
        predicted = logits.argmax(dim=1)
        return {
            "accuracy": accuracy(predicted, truth),
            "f1": binary_f1(predicted, truth),
            "eval_loss": float(nnf.cross_entropy(logits.double(), truth, reduction="sum")) / len(evaluation),
        }

    optimizer = torch.optim.AdamW(
        decay_groups(model, cfg.effective_weight_decay),
        lr=cfg.effective_learning_rate,
        eps=1e-8,
        **fused_kwargs(device),
    )
    return PreparedTask(
        model=model,
        train_size=len(train),
        steps_per_epoch=steps_per_epoch(len(train), global_batch, world_size=dist.world_size),
        train_batches=train_batches,
        batch_loss=batch_loss,
        evaluate=evaluate,
        optimizer=optimizer,
        schedule="linear",
        info={"model_source": source, "train_examples": len(train), "eval_examples": len(evaluation)},
    )
