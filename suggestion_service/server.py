"""The gRPC server Katib talks to: ``api.v1.beta1.Suggestion`` plus ``grpc.health.v1.Health``.

The handlers only translate between protobuf and :mod:`suggestion_service.engine`, map errors to gRPC
status codes, log one line per request and update the Prometheus metrics. All algorithm work (and all
state) lives in the engine, which rebuilds everything from the request: a restarted pod continues an
experiment exactly where it was.

Status codes follow what Katib's controller does with them (see docs/service.md):

- ``INVALID_ARGUMENT``: a bad search space, setting or request. For ``ValidateAlgorithmSettings``
  Katib marks the Experiment Failed with our message; for ``GetSuggestions`` it retries.
- ``UNAVAILABLE``: a transient failure reading warm-start experiments (the Kubernetes API is
  unreachable, timed out or answered 5xx); Katib retries both RPCs.
- ``INTERNAL``: a bug on our side; the message is one line, the traceback goes to the log only.
- ``RESOURCE_EXHAUSTED``: more concurrent RPCs than ``--max-concurrent-rpcs``, or a message larger
  than ``--max-message-bytes`` (gRPC answers both before a handler runs).

Bytes that do not decode as the RPC's request message get INVALID_ARGUMENT too (gRPC's own
deserializer would answer INTERNAL and log a traceback): see :func:`_lenient`.

Each call passes its arguments down explicitly: the servicer's ``WarmStart`` (which owns the bounded
prior cache) and a :class:`~suggestion_service.deadline.Deadline` built from the client's deadline
(Katib: a fixed 60 s) less :func:`reply_margin` (:func:`work_deadline`), for both RPCs: a surrogate
batch still being picked then is completed from the candidate pool and answered in time, and no
further warm-start experiment is read. Katib rejects a reply with fewer assignments than requested,
and on DEADLINE_EXCEEDED it resends the same request, which would run out of time again.
``ValidateAlgorithmSettings`` also has its own budget, :data:`VALIDATE_BUDGET_S`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from suggestion_service import engine
from suggestion_service.bayesopt import DEFAULT_PARTS, SearchParts
from suggestion_service.deadline import NO_DEADLINE, Deadline
from suggestion_service.errors import InvalidArgument, Unavailable
from suggestion_service.metrics import ServiceMetrics
from suggestion_service.prior_fetch import WarmStart
from suggestion_service.priors import PriorSource
from suggestion_service.proto import api_pb2, api_pb2_grpc
from suggestion_service.settings import ALGORITHMS

log = logging.getLogger("suggestion_service")

#: Health keys set to SERVING. Katib's kubelet gRPC probes ask for ``manager.v1beta1.Suggestion``
#: (a key, not the real service name); "" is the whole server; the real name is there for grpcurl users.
HEALTH_SERVICE_NAMES = ("", "manager.v1beta1.Suggestion", "api.v1.beta1.Suggestion")

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_CONCURRENT_RPCS = 32
DEFAULT_WORKERS = 4
#: Time kept back from the client's deadline for completing the batch, the reply and the network.
REPLY_MARGIN_S = 5.0
#: ValidateAlgorithmSettings' own budget (seconds), on top of the client's deadline less the margin.
#: Katib calls it under one 60 s context for all attempts of its retry interceptor (grpc_retry: up to
#: 10 attempts, 3 s apart, retrying UNAVAILABLE: suggestionclient.go, consts.DefaultGRPCRetry*), and
#: takes DEADLINE_EXCEEDED as *valid*. 25 s per attempt leaves an attempt that ran out of time reading
#: warm-start experiments (UNAVAILABLE) room for a second one of 25 s in the same context, which goes on
#: from the prior cache; without a client deadline (grpcurl) validation still ends.
VALIDATE_BUDGET_S = 25.0

_T = TypeVar("_T")
_SERVICE_NAME = "api.v1.beta1.Suggestion"


@dataclass(frozen=True)
class UndecodableRequest:
    """What the handlers receive instead of a request whose bytes are not a valid protobuf message."""

    message_type: str
    error: str

    def describe(self) -> str:
        """The INVALID_ARGUMENT message."""
        return f"the request is not a valid {self.message_type} protobuf message ({self.error})"


def _lenient(message_class: Any) -> Callable[[bytes], Any]:
    """A request deserializer that returns :class:`UndecodableRequest` instead of raising."""
    full_name = message_class.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except Exception as exc:  # DecodeError, RecursionError on absurd nesting, ...
            return UndecodableRequest(full_name, f"{type(exc).__name__}: {exc}".splitlines()[0])

    return deserialize


class SuggestionServicer(api_pb2_grpc.SuggestionServicer):
    """Answers Katib's Suggestion RPCs with :mod:`suggestion_service.engine`."""

    def __init__(
        self,
        metrics: ServiceMetrics | None = None,
        prior_source: PriorSource | None = None,
        warm_start: WarmStart | None = None,
        parts: SearchParts = DEFAULT_PARTS,
        *,
        warm_start_namespaces: Iterable[str] = (),
        validate_budget_s: float = VALIDATE_BUDGET_S,
    ) -> None:
        """``prior_source`` (wrapped in a cached ``WarmStart`` that reads the service's own namespace
        and ``warm_start_namespaces``) or a ready ``warm_start`` reads the experiments of
        ``warm_start_experiments``; neither = no source (such settings are rejected).
        ``parts``: the surrogate search's model and acquisition (benchmark prototypes pass theirs).
        ``validate_budget_s``: ValidateAlgorithmSettings' own time limit per call.
        These objects, with ``metrics``, are all the servicer keeps between calls: the warm start's
        prior cache is the only state that outlives one."""
        if warm_start is not None and (prior_source is not None or warm_start_namespaces):
            raise ValueError("give prior_source (and warm_start_namespaces) or warm_start, not both")
        if validate_budget_s <= 0:
            raise ValueError(f"validate_budget_s must be > 0, got {validate_budget_s}")
        self.metrics = metrics or ServiceMetrics()
        self.warm_start = (
            warm_start
            if warm_start is not None
            else WarmStart(prior_source, allowed_namespaces=warm_start_namespaces)
        )
        self.parts = parts
        self.validate_budget_s = validate_budget_s

    def GetSuggestions(  # noqa: N802 (gRPC method name)
        self, request: api_pb2.GetSuggestionsRequest, context: grpc.ServicerContext
    ) -> api_pb2.GetSuggestionsReply:
        """Return exactly ``request.current_request_number`` new parameter assignments."""
        if isinstance(request, UndecodableRequest):
            return self._undecodable("GetSuggestions", request, context)
        algorithm = request.experiment.spec.algorithm.algorithm_name
        details: dict[str, Any] = {
            "experiment": request.experiment.name or "-",
            "algorithm": algorithm or "-",
            "requested": request.current_request_number,
            "trials": len(request.trials),
        }
        self.metrics.history_size.labels(_label(algorithm)).observe(len(request.trials))

        def work() -> api_pb2.GetSuggestionsReply:
            result = engine.get_suggestions(
                request, self.warm_start, deadline=work_deadline(context), parts=self.parts
            )
            self.metrics.fit_seconds.labels(_label(algorithm)).observe(result.fit_seconds)
            self.metrics.assignments.labels(_label(algorithm)).inc(len(result.assignments))
            details.update(
                observed=result.n_observed,
                pending=result.n_pending,
                failed=result.n_failed,
                fit_ms=round(result.fit_seconds * 1000, 1),
            )
            if result.n_prior:
                details["prior"] = result.n_prior
            if result.exhausted:
                details["exhausted"] = "true"
            reply = api_pb2.GetSuggestionsReply()
            for assignment in result.assignments:
                item = reply.parameter_assignments.add()
                for name, value in assignment.items():
                    item.assignments.add(name=name, value=value)
            return reply

        return self._answer("GetSuggestions", algorithm, context, details, work)

    def ValidateAlgorithmSettings(  # noqa: N802 (gRPC method name)
        self, request: api_pb2.ValidateAlgorithmSettingsRequest, context: grpc.ServicerContext
    ) -> api_pb2.ValidateAlgorithmSettingsReply:
        """Check the search space and algorithm settings; an empty reply means valid."""
        if isinstance(request, UndecodableRequest):
            return self._undecodable("ValidateAlgorithmSettings", request, context)
        algorithm = request.experiment.spec.algorithm.algorithm_name
        details: dict[str, Any] = {
            "experiment": request.experiment.name or "-",
            "algorithm": algorithm or "-",
        }

        def work() -> api_pb2.ValidateAlgorithmSettingsReply:
            deadline = work_deadline(context, self.validate_budget_s)
            engine.validate_experiment(request.experiment, self.warm_start, deadline)
            return api_pb2.ValidateAlgorithmSettingsReply()

        return self._answer("ValidateAlgorithmSettings", algorithm, context, details, work)

    def _undecodable(self, rpc: str, request: UndecodableRequest, context: grpc.ServicerContext) -> Any:
        """INVALID_ARGUMENT for bytes that are not the RPC's request message (logged and counted)."""

        def work() -> Any:
            raise InvalidArgument(request.describe())

        return self._answer(rpc, "", context, {"experiment": "-", "algorithm": "-"}, work)

    def _answer(
        self,
        rpc: str,
        algorithm: str,
        context: grpc.ServicerContext,
        details: dict[str, Any],
        work: Callable[[], _T],
    ) -> _T:
        """Run ``work``; map errors to status codes; log one line; record metrics."""
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        message = ""
        self.metrics.in_flight.inc()
        try:
            return work()
        except InvalidArgument as exc:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        except Unavailable as exc:
            code, message = grpc.StatusCode.UNAVAILABLE, str(exc)
        except Exception as exc:  # a bug: keep the pod alive, log the traceback, send one line
            log.exception("%s failed unexpectedly (experiment=%s)", rpc, details.get("experiment"))
            code = grpc.StatusCode.INTERNAL
            message = f"internal error in {rpc}: {type(exc).__name__}: {exc}".splitlines()[0]
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            label = _label(algorithm)
            self.metrics.latency.labels(rpc, label).observe(elapsed)
            self.metrics.requests.labels(rpc, label, code.name).inc()
            if code is not grpc.StatusCode.OK:
                self.metrics.errors.labels(rpc, label, code.name).inc()
                details["error"] = repr(message)
            fields = " ".join(f"{k}={v}" for k, v in details.items())
            log.info("%s %s code=%s ms=%.1f", rpc, fields, code.name, elapsed * 1000)
        context.abort(code, message)
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


