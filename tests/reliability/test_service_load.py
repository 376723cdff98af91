"""Load: concurrent clients below the concurrency limit get only valid replies; above it, RESOURCE_EXHAUSTED.

The full run (32 clients, 10,000 requests) is ``python bench/load_service.py`` (figures in
docs/reliability.md); this is a small version of it.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.load_service import make_case, run_load
from suggestion_service.process import ServiceProcess
from suggestion_service.proto import api_pb2_grpc
from suggestion_service.space import SearchSpace
from tests.service.builders import TS, make_experiment, make_request, make_trial, param


@pytest.mark.reliability
def test_small_load_has_no_errors_and_only_valid_deterministic_replies() -> None:
    result = run_load(clients=8, requests=400, max_history=200, pool=100)
    assert result.errors == 0, result.codes
    assert result.problems == {}
    assert result.nondeterministic == 0
    assert sum(len(v) for v in result.latencies_ms.values()) == 400
    assert set(result.latencies_ms) == {"surrogate-gp", "surrogate-rf", "grid", "random"}
    assert result.peak_rss_mib < 1024


def test_load_cases_cover_what_the_issue_asks_for() -> None:
    cases = [make_case(i, 500) for i in range(400)]
    assert {c.algorithm for c in cases} == {"surrogate-gp", "surrogate-rf", "grid", "random"}
    assert {c.n for c in cases} == set(range(1, 9))
    sizes = [c.n_trials for c in cases]
    assert min(sizes) < 20 and max(sizes) > 480
    assert {c.space.is_finite() for c in cases} == {True, False}


def _moderate_request():
    specs = [param(f"p{i}", "double", min="0", max="1") for i in range(60)]
    space = SearchSpace.from_proto(specs)
    rng = np.random.default_rng(1)
    trials = [
        make_trial(f"t{i}", space.assignment(raw), TS.SUCCEEDED, {"accuracy": f"{rng.random():.4f}"})
        for i, raw in enumerate(space.sample_raw(rng.random((150, len(specs)))))
    ]
    return make_request(make_experiment("over-limit", specs, "surrogate-gp"), trials, 4)


@pytest.mark.slow
def test_requests_above_the_limit_get_resource_exhausted_and_the_server_survives() -> None:
    request = _moderate_request()
    service = ServiceProcess("--max-concurrent-rpcs", "2", "--workers", "2", log_level="WARNING")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            stub = api_pb2_grpc.SuggestionStub(channel)
            calls = [stub.GetSuggestions.future(request, timeout=120) for _ in range(12)]
            codes = []
            for call in calls:
                try:
                    reply = call.result()
                    assert len(reply.parameter_assignments) == 4
                    codes.append("OK")
                except grpc.RpcError as err:
                    codes.append(err.code().name)
                    assert "Concurrent RPC limit exceeded" in (err.details() or "")
            assert set(codes) == {"OK", "RESOURCE_EXHAUSTED"}, codes
            assert codes.count("OK") >= 2
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="manager.v1beta1.Suggestion"), timeout=10
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            assert len(stub.GetSuggestions(request, timeout=120).parameter_assignments) == 4
        assert service.proc.poll() is None
    finally:
        service.stop()
