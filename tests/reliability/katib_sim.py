"""A small Katib stand-in: asks the suggestion service for trials, "runs" them, asks again.

It plays the controller's loop (see /work/shared/notes/katib-protocol.md): keep ``parallel`` trials
active, ask for ``parallel - active`` new assignments with every trial so far in the request, finish
the oldest running trial with a synthetic objective, repeat until ``max_trials`` were created.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from suggestion_service.proto import api_pb2, api_pb2_grpc
from suggestion_service.space import SearchSpace

_TS = api_pb2.TrialStatus


def synthetic_accuracy(space: SearchSpace, assignment: dict[str, str]) -> float:
    """A deterministic objective of the configuration (a smooth bump around 0.3 in encoded space)."""
    x = space.encode(assignment)
    return float(0.5 + 0.45 * np.exp(-4.0 * np.mean((x - 0.3) ** 2)))


class KatibSimulator:
    """One experiment's trials and the requests Katib would send for it."""

    def __init__(
        self, name: str, algorithm: str, params: Sequence[api_pb2.ParameterSpec], parallel: int = 3
    ) -> None:
        self.experiment = api_pb2.Experiment(name=name)
        spec = self.experiment.spec
        spec.parameter_specs.parameters.extend(params)
        spec.objective.type = api_pb2.MAXIMIZE
        spec.objective.objective_metric_name = "accuracy"
        spec.algorithm.algorithm_name = algorithm
        spec.parallel_trial_count = parallel
        self.space = SearchSpace.from_proto(params)
        self.parallel = parallel
        self.trials: list[api_pb2.Trial] = []

    def next_request(self) -> api_pb2.GetSuggestionsRequest:
        """The GetSuggestions request for the next reconcile."""
        active = sum(1 for t in self.trials if t.status.condition == _TS.RUNNING)
        n = self.parallel - active
        return api_pb2.GetSuggestionsRequest(
            experiment=self.experiment,
            trials=list(self.trials),
            current_request_number=n,
            total_request_number=len(self.trials) + n,
        )

    def apply(self, reply: api_pb2.GetSuggestionsReply) -> list[dict[str, str]]:
        """Create the replied trials (RUNNING), then finish the oldest running one."""
        batch = [{a.name: a.value for a in pa.assignments} for pa in reply.parameter_assignments]
        for assignment in batch:
            t = api_pb2.Trial(name=f"{self.experiment.name}-{len(self.trials):03d}")
            for k, v in assignment.items():
                t.spec.parameter_assignments.assignments.add(name=k, value=v)
            t.status.condition = _TS.RUNNING
            self.trials.append(t)
        oldest = next(t for t in self.trials if t.status.condition == _TS.RUNNING)
        assignment = {a.name: a.value for a in oldest.spec.parameter_assignments.assignments}
        oldest.status.condition = _TS.SUCCEEDED
        oldest.status.observation.metrics.add(
            name="accuracy", value=f"{synthetic_accuracy(self.space, assignment):.6f}"
        )
        return batch

    def play(
        self,
        stub_for_step: Callable[[int], api_pb2_grpc.SuggestionStub],
        max_trials: int,
        timeout: float = 60.0,
    ) -> list[list[dict[str, str]]]:
        """Run reconciles until ``max_trials`` trials exist; ``stub_for_step(i)`` gives the stub for call i."""
        batches = []
        step = 0
        while len(self.trials) < max_trials:
            reply = stub_for_step(step).GetSuggestions(self.next_request(), timeout=timeout)
            batches.append(self.apply(reply))
            step += 1
        return batches
