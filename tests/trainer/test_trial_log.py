"""The trial's own log file (``trainer.log`` beside the checkpoint): what a user reads after the pod is
gone. Under Katib's StdOut collector the trainer's output only reaches the collector's file in an
emptyDir, which is deleted with the pod."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest
from trainer.cli import build_parser
from trainer.config import RunConfig
from trainer.trial_log import TrialLog, trial_log_path

from tests.trainer.helpers import run_cli, trial_args

STARTED = re.compile(r"^=== \S+Z run started on \S+ \(pid \d+, rank 0\): python -m trainer train ", re.M)


def sections(log: str) -> list[str]:
    """The log split into one text per run (each begins with its 'run started' line)."""
    starts = [m.start() for m in STARTED.finditer(log)]
    return [log[a:b] for a, b in zip(starts, [*starts[1:], len(log)], strict=True)]


def test_a_bad_argument_is_in_the_log_with_its_exit_reason(tmp_path: Path) -> None:
    """A real process: argparse refuses the value before anything else runs, and the log has it."""
    run = run_cli(trial_args("sst2", tmp_path, lr="-1", epochs=1))
    assert run.code == 2
    message = "argument --learning-rate: must be in (0, 100], got '-1'"
    assert message in run.err  # the terminal (Katib's collector file) still gets everything
    (section,) = sections((tmp_path / "ckpt" / "trainer.log").read_text())
    assert message in section
    assert section.rstrip().splitlines()[-1].endswith("exit 2 (bad arguments)")


def test_every_attempt_appends_its_output_and_exit_reason(in_process, tmp_path: Path) -> None:
    """A preempted attempt, then a rerun refused for a checkpoint of other settings: one file, two runs,
    each with its output and the meaning of its exit code."""
    first = in_process(trial_args("sst2", tmp_path, "--stop-after-epoch", "1", epochs=2))
    assert first.code == 143, first.err
    second = in_process(trial_args("sst2", tmp_path, lr="5e-5", epochs=2))
    assert second.code == 6, second.err
    log = (tmp_path / "ckpt" / "trainer.log").read_text()
    one, two = sections(log)
    epoch_line = next(line for line in first.out.splitlines() if " epoch=1" in line)
    assert epoch_line in one  # stdout: the Katib metric lines
    assert "--stop-after-epoch" in one and "--learning-rate 3e-5" in one.splitlines()[0]
    assert one.rstrip().splitlines()[-1].endswith("exit 143 (preempted (checkpoint saved; a rerun resumes))")
    assert "different arguments (learning_rate: checkpoint 3e-05 vs now 5e-05)" in two  # stderr
    assert two.rstrip().splitlines()[-1].endswith("exit 6 (checkpoint unreadable, mismatched or unwritable)")
    assert "run started" not in first.out + first.err  # the frame lines go to the file only


def test_an_unexpected_error_leaves_its_traceback_in_the_log(in_process, tmp_path: Path, monkeypatch) -> None:
    import trainer.engine

    def boom(args: object) -> int:
        print("loading the model", file=sys.stderr)
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(trainer.engine, "run_training", boom)
    stdout, stderr = sys.stdout, sys.stderr
    with pytest.raises(RuntimeError):
        in_process(trial_args("cifar10", tmp_path))
    assert (sys.stdout, sys.stderr) == (stdout, stderr)  # the streams are given back
    (section,) = sections((tmp_path / "ckpt" / "trainer.log").read_text())
    assert "loading the model\n" in section
    assert "exit 1 (unexpected error: RuntimeError: CUDA error: an illegal memory access" in section
    assert (
        "Traceback (most recent call last)" in section and 'in boom\n    raise RuntimeError("CUDA' in section
    )


def test_a_runaway_log_is_capped_but_keeps_its_end(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "trainer.log"
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    with TrialLog(path, "python -m trainer train ...", limit=1000, tail_chars=300) as log:
        for i in range(2000):
            print(f"warning {i:05d}: the same thing again")
        print("trainer: error: out of memory at --batch-size 256", file=sys.stdout)
        log.finish(4)
    text = path.read_text()
    assert out.getvalue().count("warning") == 2000  # the stream itself is never cut
    assert len(text) < 1000 + 300 + 600
    assert "warning 00000" in text and "warning 01000" not in text
    assert re.search(r"=== \d+ characters left out after the first 10\d\d bytes; the last 300 follow", text)
    assert text.rstrip().splitlines()[-2] == "trainer: error: out of memory at --batch-size 256"
    assert text.rstrip().splitlines()[-1].endswith("exit 4 (out of memory)")


def test_a_log_that_cannot_be_written_never_fails_the_run(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with TrialLog(blocker / "ckpt" / "trainer.log", "python -m trainer train ...") as log:
        print("epoch=1 accuracy=0.5")
        log.finish(0)
    captured = capsys.readouterr()
    assert captured.out == "epoch=1 accuracy=0.5\n"
    assert f"trainer: warning: no trial log: cannot write {blocker / 'ckpt' / 'trainer.log'}" in captured.err


@pytest.mark.parametrize(
    "extra",
    [
        (),
        ("--checkpoint-dir", "/checkpoints/sst2-grid-abc"),
        ("--checkpoint-dir=/a", "--checkpoint-dir", "/b"),
        ("--output-dir", "/out"),
    ],
)
def test_the_log_path_is_the_checkpoint_folder_the_trainer_uses(extra: tuple[str, ...]) -> None:
    """Read from the command alone, it names the folder the trainer's own configuration resolves."""
    args = ["--task", "sst2", "--learning-rate", "3e-5", "--batch-size", "8", "--num-epochs", "1", *extra]
    config = RunConfig.from_args(build_parser().parse_args(["train", *args]))
    assert trial_log_path(args) == Path(config.checkpoint_dir) / "trainer.log"
    assert trial_log_path(args, rank=3) == Path(config.checkpoint_dir) / "trainer.rank3.log"


def test_only_train_runs_keep_a_log() -> None:
    assert TrialLog.for_command(["warm-cache", "--cache-dir", "/cache"], 0) is None
    assert TrialLog.for_command([], 0) is None
    assert trial_log_path(["--checkpoint-dir"]) is None  # a flag without its value: nothing to name


def test_train_help_keeps_no_log_and_creates_no_folder(tmp_path) -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = {"PYTHONPATH": str(repo / "trainer_image"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "trainer", "train", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []
    assert TrialLog.for_command(["train", "--help"], 0) is None
