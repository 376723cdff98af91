"""``python -m tests.trainer.ddp_nan_worker ARGS``: the trainer CLI, with one rank's loss made NaN.

For the data-parallel tests: ``NAN_ON_RANK`` names the rank and ``NAN_AT_STEP`` the step (within
each epoch) whose training loss becomes NaN, as a diverging batch would on one GPU only.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import trainer.engine as engine
from trainer.cli import main


def _poison_one_rank() -> None:
    rank = int(os.environ.get("RANK", "0"))
    bad_rank, bad_step = int(os.environ["NAN_ON_RANK"]), int(os.environ["NAN_AT_STEP"])
    real_prepare = engine.prepare

    def prepare(*args: Any, **kwargs: Any) -> Any:
        task = real_prepare(*args, **kwargs)
        real_loss = task.batch_loss

        def batch_loss(net: Any, batch: Any, epoch: int, step: int) -> Any:
            loss, n = real_loss(net, batch, epoch, step)
            if rank == bad_rank and step == bad_step:
                loss = loss * float("nan")
            return loss, n

        task.batch_loss = batch_loss
        return task

    engine.prepare = prepare


if __name__ == "__main__":
    _poison_one_rank()
    sys.exit(main(sys.argv[1:]))
