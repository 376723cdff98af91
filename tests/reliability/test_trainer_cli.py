"""The trainer through its CLI (``python -m trainer``): kill -9 mid-run then rerun, unwritable output.

Already proven in tests/trainer (cited in docs/reliability.md, not repeated here): SIGTERM mid-run saves
and resumes to the uninterrupted result (test_resume.py::test_sigterm_mid_run_saves_and_resume_completes),
divergence fails cleanly (test_train_tiny.py::test_absurd_learning_rate_stops_with_a_clear_message),
a corrupt checkpoint is an error, not a silent restart (test_resume.py::
test_corrupt_checkpoint_is_an_error_not_a_restart), a missing cache names the path and the command
(test_train_tiny.py::test_missing_cache_names_path_and_command).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest
from trainer.katib_metrics import parse_metric_lines

from tests.trainer.helpers import REPO, child_env, run_cli, trial_args

QUALITY = ("accuracy", "f1", "top5_accuracy", "eval_loss")
EPOCHS = 4


def _final_quality(out: str) -> dict[str, str]:
    last = out.strip().splitlines()[-1]
    return {k: v for k, v in re.findall(r"(\w+)=(\S+)", last) if k in QUALITY}


def _epochs(out: str) -> list[int]:
    return [int(p.value) for p in parse_metric_lines(out, ["epoch"])]


@pytest.mark.reliability
def test_sigkill_after_a_checkpoint_then_rerun_resumes_to_the_uninterrupted_result(tmp_path) -> None:
    reference = run_cli(trial_args("sst2", tmp_path / "ref", epochs=EPOCHS, batch=16), timeout=300)
    assert reference.code == 0, reference.err[-2000:]

    # a checkpoint after every epoch (the default interval, 300 s, would write none in a tiny trial):
    # what this test proves is that a kill loses nothing the last checkpoint holds
    args = trial_args("sst2", tmp_path / "cut", "--checkpoint-interval-s", "0", epochs=EPOCHS, batch=16)
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=child_env(),
        cwd=REPO,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    while len(_epochs("".join(seen))) < 2:  # epoch 2 reported: its checkpoint is written or being written
        line = proc.stdout.readline()
        assert line, "the trainer exited before epoch 2"
        seen.append(line)
    proc.send_signal(signal.SIGKILL)  # no handler runs: nothing is saved on the way out
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    rerun = run_cli(args, timeout=300)
    assert rerun.code == 0, rerun.err[-2000:]
    assert "resuming from" in rerun.err  # not a silent restart from zero
    done = re.search(r"(\d+) of \d+ epochs done, continuing at epoch (\d+)", rerun.err)
    assert done, rerun.err[-2000:]
    assert 1 <= int(done.group(1)) <= 2  # from the last checkpoint (epoch 1 or 2 finished), nothing lost
    assert int(done.group(2)) == int(done.group(1)) + 1
    # Katib reads only the last pod's log: the resumed run re-prints the finished epochs, then the rest
    assert _epochs(rerun.out) == list(range(1, EPOCHS + 1))
    assert _final_quality(rerun.out) == _final_quality(reference.out)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["--output-dir", "--checkpoint-dir"])
def test_unwritable_output_or_checkpoint_dir_is_a_clear_error(tmp_path, which: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")  # running as root: chmod would not stop us, a file does
    args = trial_args("sst2", tmp_path, epochs=1)
    args[args.index(which) + 1] = str(blocker / "sub")
    result = run_cli(args, timeout=300)
    assert result.code not in (0, -signal.SIGKILL), result.err[-2000:]
    assert "Traceback" not in result.err, result.err[-3000:]
    assert str(blocker) in result.err, result.err[-2000:]
    assert which in result.err and result.code == 2
