"""Builders for realistic Katib requests (api_pb2 messages), shared by the service tests.

Import as ``from .builders import ...`` (or ``tests.service.builders``) inside tests/service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from suggestion_service.proto import api_pb2

TS = api_pb2.TrialStatus

_TYPES = {
    "double": api_pb2.DOUBLE,
    "int": api_pb2.INT,
    "discrete": api_pb2.DISCRETE,
    "categorical": api_pb2.CATEGORICAL,
}
_DISTRIBUTIONS = {
    None: api_pb2.UNIFORM,
    "uniform": api_pb2.UNIFORM,
    "logUniform": api_pb2.LOG_UNIFORM,
    "unspecified": api_pb2.DISTRIBUTION_UNSPECIFIED,
    "normal": api_pb2.NORMAL,
    "logNormal": api_pb2.LOG_NORMAL,
}


def param(
    name: str,
    kind: str,
    *,
    min: str = "",
    max: str = "",
    step: str = "",
    values: Sequence[str] = (),
    distribution: str | None = None,
) -> api_pb2.ParameterSpec:
    """One ParameterSpec; ``kind`` is double | int | discrete | categorical."""
    return api_pb2.ParameterSpec(
        name=name,
        parameter_type=_TYPES[kind],
        feasible_space=api_pb2.FeasibleSpace(
            min=min, max=max, step=step, list=list(values), distribution=_DISTRIBUTIONS[distribution]
        ),
    )


def bert_space() -> list[api_pb2.ParameterSpec]:
    """The seed's BERT fine-tuning space (3 x 2 x 2 x 2 = 24 configurations)."""
    return [
        param("learning_rate", "discrete", values=["2e-5", "3e-5", "5e-5"]),
        param("batch_size", "discrete", values=["16", "32"]),
        param("max_seq_length", "discrete", values=["128", "256"]),
        param("num_epochs", "discrete", values=["3", "4"]),
    ]


def resnet_space() -> list[api_pb2.ParameterSpec]:
    """The seed's ResNet-50 space (3 x 2 x 2 x 2 = 24 configurations)."""
    return [
        param("learning_rate", "discrete", values=["0.001", "0.01", "0.1"]),
        param("batch_size", "discrete", values=["32", "64"]),
        param("num_epochs", "discrete", values=["10", "20"]),
        param("weight_decay", "discrete", values=["1e-4", "1e-3"]),
    ]


def continuous_space() -> list[api_pb2.ParameterSpec]:
    """A continuous log-scale space: lr log-uniform, int layers, stepped dropout."""
    return [
        param("lr", "double", min="1e-5", max="1e-1", distribution="logUniform"),
        param("layers", "int", min="1", max="8"),
        param("dropout", "double", min="0", max="0.5", step="0.05"),
    ]


def categorical_space() -> list[api_pb2.ParameterSpec]:
    """A mixed space with categorical parameters (3 x 2 x 5 = 30 configurations)."""
    return [
        param("optimizer", "categorical", values=["adam", "sgd", "adamw"]),
        param("scheduler", "categorical", values=["cosine", "linear"]),
        param("warmup", "int", min="0", max="400", step="100"),
    ]


def make_experiment(
    name: str,
    params: Sequence[api_pb2.ParameterSpec],
    algorithm: str,
    settings: Iterable[tuple[str, str]] = (),
    maximize: bool = True,
    metric: str = "accuracy",
    *,
    additional_metrics: Sequence[str] = ("gpu_seconds",),
    max_trial_count: int = 0,
    parallel_trial_count: int = 0,
) -> api_pb2.Experiment:
    """An Experiment message as Katib's controller sends it."""
    return api_pb2.Experiment(
        name=name,
        spec=api_pb2.ExperimentSpec(
            parameter_specs=api_pb2.ExperimentSpec.ParameterSpecs(parameters=list(params)),
            objective=api_pb2.ObjectiveSpec(
                type=api_pb2.MAXIMIZE if maximize else api_pb2.MINIMIZE,
                objective_metric_name=metric,
                additional_metric_names=list(additional_metrics),
            ),
            algorithm=api_pb2.AlgorithmSpec(
                algorithm_name=algorithm,
                algorithm_settings=[api_pb2.AlgorithmSetting(name=k, value=v) for k, v in settings],
            ),
            parallel_trial_count=parallel_trial_count,
            max_trial_count=max_trial_count,
        ),
    )


def make_trial(
    name: str,
    assignment: Mapping[str, str],
    condition: int = TS.SUCCEEDED,
    metrics: Mapping[str, str | float] | None = None,
) -> api_pb2.Trial:
    """A Trial message; metric values are sent as strings like Katib does."""
    return api_pb2.Trial(
        name=name,
        spec=api_pb2.TrialSpec(
            parameter_assignments=api_pb2.TrialSpec.ParameterAssignments(
                assignments=[api_pb2.ParameterAssignment(name=k, value=v) for k, v in assignment.items()]
            )
        ),
        status=api_pb2.TrialStatus(
            condition=condition,
            observation=api_pb2.Observation(
                metrics=[api_pb2.Metric(name=k, value=str(v)) for k, v in (metrics or {}).items()]
            ),
        ),
    )


def make_request(
    experiment: api_pb2.Experiment, trials: Sequence[api_pb2.Trial], n: int
) -> api_pb2.GetSuggestionsRequest:
    """A GetSuggestionsRequest asking for ``n`` assignments (total = already assigned + n)."""
    return api_pb2.GetSuggestionsRequest(
        experiment=experiment,
        trials=list(trials),
        current_request_number=n,
        total_request_number=len(trials) + n,
    )
