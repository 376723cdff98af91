"""Warm start within the call's time: each prior fetch ends by the deadline, ValidateAlgorithmSettings
has its own budget, and reading many slow priors finishes across retries however long it takes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import grpc
import pytest

from suggestion_service.deadline import NO_DEADLINE, Deadline
from suggestion_service.errors import Unavailable
from suggestion_service.kube_priors import KubernetesPriorSource
from suggestion_service.prior_fetch import PriorCache, WarmStart
from suggestion_service.priors import BoundedPriorSource, PriorExperiment, PriorUnavailable
from suggestion_service.proto import api_pb2
from suggestion_service.server import VALIDATE_BUDGET_S, SuggestionServicer, work_deadline
from suggestion_service.settings import parse_settings

from .test_kube_priors import RawHTTP, experiment_object
from .test_warm_start import prior_experiment, warm_experiment

NO_CLIENT_DEADLINE = 9.223372035058544e18  # what grpc's time_remaining() gives without a deadline


def stalling_api(hold_s: float = 3.0) -> RawHTTP:
    """An API server slower than any deadline here: it holds every request ``hold_s`` (or until
    released), then answers with an Experiment object."""
    body = json.dumps({**experiment_object("sst2"), "items": []}).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return RawHTTP(head.encode() + b"Connection: close\r\n\r\n" + body, hold_s=hold_s)


@pytest.fixture
def stalling() -> Iterator[RawHTTP]:
    api = stalling_api()
    yield api
    api.close()


# ---- each fetch ends by the call's deadline ---------------------------------------------------------


def test_kubernetes_fetch_gives_up_at_the_call_deadline_not_its_own_25_s(stalling: RawHTTP) -> None:
    """The source's own limits (10 s per request, 25 s per fetch) are longer than the call has left:
    the fetch must end when the call's time is up, before the slow API server answers."""
    source = KubernetesPriorSource(stalling.url, token="t")
    assert isinstance(source, BoundedPriorSource)
    ws = WarmStart(source, namespace="default")
    with pytest.raises(Unavailable, match=r"did not finish within|timed out") as err:
        ws.fetch("default", "sst2", Deadline.after(0.3))
    assert not stalling.answered.is_set(), "the fetch waited for the API server past the deadline"
    assert "warm-start experiment default/sst2" in str(err.value)


def test_fetch_within_bounds_the_whole_fetch(stalling: RawHTTP) -> None:
    with pytest.raises(PriorUnavailable, match=r"did not finish within 0\.2 s|timed out"):
        KubernetesPriorSource(stalling.url, token="t").fetch_within("default", "sst2", 0.2)
    assert not stalling.answered.is_set()


class RecordingBoundedSource:
    """A bounded source that records the time it was given."""

    def __init__(self) -> None:
        self.given: list[float] = []

    def fetch(self, namespace: str, name: str) -> PriorExperiment:
        raise AssertionError("a bounded source is asked with fetch_within when the call has a deadline")

    def fetch_within(self, namespace: str, name: str, seconds: float) -> PriorExperiment:
        self.given.append(seconds)
        return prior_experiment(name, namespace)


def test_a_bounded_source_gets_the_time_left_to_the_deadline() -> None:
    source = RecordingBoundedSource()
    ws = WarmStart(source, namespace="default")
    ws.fetch("default", "sst2", Deadline.after(7.0))
    assert len(source.given) == 1 and 6.0 < source.given[0] <= 7.0


def test_without_a_deadline_a_bounded_source_keeps_its_own_limit() -> None:
    class Plain(RecordingBoundedSource):
        def fetch(self, namespace: str, name: str) -> PriorExperiment:
            return prior_experiment(name, namespace)

    source = Plain()
    assert WarmStart(source, namespace="default").fetch("default", "sst2", NO_DEADLINE).name == "sst2"
    assert source.given == []


# ---- ValidateAlgorithmSettings has its own budget ---------------------------------------------------


class _Context:
    """The part of grpc.ServicerContext the handlers use; ``abort`` records the status."""

    def __init__(self, remaining: float) -> None:
        self.remaining = remaining
        self.code: grpc.StatusCode | None = None
        self.details = ""

    def time_remaining(self) -> float:
        return self.remaining

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise RuntimeError("aborted")


def test_work_deadline_with_a_budget_takes_the_earlier_limit() -> None:
    now = time.monotonic()
    no_client = work_deadline(_Context(NO_CLIENT_DEADLINE), 25.0).at
    assert no_client is not None and now + 24.9 < no_client < time.monotonic() + 25.1
    katib = work_deadline(_Context(60.0), 25.0).at  # Katib's 60 s: the budget is earlier
    assert katib is not None and now + 24.9 < katib < time.monotonic() + 25.1
    late_retry = work_deadline(_Context(10.0), 25.0).at  # a retry late in Katib's context: 10 s less 1 s
    assert late_retry is not None and now + 8.9 < late_retry < time.monotonic() + 9.1
    assert VALIDATE_BUDGET_S == 25.0


