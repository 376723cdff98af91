"""DataLoader worker processes and the SIGTERM that torchrun sends to each worker's process group."""

from __future__ import annotations

import subprocess
import sys

from tests.trainer.helpers import REPO, child_env

# The trainer's process is the leader of its own process group, as torchrun starts its workers; on
# SIGTERM torchrun signals that whole group (os.killpg), which used to reach the DataLoader worker
# processes too: they died, and the training process failed with "DataLoader worker ... killed by
# signal" instead of finishing its step and saving a checkpoint.
CHILD = """
import os, signal, torch
from trainer.data import EpochBatchSampler, ListDataset, make_loader
seen = []
signal.signal(signal.SIGTERM, lambda *_: seen.append(1))
sampler = EpochBatchSampler(400, 4, 0, 0, shuffle=False)
loader = make_loader(ListDataset(list(range(400))), sampler, torch.utils.data.default_collate, 2, False)
batches = 0
for batch in loader:
    if batches == 0:
        os.killpg(os.getpgrp(), signal.SIGTERM)  # what torchrun does when the pod is preempted
    batches += 1
print(batches, len(seen))
"""


def test_sigterm_to_the_process_group_spares_the_loader_workers() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
        cwd=REPO,
        start_new_session=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["100", "1"]  # every batch loaded; the trainer saw the signal once


# A SIGTERM sent to the group while a worker is starting (after the fork, before it has left the
# group) is blocked there, as the trainer blocks it around the fork; the worker drops it and goes on.
STARTING_WORKER = """
import os, signal
from trainer.data import _leave_process_group
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
os.kill(os.getpid(), signal.SIGTERM)
_leave_process_group(0)
print(os.getpgrp() == os.getpid(), signal.SIGTERM in signal.sigpending(), signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, set()))
"""


def test_a_starting_worker_drops_the_group_sigterm_and_leaves_the_group() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", STARTING_WORKER],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["True", "False", "False"]  # own group, nothing pending, unblocked
