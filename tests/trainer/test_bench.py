"""``python -m trainer bench``: batch-size sweeps, compile modes, OOM rows, flags (CPU, tiny shapes)."""

from __future__ import annotations

import json

import pytest
import torch
from trainer import bench
from trainer.cli import build_parser

TINY = [
    "bench",
    "--device",
    "cpu",
    "--shapes",
    "tiny",
    "--models",
    "resnet50",
    "--steps",
    "1",
    "--warmup",
    "0",
]


def _table_rows(markdown: str) -> list[list[str]]:
    """Body rows of the throughput table (cells stripped)."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--compile-mode", "nonsense"], "--compile-mode"),
        (["--batch-sizes", "0"], "--batch-sizes"),
        (["--batch-sizes", "64,,128"], "--batch-sizes"),
        (["--batch-sizes", "64,abc"], "--batch-sizes"),
        (["--batch-sizes", "8192"], "--batch-sizes"),
        (["--batch-size", "8", "--batch-sizes", "8,16"], "--batch-sizes"),
        (["--profile-steps", "0"], "--profile-steps"),
        (["--profile-batch-sizes", "-1"], "--profile-batch-sizes"),
    ],
)
def test_bad_bench_flags_are_argparse_errors_naming_the_flag(
    flags: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["bench", *flags])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {named}" in err, err


def test_bench_flags_parse() -> None:
    args = build_parser().parse_args(
        ["bench", "--compile-mode", "max-autotune-no-cudagraphs", "--batch-sizes", "64, 128,64"]
    )
    assert args.compile_mode == "max-autotune-no-cudagraphs" and args.batch_sizes == [64, 128]
    args = build_parser().parse_args(["bench", "--batch-size", "32"])
    assert args.batch_size == 32 and args.batch_sizes is None and args.compile_mode is None


@pytest.mark.parametrize(
    ("flags", "mode"),
    [(["--compile-mode", "reduce-overhead"], "reduce-overhead"), (["--compile"], "default"), ([], None)],
)
def test_compile_mode_is_passed_on_and_recorded(
    flags: list[str], mode: str | None, tmp_path, monkeypatch: pytest.MonkeyPatch, in_process
) -> None:
    seen = []

    def fake_make_step(model_name, shape, device, batch, compile_mode):
        seen.append(compile_mode)
        return lambda: None  # nothing is compiled: torch.compile costs a minute on a CPU

    monkeypatch.setattr(bench, "make_step", fake_make_step)
    out = tmp_path / "results.json"
    run = in_process([*TINY, "--batch-sizes", "2,4", *flags, "--json", str(out)])
    assert run.code == 0, run.err
    assert seen == [mode, mode]
    rows = json.loads(out.read_text())
    assert [(row["compile_mode"], row["compiled"]) for row in rows] == [(mode, mode is not None)] * 2
    label = f"compile {mode}" if mode else "eager"
    assert [row[1] for row in _table_rows(run.out)] == [label, label]


def test_oom_at_one_batch_size_is_a_row_and_the_sweep_goes_on(
    tmp_path, monkeypatch: pytest.MonkeyPatch, in_process
) -> None:
    real_make_step = bench.make_step

    def make_step(model_name, shape, device, batch, compile_mode):
        step = real_make_step(model_name, shape, device, batch, compile_mode)
        if batch != 8:
            return step

        def out_of_memory() -> None:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

        return out_of_memory

    monkeypatch.setattr(bench, "make_step", make_step)
    out = tmp_path / "sweep.json"
    run = in_process([*TINY, "--batch-sizes", "4,8,2", "--json", str(out)])
    assert run.code == 0, run.err
    rows = json.loads(out.read_text())
    assert [row["batch_size"] for row in rows] == [4, 8, 2]
    assert [bool(row.get("oom")) for row in rows] == [False, True, False]
    assert "OutOfMemoryError" in rows[1]["error"] and rows[1]["samples_per_second"] is None
    assert rows[0]["samples_per_second"] > 0 and rows[2]["samples_per_second"] > 0
    table = {int(row[4]): row for row in _table_rows(run.out)}
    assert table[8][6] == "OOM" and table[8][7] == "OOM" and table[4][7] != "OOM"
    assert "batch 8 eager on cpu: OOM" in run.err


def test_errors_other_than_oom_stop_the_sweep(monkeypatch: pytest.MonkeyPatch, in_process) -> None:
    def broken(*_args):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(bench, "make_step", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        in_process([*TINY, "--batch-sizes", "2,4"])


def test_is_oom_sees_wrapped_and_plain_runtime_ooms() -> None:
    assert bench.is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert bench.is_oom(RuntimeError("CUDA error: out of memory"))
    try:
        try:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        except torch.cuda.OutOfMemoryError as inner:
            raise ValueError("backend compiler failed") from inner
    except ValueError as wrapped:
        assert bench.is_oom(wrapped)
    assert not bench.is_oom(RuntimeError("expected all tensors to be on the same device"))


def test_report_only_merges_included_results(tmp_path, in_process) -> None:
    rows = [
        {
            "model": "BERT-base seq 128",
            "device": "NVIDIA H200",
            "dtype": "bf16 autocast",
            "batch_size": 256,
            "steps": 20,
            "samples_per_second": 100.0,
            "gflop_per_sample": 67.0,
            "tflops": 6.7,
            "mfu": 0.0068,
            "compiled": True,  # an older row: no compile_mode, no step_ms
        }
    ]
    first = tmp_path / "a.json"
    first.write_text(json.dumps(rows))
    merged = tmp_path / "all.json"
    run = in_process(["bench", "--report-only", "--include", str(first), "--json", str(merged)])
    assert run.code == 0, run.err
    assert json.loads(merged.read_text()) == rows
    [row] = _table_rows(run.out)
    assert row[:2] == ["BERT-base seq 128", "compile default"] and row[6] == "-" and row[-1] == "0.7%"
