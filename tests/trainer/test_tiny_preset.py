"""The tiny preset as a benchmark: how it maps the seed's hyperparameters, its data, its determinism."""

from __future__ import annotations

import re

import numpy as np
import pytest
from trainer.cli import build_parser
from trainer.config import TINY_SEQ_LENGTH_DIVISOR, RunConfig
from trainer.tasks import TINY_TEXT_LR_SCALE, TINY_VISION_WD_SCALE
from trainer.tiny_data import CIFAR_CLASSES, LABEL_NOISE, VISIBLE_AT_128, cifar_class, tiny_dataset

from tests.trainer.helpers import trial_args


def config(*argv: str) -> RunConfig:
    return RunConfig.from_args(build_parser().parse_args(["train", *argv]))


TEXT = ("--task", "sst2", "--learning-rate", "3e-5", "--batch-size", "16", "--num-epochs", "3")
VISION = ("--task", "cifar10", "--learning-rate", "0.1", "--batch-size", "32", "--num-epochs", "10")


def test_tiny_preset_maps_the_seed_hyperparameters() -> None:
    short = config(*TEXT, "--preset", "tiny", "--max-seq-length", "128")
    long = config(*TEXT, "--preset", "tiny", "--max-seq-length", "256")
    assert (short.effective_max_seq_length, long.effective_max_seq_length) == (16, 32)
    assert short.effective_learning_rate == pytest.approx(3e-5 * TINY_TEXT_LR_SCALE)
    assert config(*TEXT, "--preset", "tiny", "--max-seq-length", "8").effective_max_seq_length == 8
    assert config(*TEXT, "--preset", "tiny", "--lr-scale", "1").effective_learning_rate == pytest.approx(3e-5)
    notes = " ".join(long.tiny_scaling_notes())
    assert f"256 / {TINY_SEQ_LENGTH_DIVISOR} = 32 tokens" in notes and "= 0.003" in notes

    vision = config(*VISION, "--preset", "tiny", "--weight-decay", "1e-3")
    assert vision.effective_weight_decay == pytest.approx(1e-3 * TINY_VISION_WD_SCALE)
    assert vision.effective_learning_rate == 0.1 and vision.image_size == 12
    assert "weight decay 0.001 x" in " ".join(vision.tiny_scaling_notes())

    full_text, full_vision = (
        config(*TEXT, "--max-seq-length", "256"),
        config(*VISION, "--weight-decay", "1e-3"),
    )
    assert (full_text.effective_max_seq_length, full_text.effective_learning_rate) == (256, 3e-5)
    assert full_vision.effective_weight_decay == 1e-3
    assert full_text.tiny_scaling_notes() == [] and full_vision.tiny_scaling_notes() == []


def test_eval_splits_are_large_enough_to_resolve_small_differences() -> None:
    assert len(tiny_dataset("sst2")["validation"]["label"]) >= 800
    assert len(tiny_dataset("mrpc")["validation"]["label"]) >= 800
    assert len(tiny_dataset("cifar10")["test"]["label"]) >= 1000


def test_some_sst2_verdicts_come_after_the_short_truncation() -> None:
    from trainer.text_task import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    sentences = tiny_dataset("sst2")["validation"]["sentence"]
    lengths = np.array([len(ids) for ids in tokenizer(sentences)["input_ids"]])
    assert lengths.max() <= 32  # max_seq_length 256 (32 tiny tokens) sees every word
    assert 0.1 < (lengths > 16).mean() < 0.4  # 128 (16 tokens) cuts a minority
    strong = re.compile(r"\b(pos|neg)\w+")
    late = [s for s in sentences if len(s.split()) > VISIBLE_AT_128 + 2]
    assert late and all(not strong.search(" ".join(s.split()[:VISIBLE_AT_128])) for s in late)


def test_cifar_classes_share_colours_and_textures_pairwise() -> None:
    pairs = [cifar_class(k) for k in range(CIFAR_CLASSES)]
    assert len(set(pairs)) == CIFAR_CLASSES
    for index in (0, 1):
        counts = np.bincount([p[index] for p in pairs])
        assert counts.tolist() == [2] * 5  # no colour and no texture identifies a class alone


def test_labels_are_noisy_but_mostly_right() -> None:
    """Mean colour per class is distinct, and the labels agree with it for most images (not all)."""
    data = tiny_dataset("cifar10")["test"]
    images = np.stack([np.asarray(img, dtype=np.float32) for img in data["img"]]).mean(axis=(1, 2))
    labels = np.array(data["label"])
    centres = np.stack([images[labels == k].mean(axis=0) for k in range(CIFAR_CLASSES)])
    colour_of = np.array([cifar_class(k)[0] for k in range(CIFAR_CLASSES)])
    nearest = np.argmin(((images[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    agree = (colour_of[nearest] == colour_of[labels]).mean()
    assert 0.6 < agree < 1.0 - LABEL_NOISE["cifar10"] / 2


@pytest.mark.parametrize("task", ["sst2", "cifar10"])
def test_same_arguments_give_the_same_metrics(task: str, in_process, tmp_path) -> None:
    def quality(out: str) -> dict[str, str]:
        last = out.strip().splitlines()[-1]
        return {
            k: v
            for k, v in re.findall(r"(\w+)=(\S+)", last)
            if k not in ("train_seconds", "samples_per_second")
        }

    lr = {"sst2": "3e-5", "cifar10": "0.1"}[task]
    first = in_process(trial_args(task, tmp_path / "a", lr=lr, epochs=2))
    second = in_process(trial_args(task, tmp_path / "b", lr=lr, epochs=2))
    other_seed = in_process(trial_args(task, tmp_path / "c", "--seed", "7", lr=lr, epochs=2))
    assert first.code == second.code == other_seed.code == 0, first.err
    assert quality(first.out) == quality(second.out)
    assert quality(first.out) != quality(other_seed.out)
    assert "(see docs/trainer.md" in first.err  # the tiny preset's scaling is logged (stderr)
