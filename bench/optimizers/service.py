"""Our algorithms as benchmark optimizers: Katib-shaped GetSuggestions requests to the real gRPC service.

``ServiceBackend`` starts ``suggestion_service.server.start_server`` on loopback once per benchmark
process (and, for a PROTOTYPE of ``bench.optimizers.experimental``, one more server at a time started
with the prototype's ``SearchParts``: the model and acquisition are arguments of the service, nothing is
patched); each ``ServiceOptimizer`` is one Katib Experiment (named after the task and seed, with
``random_state`` = seed) and keeps the Trial list Katib would send: every earlier trial with its
assignments, condition (RUNNING while pending, SUCCEEDED with the objective and ``train_seconds``
metrics, or FAILED) on every request, ``current_request_number`` = the trials wanted now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from bench.optimizers.peers import Optimizer, Problem, Suggestion
from bench.optimizers.spaces import to_proto
from suggestion_service.bayesopt import DEFAULT_PARTS, SearchParts
from suggestion_service.prior_fetch import ANY_NAMESPACE
from suggestion_service.priors import PriorSource
from suggestion_service.proto import api_pb2, api_pb2_grpc
from suggestion_service.server import RunningServer, start_server

TS = api_pb2.TrialStatus

# Variants of ours benchmarked: name -> (Katib algorithm name, extra algorithmSettings).
VARIANTS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "surrogate-gp": ("surrogate-gp", ()),
    "surrogate-rf": ("surrogate-rf", ()),
    "surrogate-gp-cost": ("surrogate-gp", (("acquisition", "ei_per_cost"), ("cost_metric", "train_seconds"))),
    "surrogate-gp-pi": ("surrogate-gp", (("acquisition", "pi"), ("n_initial_points", "2"))),
}
#: Search parts of registered PROTOTYPE variants (name -> parts; ``bench/analysis`` registers them with
#: the variant): a ``ServiceOptimizer`` of such a variant asks a server started with these parts.
PROTOTYPE_PARTS: dict[str, SearchParts] = {}


@dataclass
class _Served:
    """One loopback server, the parts it was started with, and a channel to it."""

    parts: SearchParts
    server: RunningServer
    channel: grpc.Channel
    stub: api_pb2_grpc.SuggestionStub

    def close(self) -> None:
        self.channel.close()
        self.server.stop(grace=1.0)


class ServiceBackend:
    """Loopback gRPC servers of the service plus channels to them (use as a context manager): one with
    the service's own search parts (``stub``) and, while a prototype runs, one with its parts
    (``stub_for``). ``prior_source``: where warm-start experiments are read (None: as the service
    decides, see ``start_server``)."""

    def __init__(self, prior_source: PriorSource | None = None) -> None:
        self.prior_source = prior_source
        self._own: _Served | None = None
        self._prototype: _Served | None = None

    def _start(self, parts: SearchParts) -> _Served:
        # The benchmark's priors are its own: warm start may name any namespace.
        server = start_server(
            "127.0.0.1",
            0,
            workers=2,
            prior_source=self.prior_source,
            parts=parts,
            warm_start_namespaces=[ANY_NAMESPACE],
        )
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        return _Served(parts, server, channel, api_pb2_grpc.SuggestionStub(channel))

    @property
    def stub(self) -> api_pb2_grpc.SuggestionStub | None:
        """The stub of the service's own server (None before ``__enter__``)."""
        return self._own.stub if self._own is not None else None

    def stub_for(self, parts: SearchParts) -> api_pb2_grpc.SuggestionStub:
        """A stub of a server answering with ``parts``: the own server for ``DEFAULT_PARTS``, else the
        prototype server, restarted when ``parts`` is another object than last time."""
        if self._own is None:
            raise RuntimeError("the service backend is not started (use it as a context manager)")
        if parts is DEFAULT_PARTS:
            return self._own.stub
        if self._prototype is None or self._prototype.parts is not parts:
            if self._prototype is not None:
                self._prototype.close()
                self._prototype = None
            self._prototype = self._start(parts)
        return self._prototype.stub

    def __enter__(self) -> ServiceBackend:
        self._own = self._start(DEFAULT_PARTS)
        return self

    def __exit__(self, *exc: object) -> None:
        for served in (self._prototype, self._own):
            if served is not None:
                served.close()
        self._own = self._prototype = None