class SleepingSource:
    """Every fetch takes ``seconds`` (a slow API server that the source cannot bound)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fetched: list[str] = []

    def fetch(self, namespace: str, name: str) -> PriorExperiment:
        self.fetched.append(name)
        time.sleep(self.seconds)
        return prior_experiment(name, namespace)


def test_validate_stops_reading_priors_at_its_own_budget_without_a_client_deadline() -> None:
    """grpcurl or any client without a deadline: validation still ends, with UNAVAILABLE, after its
    budget; the retry goes on from the priors read so far."""
    source = SleepingSource(0.3)
    servicer = SuggestionServicer(warm_start=WarmStart(source, namespace="default"), validate_budget_s=0.2)
    exp = warm_experiment(refs="sst2,cola,qnli,rte")
    request = api_pb2.ValidateAlgorithmSettingsRequest(experiment=exp)
    context = _Context(NO_CLIENT_DEADLINE)
    with pytest.raises(RuntimeError, match="aborted"):
        servicer.ValidateAlgorithmSettings(request, context)
    assert context.code is grpc.StatusCode.UNAVAILABLE
    assert "ran out of time reading warm-start experiments" in context.details
    assert source.fetched == ["sst2"]
    for _ in range(4):  # each retry reads one more, and none again
        context = _Context(NO_CLIENT_DEADLINE)
        try:
            servicer.ValidateAlgorithmSettings(request, context)
            break
        except RuntimeError:
            assert context.code is grpc.StatusCode.UNAVAILABLE
    assert context.code is None
    assert source.fetched == ["sst2", "cola", "qnli", "rte"]


# ---- the prior cache always finishes filling ----------------------------------------------------------


class ClockedSlowSource:
    """Each fetch takes ``real_s`` of real time (so a short call deadline passes after one) and
    ``clock_s`` on the cache's fake clock (so reading all priors takes longer than the cache TTL)."""

    def __init__(self, now: list[float], real_s: float = 0.25, clock_s: float = 25.0) -> None:
        self.now, self.real_s, self.clock_s = now, real_s, clock_s
        self.fetched: list[str] = []

    def fetch(self, namespace: str, name: str) -> PriorExperiment:
        self.fetched.append(name)
        time.sleep(self.real_s)
        self.now[0] += self.clock_s
        return prior_experiment(name, namespace)


REFS = "e1,e2,e3,e4,e5,e6"


def _resolve_until_done(ws: WarmStart, attempts: int) -> int:
    """Katib's retries: resolve with a call deadline shorter than one fetch; the number of calls
    needed (0 if ``attempts`` were not enough)."""
    exp = warm_experiment(refs=REFS)
    settings = parse_settings("surrogate-gp", [("warm_start_experiments", REFS)])
    for call in range(1, attempts + 1):
        try:
            ws.resolve(exp, settings, Deadline.after(0.2))
            return call
        except Unavailable:
            continue
    return 0


def test_reading_priors_longer_than_the_cache_ttl_still_completes_across_retries() -> None:
    """Six priors of 25 s each (150 s > the 60 s TTL), one per call: the first ones must not expire
    before the last is read, or every retry would be UNAVAILABLE for ever (a livelock)."""
    now = [0.0]
    source = ClockedSlowSource(now)
    ws = WarmStart(source, namespace="default", cache=PriorCache(ttl_s=60, clock=lambda: now[0]))
    calls = _resolve_until_done(ws, attempts=12)
    assert calls, f"never completed; fetched {source.fetched}"
    assert sorted(source.fetched) == sorted(REFS.split(",")), "an entry was read twice"


def test_after_the_fill_entries_expire_from_its_end_and_are_read_again() -> None:
    now = [0.0]
    source = ClockedSlowSource(now, real_s=0.0, clock_s=25.0)
    ws = WarmStart(source, namespace="default", cache=PriorCache(ttl_s=60, clock=lambda: now[0]))
    exp = warm_experiment(refs="e1,e2,e3")
    settings = parse_settings("surrogate-gp", [("warm_start_experiments", "e1,e2,e3")])
    ws.resolve(exp, settings)  # one fill, 75 s on the clock: e1 read at 25
    assert source.fetched == ["e1", "e2", "e3"]
    now[0] += 50.0  # 125: e1 is 100 s old, but the fill ended 50 s ago
    ws.resolve(exp, settings)
    assert source.fetched == ["e1", "e2", "e3"]
    now[0] += 11.0  # 61 s after the end of the fill: all expired, read again
    ws.resolve(exp, settings)
    assert source.fetched == ["e1", "e2", "e3", "e1", "e2", "e3"]
