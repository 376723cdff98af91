"""Prometheus metrics of the suggestion service, kept in their own registry.

A private :class:`~prometheus_client.CollectorRegistry` per server keeps several in-process servers
(tests, the client's local runner) from fighting over the global default registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_HISTORY_BUCKETS = (0, 1, 5, 10, 25, 50, 100, 200, 500, 1000, 5000)


@dataclass
class ServiceMetrics:
    """Counters and histograms the server updates once per RPC."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "katib_surrogate_requests",
            "RPCs answered, by method, algorithm and gRPC status code.",
            ["rpc", "algorithm", "code"],
            registry=r,
        )
        self.errors = Counter(
            "katib_surrogate_errors",
            "RPCs that ended with a non-OK gRPC status, by method, algorithm and code.",
            ["rpc", "algorithm", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "katib_surrogate_request_seconds",
            "Wall time to answer an RPC.",
            ["rpc", "algorithm"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.fit_seconds = Histogram(
            "katib_surrogate_fit_seconds",
            "Time spent fitting the surrogate model in one GetSuggestions call.",
            ["algorithm"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.history_size = Histogram(
            "katib_surrogate_history_trials",
            "Trials in a GetSuggestions request (all conditions).",
            ["algorithm"],
            buckets=_HISTORY_BUCKETS,
            registry=r,
        )
        self.assignments = Counter(
            "katib_surrogate_assignments",
            "Parameter assignments returned.",
            ["algorithm"],
            registry=r,
        )
        self.in_flight = Gauge("katib_surrogate_in_flight", "RPCs being answered now.", registry=r)

    def serve(self, port: int, addr: str = "0.0.0.0") -> tuple[object, object]:
        """Expose ``/metrics`` on ``addr:port``; returns the (server, thread) pair to shut it down."""
        return start_http_server(port, addr=addr, registry=self.registry)
