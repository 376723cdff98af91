"""Shutdown: health turns NOT_SERVING while in-flight requests drain; SIGTERM finishes a slow request."""

from __future__ import annotations

import queue
import signal
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from suggestion_service.process import ServiceProcess
from suggestion_service.proto import api_pb2, api_pb2_grpc
from suggestion_service.server import start_server
from suggestion_service.space import SearchSpace
from tests.service.builders import TS, bert_space, make_experiment, make_request, make_trial, param

_HC = health_pb2.HealthCheckResponse
PROBE_KEY = "manager.v1beta1.Suggestion"  # what Katib's gRPC probes ask for
REFUSED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)  # a stopping gRPC server answers either


def test_in_flight_request_drains_while_health_watchers_see_not_serving(monkeypatch) -> None:
    from suggestion_service import engine

    entered, release = threading.Event(), threading.Event()
    real = engine.get_suggestions

    def slow(*args, **kwargs):
        entered.set()
        assert release.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "get_suggestions", slow)
    srv = start_server("127.0.0.1", 0)
    statuses: queue.Queue = queue.Queue()
    with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=PROBE_KEY))
        threading.Thread(
            target=lambda: [statuses.put(r.status) for r in _until_closed(watch)], daemon=True
        ).start()
        assert statuses.get(timeout=10) == _HC.SERVING
        stub = api_pb2_grpc.SuggestionStub(channel)
        request = make_request(make_experiment("drain", bert_space(), "surrogate-gp"), [], 3)
        in_flight = stub.GetSuggestions.future(request, timeout=60)
        assert entered.wait(10)
        stopper = threading.Thread(target=srv.stop, args=(30,))
        stopper.start()
        assert statuses.get(timeout=10) == _HC.NOT_SERVING  # flipped before the drain ends ...
        assert not in_flight.done()  # ... while the request is still running
        # Health flips first, then the port stops taking RPCs: wait for that, then new work is refused.
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                assert health.Check(health_pb2.HealthCheckRequest(service=PROBE_KEY), timeout=2).status == (
                    _HC.NOT_SERVING
                )
            except grpc.RpcError as exc:
                assert exc.code() in REFUSED, exc
                break
            time.sleep(0.01)
        with pytest.raises(grpc.RpcError) as err:  # no new work is accepted while draining
            stub.GetSuggestions(request, timeout=10)
        assert err.value.code() in REFUSED  # refused at once, not queued behind the drain
        release.set()
        reply = in_flight.result(timeout=30)  # the in-flight request completes normally
        assert len(reply.parameter_assignments) == 3
        watch.cancel()  # an open Watch stream is in flight too: it would hold the drain for the whole grace
        stopper.join(10)
        assert not stopper.is_alive()


def _until_closed(stream):
    try:
        yield from stream
    except grpc.RpcError:
        return


def _slow_request() -> api_pb2.GetSuggestionsRequest:
    """A genuinely large request (about 2 MB): surrogate-gp on 300 doubles with 300 completed trials,
    a batch of 8 -- seconds of model fitting."""
    specs = [param(f"p{i}", "double", min="0", max="1") for i in range(300)]
    space = SearchSpace.from_proto(specs)
    rng = np.random.default_rng(0)
    trials = [
        make_trial(f"t{i}", space.assignment(raw), TS.SUCCEEDED, {"accuracy": f"{rng.random():.4f}"})
        for i, raw in enumerate(space.sample_raw(rng.random((300, len(specs)))))
    ]
    return make_request(make_experiment("sigterm-drain", specs, "surrogate-gp"), trials, 8)


@pytest.mark.slow
def test_sigterm_drains_a_slow_request_then_exits_zero() -> None:
    request = _slow_request()
    service = ServiceProcess()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            stub = api_pb2_grpc.SuggestionStub(channel)
            started = time.monotonic()
            in_flight = stub.GetSuggestions.future(request, timeout=120)
            time.sleep(0.5)  # the service is now working on it
            assert not in_flight.done(), "the request is too fast to test draining; make it larger"
            service.proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            reply = in_flight.result(timeout=120)
            answered = time.monotonic()
        assert len(reply.parameter_assignments) == request.current_request_number
        assert answered > signalled > started  # answered after SIGTERM: drained, not cut off
        assert service.proc.wait(timeout=30) == 0
        log = service.log()
        assert "received SIGTERM: NOT_SERVING, draining" in log and "stopped" in log
        assert "code=OK" in log
    finally:
        service.stop()
