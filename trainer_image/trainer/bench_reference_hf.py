"""Reference: the same text trial under Hugging Face ``Trainer`` (the ``run_glue`` recipe).

Same model folder (random BERT-base, or the tiny BERT), same synthetic SST-2/MRPC-like examples and
tokenization (truncation at 128, no padding), same learning rate, batch size, weight decay, 10% linear
warm-up and linear decay, bf16 autocast on CUDA and fp32 on CPU, and the same number of optimizer steps
and samples as the trial-shaped benchmark. Choices, stated:

- dynamic padding with ``DataCollatorWithPadding`` (``pad_to_multiple_of=8`` on CUDA, like our
  trainer; run_glue's own default is ``--pad_to_max_length``, padding everything to 128, which is slower);
- ``run_glue``'s defaults otherwise: ``Trainer``'s default optimizer (``adamw_torch_fused`` in
  transformers 5), ``per_device_eval_batch_size`` 8, ``dataloader_num_workers`` 0, logging every 500 steps;
- evaluation after every epoch (``eval_strategy="epoch"``, what a Katib trial reports; run_glue alone
  evaluates once at the end);
- checkpoints as ``run_glue`` saves them by default: every 500 steps (``save_steps``), model plus
  optimizer, scheduler and RNG state, plus the final ``save_model``. A checkpoint is timed once (the run
  saves after each epoch) and counted ``total_steps // 500`` times per trial.

Timing comes from ``TrainerCallback`` events with a CUDA synchronize in each: epoch begin and end
(training steps), ``on_evaluate`` (evaluation) and ``on_save`` (checkpoint). Two epochs of ``steps``
steps run; the second is timed.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from trainer.bench_synthetic import build_cache
from trainer.bench_trial import SEED_TRIALS, real_steps_per_epoch, synthetic_sizes

RUN_GLUE_SAVE_STEPS = 500
WARMUP_RATIO = 0.1


def _timeline_callback(device: torch.device) -> Any:
    from transformers import TrainerCallback

    class Timeline(TrainerCallback):  # type: ignore[misc]
        """Synchronised timestamps of the Trainer's epoch, evaluation and save events."""

        def __init__(self) -> None:
            self.events: list[tuple[str, int, float]] = []

        def _mark(self, name: str, state: Any) -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            self.events.append((name, int(state.global_step), time.perf_counter()))

        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._mark("epoch_begin", state)

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._mark("epoch_end", state)

        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._mark("evaluate", state)

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._mark("save", state)

    return Timeline()


def phase_seconds(events: list[tuple[str, int, float]]) -> dict[str, float]:
    """Train, eval and save seconds of the last epoch from the callback timeline.

    The Trainer's order after an epoch: ``epoch_end``, then the evaluation (``evaluate``), then the
    checkpoint (``save``).
    """
    names = [name for name, _step, _t in events]
    begin = len(names) - 1 - names[::-1].index("epoch_begin")
    tail = {name: t for name, _step, t in events[begin:]}
    missing = [name for name in ("epoch_end", "evaluate", "save") if name not in tail]
    if missing:
        raise RuntimeError(f"the Trainer's last epoch did not report {missing}; events: {names}")
    return {
        "train_s": tail["epoch_end"] - tail["epoch_begin"],
        "eval_s": tail["evaluate"] - tail["epoch_end"],
        "checkpoint_s": tail["save"] - tail["evaluate"],
    }


def measure_hf(
    task_name: str, batch: int, *, preset: str, device_choice: str, steps: int, work_dir: Path
) -> dict[str, Any]:
    """Run the text trial under Hugging Face ``Trainer`` for 2 x ``steps`` steps and extrapolate."""
    from datasets import load_from_disk
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainingArguments,
    )

    from trainer.bench import device_name
    from trainer.parallel import pick_device
    from trainer.tasks import get_task

    shape, spec = SEED_TRIALS[task_name], get_task(task_name)
    if spec.family != "text":
        raise ValueError(f"the Hugging Face reference runs text tasks, not {task_name!r}")
    device = pick_device(device_choice)
    train_n, eval_n = synthetic_sizes(shape, batch, steps, preset)
    cache = build_cache(work_dir / "cache", task_name, preset, train_n, eval_n)
    assert cache.model is not None
    tokenizer = AutoTokenizer.from_pretrained(cache.model)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(cache.model, num_labels=2)
    loaded = load_from_disk(str(cache.cache_dir / "datasets" / task_name))

    def tokenize(rows: dict[str, list[Any]]) -> Any:
        texts = [rows[column] for column in spec.input_columns]
        return tokenizer(*texts, truncation=True, max_length=128)

    columns = list(spec.input_columns)
    train = loaded["train"].map(tokenize, batched=True, remove_columns=columns)
    evaluation = loaded[spec.eval_split].map(tokenize, batch_size=1000, batched=True, remove_columns=columns)
    cuda = device.type == "cuda"
    timeline = _timeline_callback(device)
    run_steps = 2 * steps
    with tempfile.TemporaryDirectory(prefix="hf-ref-", dir=work_dir) as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch,
            learning_rate=shape.learning_rate,
            weight_decay=shape.weight_decay,
            num_train_epochs=2,
            warmup_steps=round(WARMUP_RATIO * run_steps),
            lr_scheduler_type="linear",
            eval_strategy="epoch",
            save_strategy="epoch",
            bf16=cuda,
            use_cpu=not cuda,
            report_to="none",
            disable_tqdm=True,
            seed=0,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train,
            eval_dataset=evaluation,
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if cuda else None),
            callbacks=[timeline],
        )
        trainer.remove_callback(PrinterCallback)  # the metrics dicts it prints would mix into stdout
        began = time.perf_counter()
        trainer.train()
        total_s = time.perf_counter() - began
        phases = phase_seconds(timeline.events)
        final_began = time.perf_counter()
        trainer.save_model(str(Path(out) / "final"))
        final_save_s = time.perf_counter() - final_began
        optimizer = str(getattr(args.optim, "value", args.optim))
    step_s = phases["train_s"] / steps
    eval_scale = shape.eval_examples / eval_n
    real_steps = real_steps_per_epoch(shape, batch)
    per_epoch = real_steps * step_s + phases["eval_s"] * eval_scale
    warmup_extra = max(0.0, total_s - 2 * (phases["train_s"] + phases["eval_s"] + phases["checkpoint_s"]))
    per_trial = {}
    for epochs in shape.epochs:
        saves = epochs * real_steps // RUN_GLUE_SAVE_STEPS
        per_trial[str(epochs)] = (
            epochs * per_epoch + saves * phases["checkpoint_s"] + final_save_s + warmup_extra
        )
    return {
        "kind": "reference",
        "reference": "hf-trainer",
        "task": task_name,
        "preset": preset,
        "batch_size": batch,
        "device": device_name(device),
        "dtype": "bf16" if cuda else "fp32",
        "optimizer": optimizer,
        "timed_steps": steps,
        "step_ms": 1000 * step_s,
        "samples_per_second": batch / step_s if step_s else None,
        "eval_s": phases["eval_s"],
        "eval_scale": eval_scale,
        "checkpoint_s": phases["checkpoint_s"],
        "final_save_s": final_save_s,
        "checkpoints_per_trial": {str(e): e * real_steps // RUN_GLUE_SAVE_STEPS for e in shape.epochs},
        "warmup_extra_s": warmup_extra,
        "real_steps_per_epoch": real_steps,
        "gpu_s_per_epoch": per_epoch,
        "gpu_s_per_trial": per_trial,
        "epochs": list(shape.epochs),
    }
