"""``python -m tests.trainer.ddp_sigterm_worker ARGS``: the trainer CLI, whose rank 0 preempts the job.

For the data-parallel tests: ``SIGTERM_LAUNCHER_AT=EPOCH:STEP`` (0-based epoch, step within it) makes
rank 0 send SIGTERM to its parent, torchrun, before that step, as the kubelet does when the pod is
preempted; torchrun then signals every rank's process group.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import trainer.engine as engine
from trainer.cli import main


def _preempt_at_a_step() -> None:
    epoch_at, step_at = (int(part) for part in os.environ["SIGTERM_LAUNCHER_AT"].split(":"))
    real_prepare = engine.prepare
    sent: list[bool] = []

    def prepare(*args: Any, **kwargs: Any) -> Any:
        task = real_prepare(*args, **kwargs)
        real_loss = task.batch_loss

        def batch_loss(net: Any, batch: Any, epoch: int, step: int) -> Any:
            if os.environ.get("RANK") == "0" and (epoch, step) == (epoch_at, step_at) and not sent:
                sent.append(True)
                os.kill(os.getppid(), signal.SIGTERM)
            return real_loss(net, batch, epoch, step)

        task.batch_loss = batch_loss
        return task

    engine.prepare = prepare


if __name__ == "__main__":
    _preempt_at_a_step()
    sys.exit(main(sys.argv[1:]))