def reply_margin(remaining: float) -> float:
    """Seconds kept back from ``remaining`` (the RPC's time left): ``REPLY_MARGIN_S``, or a tenth of a
    short deadline (5 s of Katib's 60 s)."""
    return min(REPLY_MARGIN_S, 0.1 * remaining)


def work_deadline(context: grpc.ServicerContext, budget_s: float | None = None) -> Deadline:
    """The ``Deadline`` by which the engine should have its answer: the client's deadline less
    ``reply_margin``, and at most ``budget_s`` from now; ``NO_DEADLINE`` when neither is set."""
    limits = [] if budget_s is None else [budget_s]
    remaining = context.time_remaining()
    if remaining is not None and math.isfinite(remaining) and remaining <= 1e8:  # a client deadline
        limits.append(remaining - reply_margin(remaining))
    return Deadline.after(max(0.0, min(limits))) if limits else NO_DEADLINE


def describe_source(source: PriorSource) -> str:
    """A short name of a prior source for the startup log line."""
    url = getattr(source, "api_url", None)
    return f"{type(source).__name__}({url})" if url else type(source).__name__


def add_suggestion_servicer(servicer: SuggestionServicer, server: grpc.Server) -> None:
    """Register ``servicer`` like ``api_pb2_grpc.add_SuggestionServicer_to_server``, but with lenient
    request deserializers (undecodable bytes reach the handler, which answers INVALID_ARGUMENT)."""
    handlers = {
        "GetSuggestions": grpc.unary_unary_rpc_method_handler(
            servicer.GetSuggestions,
            request_deserializer=_lenient(api_pb2.GetSuggestionsRequest),
            response_serializer=api_pb2.GetSuggestionsReply.SerializeToString,
        ),
        "ValidateAlgorithmSettings": grpc.unary_unary_rpc_method_handler(
            servicer.ValidateAlgorithmSettings,
            request_deserializer=_lenient(api_pb2.ValidateAlgorithmSettingsRequest),
            response_serializer=api_pb2.ValidateAlgorithmSettingsReply.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE_NAME, handlers),))


