"""The BLAS/OpenMP thread limit held while a call computes, shared by overlapping calls.

The models' matrices are small and the pod has 1-2 CPUs, so the numerical code runs single-threaded.
A thread limit (``threadpoolctl``) is process-wide by nature: it sets the thread count of the BLAS and
OpenMP libraries loaded in the process, not of the calling thread, while gRPC serves calls on several
threads at once. So the limit's state is process-wide too, and one object owns it:
``PROCESS_LIMIT``. It counts the calls inside: the first call in sets the limit, the last call out
restores the original counts, so a call that finishes first never lifts the limit under a call still
running. Two owners (say, one per servicer) would restore each other's limit, which is why the
engine does not take one as an argument. Between calls the count is 0 and nothing is limited.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from threadpoolctl import ThreadpoolController


class SharedThreadLimit:
    """A counted ``threadpoolctl`` limit of ``threads`` threads (see the module docstring).

    ``controller``: makes the ``ThreadpoolController`` on first use (a test passes a fake)."""

    def __init__(self, threads: int = 1, controller: Callable[[], Any] = ThreadpoolController) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads
        self._make_controller = controller
        self._controller: Any = None
        self._lock = threading.Lock()
        self._users = 0
        self._limiter: Any = None

    @property
    def users(self) -> int:
        """Calls currently inside ``held``."""
        with self._lock:
            return self._users

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Run the block with the limit in force (set by the first overlapping call in, restored by the
        last one out)."""
        with self._lock:
            if self._controller is None:
                self._controller = self._make_controller()
            if self._users == 0:
                self._limiter = self._controller.limit(limits=self.threads)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    self._limiter.restore_original_limits()
                    self._limiter = None


#: The process's one limit: single-threaded BLAS/OpenMP while any call computes.
PROCESS_LIMIT = SharedThreadLimit(1)
