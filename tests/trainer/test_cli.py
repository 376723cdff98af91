"""Argument parsing: the interface the manifests and the local runner rely on."""

from __future__ import annotations

import pytest
from trainer.cli import build_parser
from trainer.config import RunConfig


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


BASE = ("train", "--task", "sst2", "--learning-rate", "3e-5", "--batch-size", "32", "--num-epochs", "3")


def test_full_trial_command_parses() -> None:
    args = parse(
        *BASE,
        "--max-seq-length",
        "128",
        "--weight-decay",
        "0.01",
        "--seed",
        "7",
        "--model",
        "bert-base-uncased",
        "--cache-dir",
        "/cache",
        "--output-dir",
        "/out",
        "--checkpoint-dir",
        "/ckpt",
        "--preset",
        "full",
        "--compile",
        "--metrics-port",
        "9100",
    )
    assert (args.task, args.learning_rate, args.batch_size, args.num_epochs) == ("sst2", 3e-5, 32, 3)
    assert (args.seed, args.compile, args.metrics_port, args.checkpoint_dir) == (7, "on", 9100, "/ckpt")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [((), "auto"), (("--compile",), "on"), (("--compile", "off"), "off"), (("--compile", "auto"), "auto")],
)
def test_compile_takes_auto_on_off_and_a_bare_flag_means_on(flags: tuple[str, ...], expected: str) -> None:
    assert parse(*BASE, *flags).compile == expected


def test_checkpoint_interval_defaults_to_five_minutes_and_refuses_negatives(capsys) -> None:
    assert parse(*BASE).checkpoint_interval_s == 300
    assert parse(*BASE, "--checkpoint-interval-s", "0").checkpoint_interval_s == 0
    with pytest.raises(SystemExit):
        parse(*BASE, "--checkpoint-interval-s", "-1")
    assert "--checkpoint-interval-s" in capsys.readouterr().err


def test_last_repeated_flag_wins() -> None:
    args = parse(*BASE, "--preset", "full", "--cache-dir", "/a", "--preset", "tiny", "--cache-dir", "/b")
    assert (args.preset, args.cache_dir) == ("tiny", "/b")


def test_integral_floats_are_accepted_for_integers() -> None:
    assert parse(*BASE, "--batch-size", "64.0").batch_size == 64


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--learning-rate", "0", "(0, 100]"),
        ("--learning-rate", "nan", "(0, 100]"),
        ("--learning-rate", "fast", "(0, 100]"),
        ("--batch-size", "0", "[1, 65536]"),
        ("--batch-size", "12.5", "[1, 65536]"),
        ("--num-epochs", "-1", "[1, 1000]"),
        ("--max-seq-length", "4", "[8, 512]"),
        ("--weight-decay", "2", "[0, 1]"),
        ("--warmup-ratio", "1", "[0, 1)"),
        ("--metrics-port", "70000", "[1, 65535]"),
        ("--task", "imagenet", "sst2"),
        ("--preset", "huge", "tiny"),
    ],
)
def test_bad_values_exit_2_naming_flag_and_range(
    flag: str, value: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(*BASE, flag, value)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err
    assert expected in err


def test_missing_required_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse("train", "--task", "sst2", "--batch-size", "8", "--num-epochs", "1")
    assert exc.value.code == 2
    assert "--learning-rate" in capsys.readouterr().err


def test_warm_cache_task_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse("warm-cache", "--tasks", "sst2,cifar10", "--cache-dir", "/c").tasks == ["sst2", "cifar10"]
    with pytest.raises(SystemExit):
        parse("warm-cache", "--tasks", "sst2,imagenet")
    assert "comma-separated list of sst2, mrpc, cifar10" in capsys.readouterr().err


def test_defaults_per_task() -> None:
    text = RunConfig.from_args(parse(*BASE, "--output-dir", "/o"))
    assert (text.model, text.weight_decay, text.warmup_ratio, text.image_size) == (
        "bert-base-uncased",
        0.01,
        0.1,
        None,
    )
    assert text.checkpoint_dir == "/o/checkpoint"
    vision = RunConfig.from_args(
        parse(
            "train", "--task", "cifar10", "--learning-rate", "0.1", "--batch-size", "128", "--num-epochs", "2"
        )
    )
    assert (vision.model, vision.image_size, vision.weight_decay, vision.warmup_ratio) == (
        "resnet50",
        160,
        5e-4,
        0.0,
    )
    scratch = RunConfig.from_args(
        parse(
            "train",
            "--task",
            "cifar10",
            "--learning-rate",
            "0.1",
            "--batch-size",
            "8",
            "--num-epochs",
            "1",
            "--model",
            "resnet50-cifar",
        )
    )
    assert scratch.image_size == 32
    tiny = RunConfig.from_args(parse(*BASE, "--preset", "tiny"))
    assert tiny.model == "tiny-bert"


def test_fingerprint_ignores_locations_only() -> None:
    a = RunConfig.from_args(parse(*BASE, "--output-dir", "/a", "--metrics-port", "9000"))
    b = RunConfig.from_args(parse(*BASE, "--output-dir", "/b", "--compile"))
    c = RunConfig.from_args(parse(*BASE, "--seed", "1"))
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()


def test_unknown_vision_model_is_an_argument_error(in_process, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default --output-dir (its checkpoint folder receives trainer.log)
    run = in_process(
        [
            "train",
            "--task",
            "cifar10",
            "--learning-rate",
            "0.1",
            "--batch-size",
            "8",
            "--num-epochs",
            "1",
            "--model",
            "vgg16",
        ]
    )
    assert run.code == 2
    assert "--model for cifar10 must be one of resnet50, resnet50-cifar" in run.err


def test_cuda_request_without_gpu_fails_clearly(in_process, tmp_path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    run = in_process(
        [
            "train",
            "--task",
            "sst2",
            "--learning-rate",
            "1e-3",
            "--batch-size",
            "8",
            "--num-epochs",
            "1",
            "--preset",
            "tiny",
            "--device",
            "cuda",
            "--output-dir",
            str(tmp_path),
        ]
    )
    assert run.code == 2
    assert "--device cuda" in run.err


def test_bench_shapes_trial_is_the_trial_shaped_benchmark() -> None:
    """``python -m trainer bench --shapes trial`` (the issue's spelling) parses as ``bench-trial`` with
    the trial benchmark's own flags; other bench invocations are untouched."""
    from trainer.cli import build_parser, trial_shapes_alias

    argv = trial_shapes_alias(["bench", "--device", "cpu", "--shapes", "trial", "--preset", "tiny"])
    assert argv == ["bench-trial", "--device", "cpu", "--preset", "tiny"]
    assert trial_shapes_alias(["bench", "--shapes=trial"]) == ["bench-trial"]
    assert trial_shapes_alias(["bench", "--shapes", "tiny"]) == ["bench", "--shapes", "tiny"]
    args = build_parser().parse_args(argv)
    assert args.command == "bench-trial" and args.preset == "tiny" and args.device == "cpu"
