"""The time by which a GetSuggestions call must have its answer, as a value passed down explicitly.

The gRPC handler builds a :class:`Deadline` from the RPC's deadline less a margin
(``server.work_deadline``) and passes it to ``engine.get_suggestions``, which hands it to the parts that
can run long: the batch loop (``batch.propose_batch``) completes a batch from the candidate pool once it
has passed, and the warm-start fetch (``prior_fetch.WarmStart``) stops reading prior experiments.
Callers outside a handler (tests, benchmarks, the local runner) pass nothing: :data:`NO_DEADLINE`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Deadline:
    """A ``time.monotonic()`` instant (``at``), or none (``at`` None: never passes)."""

    at: float | None = None

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now (negative: already passed)."""
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left (negative once passed; infinite without a deadline)."""
        return float("inf") if self.at is None else self.at - time.monotonic()

    def passed(self) -> bool:
        """Whether ``time.monotonic()`` has reached the deadline (always False without one)."""
        return self.at is not None and time.monotonic() >= self.at


#: No deadline: the call runs to completion.
NO_DEADLINE = Deadline()
