"""kill -9 the suggestion service mid-experiment, start a new one: the experiment continues with exactly
the assignments an uninterrupted run gets (the service is stateless and deterministic)."""

from __future__ import annotations

import signal

import grpc
import pytest

from suggestion_service.process import ServiceProcess
from suggestion_service.proto import api_pb2, api_pb2_grpc
from tests.reliability.katib_sim import KatibSimulator
from tests.service.builders import bert_space, continuous_space

MAX_TRIALS = 14
KILL_AT = 5  # the reconcile during which the first server is killed


class Services:
    """Service child processes, started on demand; the current one can be SIGKILLed."""

    def __init__(self) -> None:
        self.current: ServiceProcess | None = None
        self.channel: grpc.Channel | None = None
        self.started = 0

    def stub(self) -> api_pb2_grpc.SuggestionStub:
        if self.current is None:
            self.current = ServiceProcess(log_level="WARNING")
            self.channel = grpc.insecure_channel(f"127.0.0.1:{self.current.port}")
            self.started += 1
        return api_pb2_grpc.SuggestionStub(self.channel)

    def kill(self) -> None:
        assert self.current is not None and self.channel is not None
        self.current.proc.send_signal(signal.SIGKILL)
        self.current.proc.wait(timeout=10)
        assert self.current.proc.returncode == -signal.SIGKILL
        self.channel.close()
        self.current.stop()
        self.current = None

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
        if self.current is not None:
            self.current.stop()


_LONG = pytest.mark.reliability  # the other algorithms: make test-reliability
CASES = [
    pytest.param("surrogate-gp", continuous_space, id="surrogate-gp-continuous"),
    pytest.param("surrogate-gp", bert_space, id="surrogate-gp-bert", marks=_LONG),
    pytest.param("surrogate-rf", continuous_space, id="surrogate-rf-continuous", marks=_LONG),
    pytest.param("grid", bert_space, id="grid-bert", marks=_LONG),
    pytest.param("random", continuous_space, id="random-continuous", marks=_LONG),
]


@pytest.mark.slow
@pytest.mark.parametrize(("algorithm", "space"), CASES)
def test_sigkill_mid_experiment_then_restart_gives_the_uninterrupted_assignments(algorithm, space) -> None:
    reference_services = Services()
    try:
        reference = KatibSimulator("restart", algorithm, space()).play(
            lambda _step: reference_services.stub(), MAX_TRIALS
        )
    finally:
        reference_services.close()
    assert reference_services.started == 1

    services = Services()
    sim = KatibSimulator("restart", algorithm, space())
    batches: list[list[dict[str, str]]] = []
    try:
        while len(sim.trials) < MAX_TRIALS:
            request = sim.next_request()
            if len(batches) == KILL_AT:
                # kill -9 while this reconcile's request is in flight, as a node failure would
                in_flight = services.stub().GetSuggestions.future(request, timeout=60)
                services.kill()
                try:
                    in_flight.result()
                except grpc.RpcError as err:  # usually UNAVAILABLE; Katib retries the reconcile
                    assert err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), err
            reply = services.stub().GetSuggestions(request, timeout=60)
            batches.append(sim.apply(reply))
    finally:
        services.close()
    assert services.started == 2
    assert batches == reference
    assert len({tuple(sorted(a.items())) for b in batches for a in b}) == MAX_TRIALS  # no repeats


def test_a_fresh_process_answers_a_mid_experiment_request_like_the_first() -> None:
    """The cheap version: one mid-experiment request, answered by two separate processes."""
    sim = KatibSimulator("fresh", "surrogate-gp", continuous_space())
    for _ in range(4):
        sim.apply(api_pb2.GetSuggestionsReply(parameter_assignments=_random_batch(sim)))
    request = sim.next_request()
    replies = []
    for _ in range(2):
        service = ServiceProcess(log_level="WARNING")
        try:
            with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
                replies.append(api_pb2_grpc.SuggestionStub(channel).GetSuggestions(request, timeout=60))
        finally:
            service.stop()
    assert (
        replies[0] == replies[1] and len(replies[0].parameter_assignments) == request.current_request_number
    )


def _random_batch(sim: KatibSimulator) -> list[api_pb2.GetSuggestionsReply.ParameterAssignments]:
    import numpy as np

    rng = np.random.default_rng(len(sim.trials))
    out = []
    n = sim.next_request().current_request_number
    for raw in sim.space.sample_raw(rng.random((n, len(sim.space.params)))):
        pa = api_pb2.GetSuggestionsReply.ParameterAssignments()
        for k, v in sim.space.assignment(raw).items():
            pa.assignments.add(name=k, value=v)
        out.append(pa)
    return out
