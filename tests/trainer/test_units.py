"""Small pieces: schedules, batch order, tiny data, the Prometheus exporter, the benchmark."""

from __future__ import annotations

import urllib.request

import pytest
import torch
from trainer.data import EpochBatchSampler, epoch_permutation, steps_per_epoch
from trainer.optim import lr_lambda
from trainer.tiny_data import tiny_dataset, vocabulary


def test_linear_and_cosine_schedules() -> None:
    linear = lr_lambda("linear", total_steps=10, warmup_steps=2)
    assert [round(linear(s), 3) for s in (0, 1, 2, 6, 10)] == [0.5, 1.0, 1.0, 0.5, 0.0]
    cosine = lr_lambda("cosine", total_steps=10, warmup_steps=0)
    assert (
        cosine(0) == pytest.approx(1.0)
        and cosine(5) == pytest.approx(0.5)
        and cosine(10) == pytest.approx(0.0)
    )


def test_batch_order_depends_only_on_seed_and_epoch() -> None:
    assert torch.equal(epoch_permutation(50, 1, 3), epoch_permutation(50, 1, 3))
    assert not torch.equal(epoch_permutation(50, 1, 3), epoch_permutation(50, 1, 4))
    full = list(EpochBatchSampler(10, 3, seed=0, epoch=0))
    assert [len(b) for b in full] == [3, 3, 3, 1]
    assert list(EpochBatchSampler(10, 3, seed=0, epoch=0, start_step=2)) == full[2:]
    assert [len(b) for b in EpochBatchSampler(10, 3, seed=0, epoch=0, min_batch=2)] == [3, 3, 3]
    assert steps_per_epoch(10, 3) == 4 and steps_per_epoch(10, 3, min_batch=2) == 3


def test_tiny_datasets_mirror_the_real_columns_and_splits() -> None:
    sst2, mrpc, cifar = tiny_dataset("sst2"), tiny_dataset("mrpc"), tiny_dataset("cifar10")
    assert set(sst2) == set(mrpc) == {"train", "validation", "test"} and set(cifar) == {"train", "test"}
    assert {"sentence", "label"} <= set(sst2["train"]) and {"sentence1", "sentence2", "label"} <= set(
        mrpc["train"]
    )
    assert set(sst2["test"]["label"]) == {-1} and set(sst2["train"]["label"]) == {0, 1}
    image = cifar["train"]["img"][0]
    assert image.size == (32, 32) and image.mode == "RGB" and set(cifar["train"]["label"]) == set(range(10))
    assert tiny_dataset("sst2")["train"]["sentence"][:5] == sst2["train"]["sentence"][:5]
    with pytest.raises(ValueError, match="allowed"):
        tiny_dataset("qnli")


def test_tiny_tokenizer_covers_the_tiny_text() -> None:
    from trainer.text_task import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    assert len(tokenizer) == len(vocabulary())
    ids = tokenizer(tiny_dataset("mrpc")["train"]["sentence1"][:20])["input_ids"]
    assert tokenizer.unk_token_id not in {i for row in ids for i in row}


def test_exporter_serves_gauges() -> None:
    import socket

    from trainer.prom_exporter import TrainingExporter

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exporter = TrainingExporter(port, "sst2", addr="127.0.0.1")
    try:
        exporter.update(step=12, samples_per_second=345.5, gpu_utilization=87.0)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        exporter.close()
    assert 'trainer_step{task="sst2"} 12.0' in body
    assert 'trainer_samples_per_second{task="sst2"} 345.5' in body
    assert 'trainer_gpu_utilization_percent{task="sst2"} 87.0' in body


def test_bench_measures_and_writes_its_section(tmp_path) -> None:
    from trainer.bench import SECTION, measure, render

    result = measure("resnet50", "tiny", torch.device("cpu"), batch=4, steps=1, warmup=0, compile_model=False)
    assert result["samples_per_second"] > 0 and result["gflop_per_sample"] > 0 and result["mfu"] is None
    markdown = render([result], "python -m trainer bench --shapes tiny")
    assert "tiny ResNet 16 px" in markdown and "`python -m trainer bench --shapes tiny`" in markdown
    from trainer.bench_report import write_section

    target = tmp_path / "benchmarks.md"
    write_section(target, SECTION, markdown)
    assert f"<!-- BEGIN {SECTION} -->" in target.read_text()


def test_resnet50_weights_url_comes_from_the_environment_when_set() -> None:
    from trainer.cache import RESNET50_WEIGHTS_URL, resnet50_weights_url

    assert resnet50_weights_url({}) == RESNET50_WEIGHTS_URL
    assert resnet50_weights_url({"TRAINER_RESNET50_WEIGHTS_URL": "  "}) == RESNET50_WEIGHTS_URL
    mirror = "http://mirror.internal/models/resnet50-11ad3fa6.pth"
    assert resnet50_weights_url({"TRAINER_RESNET50_WEIGHTS_URL": mirror}) == mirror
