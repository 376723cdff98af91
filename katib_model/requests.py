"""The ``api.v1.beta1`` requests Katib's controller sends to a suggestion service, built from trials.

Follows ``ConvertTrials`` in Katib v0.19's ``suggestionclient.go``: every trial is sent (Created and
Running ones too) except MetricsUnavailable ones and EarlyStopped ones without an observation; each
carries the experiment's objective, its assignment, start/completion time as
``2006-01-02T15:04:05Z`` (empty when unset), its condition and its observation (the metric values
already picked with the metric strategies).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from suggestion_service.proto import api_pb2

#: Katib's trial condition names -> ``TrialStatus.TrialConditionType``.
CONDITIONS = {
    "Created": api_pb2.TrialStatus.CREATED,
    "Running": api_pb2.TrialStatus.RUNNING,
    "Succeeded": api_pb2.TrialStatus.SUCCEEDED,
    "Killed": api_pb2.TrialStatus.KILLED,
    "Failed": api_pb2.TrialStatus.FAILED,
    "MetricsUnavailable": api_pb2.TrialStatus.METRICSUNAVAILABLE,
    "EarlyStopped": api_pb2.TrialStatus.EARLYSTOPPED,
}


@dataclass(frozen=True)
class TrialRecord:
    """What a request needs of one trial: ``condition`` is Katib's condition name, ``observation`` the
    metric value strings Katib would send (already picked with the metric strategies)."""

    name: str
    condition: str
    parameters: Mapping[str, str]
    observation: Mapping[str, str] = field(default_factory=dict)
    start_time: datetime | None = None
    completion_time: datetime | None = None


def katib_time(value: datetime | None) -> str:
    """A trial time as Katib sends it (``2006-01-02T15:04:05Z``; "" when unset)."""
    return "" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def is_sent(trial: TrialRecord) -> bool:
    """Whether Katib puts the trial in a GetSuggestions request."""
    if trial.condition == "MetricsUnavailable":
        return False
    return not (trial.condition == "EarlyStopped" and not trial.observation)


def suggestions_request(
    experiment: api_pb2.Experiment, trials: Iterable[TrialRecord], metric_names: Sequence[str], current: int
) -> api_pb2.GetSuggestionsRequest:
    """A GetSuggestionsRequest for ``current`` new assignments after ``trials`` (``total`` counts them
    all, as ``spec.requests`` does); only the named metrics of each observation are sent."""
    trials = list(trials)
    request = api_pb2.GetSuggestionsRequest(
        experiment=experiment, current_request_number=current, total_request_number=len(trials) + current
    )
    for trial in trials:
        if not is_sent(trial):
            continue
        item = request.trials.add(name=trial.name)
        item.spec.objective.CopyFrom(experiment.spec.objective)
        for name, value in trial.parameters.items():
            item.spec.parameter_assignments.assignments.add(name=name, value=value)
        item.status.start_time = katib_time(trial.start_time)
        item.status.completion_time = katib_time(trial.completion_time)
        item.status.condition = CONDITIONS.get(trial.condition, api_pb2.TrialStatus.UNKNOWN)
        for name in metric_names:
            if name in trial.observation:
                item.status.observation.metrics.add(name=name, value=trial.observation[name])
    return request