def _label(algorithm: str) -> str:
    """Bound the metrics' label cardinality: unknown algorithm names are lumped together."""
    return algorithm if algorithm in ALGORITHMS else "other"


@dataclass
class RunningServer:
    """A started server; ``stop()`` drains in-flight RPCs, flips health to NOT_SERVING first."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    metrics: ServiceMetrics
    metrics_port: int | None = None
    _metrics_http: Any = None
    _stopped: threading.Event = field(default_factory=threading.Event)

    def stop(self, grace: float | None = 5.0) -> None:
        """Report NOT_SERVING, stop accepting RPCs, wait up to ``grace`` s for in-flight ones."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self._metrics_http is not None:
            http_server, _thread = self._metrics_http
            http_server.shutdown()
            http_server.server_close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server terminates (or ``timeout``); True when it has."""
        return self.server.wait_for_termination(timeout)


def start_server(
    host: str = "127.0.0.1",
    port: int = 0,
    metrics_port: int | None = None,
    *,
    workers: int = DEFAULT_WORKERS,
    max_concurrent_rpcs: int = DEFAULT_MAX_CONCURRENT_RPCS,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    prior_source: PriorSource | None = None,
    parts: SearchParts = DEFAULT_PARTS,
    warm_start_namespaces: Iterable[str] = (),
) -> RunningServer:
    """Start the Suggestion + Health gRPC server (and optionally ``/metrics``) in background threads.

    ``port=0`` picks a free port (see ``RunningServer.port``). Requests beyond ``max_concurrent_rpcs``
    get RESOURCE_EXHAUSTED; messages over ``max_message_bytes`` are refused by gRPC.
    ``prior_source`` supplies the experiments named by the ``warm_start_experiments`` setting
    (see :mod:`suggestion_service.priors`); None = automatic: the Kubernetes API when running in a pod,
    otherwise none (warm-start settings are then an INVALID_ARGUMENT saying so). Warm start reads the
    service's own namespace and ``warm_start_namespaces`` (``prior_fetch.ANY_NAMESPACE``: all; the
    operator's ``--warm-start-namespaces``). ``parts``: the surrogate search's model and acquisition
    (the service's own; benchmark prototypes pass theirs).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if max_concurrent_rpcs < 1:
        raise ValueError(f"max_concurrent_rpcs must be >= 1, got {max_concurrent_rpcs}")
    if prior_source is None:
        from suggestion_service.kube_priors import make_prior_source

        prior_source = make_prior_source("auto")
    metrics = ServiceMetrics()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="suggest"),
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    servicer = SuggestionServicer(
        metrics, prior_source, parts=parts, warm_start_namespaces=warm_start_namespaces
    )
    add_suggestion_servicer(servicer, server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    bound = server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"could not bind the gRPC port {address} (in use, or not an address of this host)")
    metrics_http = None
    if metrics_port is not None:
        metrics_http = metrics.serve(metrics_port, addr="0.0.0.0" if host in ("0.0.0.0", "::") else host)
        metrics_port = metrics_http[0].server_port
    server.start()
    for name in HEALTH_SERVICE_NAMES:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "serving api.v1.beta1.Suggestion on %s:%d (metrics: %s; warm-start source: %s, namespaces: %s)",
        host,
        bound,
        f":{metrics_port}/metrics" if metrics_port is not None else "off",
        describe_source(prior_source),
        ", ".join([servicer.warm_start.namespace, *sorted(servicer.warm_start.allowed_namespaces)]),
    )
    return RunningServer(server, bound, health_servicer, metrics, metrics_port, metrics_http)
