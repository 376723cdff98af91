"""The time by which the current GetSuggestions call must have its answer.

The gRPC handler sets it from the RPC's deadline less a margin (``server.work_deadline``) with
:func:`using_deadline`; the parts that can run long read it: the batch loop in ``bayesopt`` completes a
batch from the candidate pool once it has passed, and the warm-start reader stops fetching prior
experiments. Outside a handler (tests, benchmarks, the local runner) there is no deadline.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("call_deadline", default=None)


@contextlib.contextmanager
def using_deadline(deadline: float | None) -> Iterator[None]:
    """Within this block :func:`past_deadline` is true once ``time.monotonic()`` reaches ``deadline``
    (None = no deadline)."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def past_deadline() -> bool:
    """Whether the current call's deadline (if any) has passed."""
    deadline = _deadline.get()
    return deadline is not None and time.monotonic() >= deadline
