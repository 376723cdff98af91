"""The BLAS thread limit: held while a call computes, shared by overlapping calls."""

from __future__ import annotations

import threading

import numpy as np
from threadpoolctl import threadpool_info

from suggestion_service import engine
from suggestion_service.blas_threads import PROCESS_LIMIT, SharedThreadLimit

from .builders import continuous_space, make_experiment, make_request


class _Recorder:
    """A fake ThreadpoolController recording what is limited and restored."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def limit(self, limits: int) -> _Recorder:
        self.events.append(f"limit {limits}")
        return self

    def restore_original_limits(self) -> None:
        self.events.append("restore")


def test_thread_limit_is_restored_only_when_the_last_concurrent_call_leaves() -> None:
    """BLAS thread counts are process-wide: overlapping calls (gRPC worker threads) share one limit,
    which a call that finishes first must not lift under a call still running."""
    recorder = _Recorder()
    limit = SharedThreadLimit(1, controller=lambda: recorder)
    first, second = limit.held(), limit.held()
    first.__enter__()
    second.__enter__()
    assert limit.users == 2
    first.__exit__(None, None, None)  # the first call finishes while the second still runs
    assert recorder.events == ["limit 1"]
    second.__exit__(None, None, None)
    assert recorder.events == ["limit 1", "restore"] and limit.users == 0
    with limit.held():  # a later call sets the limit again
        assert recorder.events[-1] == "limit 1"
    assert recorder.events[-1] == "restore"


def test_a_failing_call_still_releases_the_limit() -> None:
    recorder = _Recorder()
    limit = SharedThreadLimit(2, controller=lambda: recorder)
    try:
        with limit.held():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert recorder.events == ["limit 2", "restore"] and limit.users == 0


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_a_call_runs_single_threaded_and_leaves_the_process_as_it_found_it() -> None:
    """Through the real threadpoolctl: inside a call BLAS runs on one thread; afterwards the counts
    are the original ones, and no call is left counted."""
    np.ones((2, 2)) @ np.ones((2, 2))  # make sure the BLAS library is loaded
    before = _blas_threads()
    seen: list[list[int]] = []
    with PROCESS_LIMIT.held():
        seen.append(_blas_threads())
        worker = threading.Thread(target=lambda: seen.append(_blas_threads()))
        worker.start()
        worker.join()
    assert all(n == 1 for counts in seen for n in counts)  # process-wide: other threads too
    exp = make_experiment("threads", continuous_space(), "surrogate-gp")
    assert len(engine.get_suggestions(make_request(exp, [], 2)).assignments) == 2
    assert _blas_threads() == before and PROCESS_LIMIT.users == 0