class ServiceOptimizer(Optimizer):
    """One of ``VARIANTS`` driven through ``GetSuggestions`` (see the module docstring), answered with
    ``parts`` (None: the variant's ``PROTOTYPE_PARTS`` if registered, else the service's own)."""

    def __init__(
        self, problem: Problem, backend: ServiceBackend, variant: str, parts: SearchParts | None = None
    ) -> None:
        super().__init__(problem)
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; allowed: {', '.join(VARIANTS)}")
        self.name = variant
        self.stub = backend.stub_for(
            parts if parts is not None else PROTOTYPE_PARTS.get(variant, DEFAULT_PARTS)
        )
        algorithm, settings = VARIANTS[variant]
        settings = (("random_state", str(problem.seed)), *settings)
        self.experiment = api_pb2.Experiment(
            name=f"{problem.task_name}-{variant}-s{problem.seed}",
            spec=api_pb2.ExperimentSpec(
                parameter_specs=api_pb2.ExperimentSpec.ParameterSpecs(parameters=to_proto(problem.params)),
                objective=api_pb2.ObjectiveSpec(
                    type=api_pb2.MAXIMIZE if problem.maximize else api_pb2.MINIMIZE,
                    objective_metric_name=problem.metric,
                    additional_metric_names=[problem.cost_metric],
                ),
                algorithm=api_pb2.AlgorithmSpec(
                    algorithm_name=algorithm,
                    algorithm_settings=[api_pb2.AlgorithmSetting(name=k, value=v) for k, v in settings],
                ),
                max_trial_count=problem.budget,
            ),
        )
        self.trials: list[api_pb2.Trial] = []

    def request(self, n: int) -> api_pb2.GetSuggestionsRequest:
        """The request Katib would send now for ``n`` more trials."""
        return api_pb2.GetSuggestionsRequest(
            experiment=self.experiment,
            trials=self.trials,
            current_request_number=n,
            total_request_number=len(self.trials) + n,
        )

    def ask(self, n: int) -> list[Suggestion]:
        """``n`` assignments from the service; each becomes a RUNNING trial."""
        reply = self.stub.GetSuggestions(self.request(n), timeout=120)
        out = []
        for pa in reply.parameter_assignments:
            assignment = {a.name: a.value for a in pa.assignments}
            trial = _trial(f"{self.experiment.name}-{len(self.trials)}", assignment)
            self.trials.append(trial)
            out.append(Suggestion(assignment, len(self.trials) - 1))
        if len(out) != n:
            raise RuntimeError(f"the service returned {len(out)} assignments for {n} requested")
        return out

    def _tell(self, suggestion: Suggestion, loss: float | None, cost: float) -> None:
        trial = self.trials[suggestion.handle]
        value = None if loss is None else (-loss if self.problem.maximize else loss)
        if value is None:
            trial.status.condition = TS.FAILED
        else:
            trial.status.condition = TS.SUCCEEDED
            trial.status.observation.metrics.add(name=self.problem.metric, value=repr(float(value)))
        trial.status.observation.metrics.add(name=self.problem.cost_metric, value=repr(float(cost)))


def _trial(name: str, assignment: dict[str, str], metrics: Sequence[tuple[str, str]] = ()) -> api_pb2.Trial:
    return api_pb2.Trial(
        name=name,
        spec=api_pb2.TrialSpec(
            parameter_assignments=api_pb2.TrialSpec.ParameterAssignments(
                assignments=[api_pb2.ParameterAssignment(name=k, value=v) for k, v in assignment.items()]
            )
        ),
        status=api_pb2.TrialStatus(
            condition=TS.RUNNING,
            observation=api_pb2.Observation(metrics=[api_pb2.Metric(name=k, value=v) for k, v in metrics]),
        ),
    )
