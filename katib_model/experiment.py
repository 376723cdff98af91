"""One reading of a Katib ``Experiment`` (``kubeflow.org/v1beta1``) for every part of the project.

``KatibExperiment`` wraps an Experiment body as parsed from YAML (a dict; nothing here reads files)
and gives what the local runner, the manifest validator, the client and the benchmarks need, with
Katib v0.19's defaults: the search space and the ``api.v1.beta1`` requests (``katib_model.parameters``,
``katib_model.requests``), the objective and metric strategies, the trial template with Katib's
substitution (``katib_model.template``), the metrics collector (``katib_model.collector``), the trial
Job's retry rules (``katib_model.retry``) and the warm-start references. Problems are ``ManifestError``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from katib_model.collector import CollectorSpec, collector_spec
from katib_model.errors import ManifestError
from katib_model.parameters import parameter_specs
from katib_model.requests import TrialRecord, suggestions_request
from katib_model.retry import RetryRules, retry_rules
from katib_model.template import TrialTemplate
from suggestion_service.proto import api_pb2

if TYPE_CHECKING:
    from suggestion_service.space import SearchSpace

MAXIMIZE, MINIMIZE = "maximize", "minimize"
STRATEGIES = ("min", "max", "latest")
#: Katib's default ``spec.parallelTrialCount``.
DEFAULT_PARALLEL = 3
#: kubectl's namespace for an object without ``metadata.namespace``.
DEFAULT_NAMESPACE = "default"
WARM_START_SETTING = "warm_start_experiments"
_BUDGET_FIELDS = ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount")


def _is_number(value: Any) -> bool:
    """True for a finite number (or a string of one), not a bool."""
    if isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class KatibExperiment:
    """An Experiment body; ``default_namespace`` stands in for an unset ``metadata.namespace``.

    Readings are cached: the body must not change after the first one.
    """

    body: Mapping[str, Any]
    default_namespace: str = DEFAULT_NAMESPACE

    @classmethod
    def from_body(
        cls, body: Any, default_namespace: str = DEFAULT_NAMESPACE, path: str = ""
    ) -> KatibExperiment:
        """Check the fields every reading relies on and wrap the body (ManifestError naming ``path``)."""
        where = path or "experiment"
        if not isinstance(body, dict) or body.get("kind") != "Experiment":
            raise ManifestError(f"{where}: not a Katib Experiment (kind must be Experiment)")
        meta = body.get("metadata") or {}
        if not meta.get("name"):
            raise ManifestError(f"{where}: metadata.name is missing")
        spec = body.get("spec")
        if not isinstance(spec, dict):
            raise ManifestError(f"{where}: spec is missing")
        where = f"{path or 'experiment'} ({meta['name']})"
        objective = spec.get("objective") or {}
        if objective.get("type") not in (MAXIMIZE, MINIMIZE):
            raise ManifestError(f"{where}: spec.objective.type must be maximize or minimize")
        if not objective.get("objectiveMetricName"):
            raise ManifestError(f"{where}: spec.objective.objectiveMetricName is missing")
        for item in objective.get("metricStrategies") or []:
            if item.get("value") not in STRATEGIES:
                raise ManifestError(
                    f"{where}: metricStrategies value {item.get('value')!r} for {item.get('name')!r}; "
                    f"allowed: {', '.join(STRATEGIES)}"
                )
        if not (spec.get("algorithm") or {}).get("algorithmName"):
            raise ManifestError(f"{where}: spec.algorithm.algorithmName is missing")
        if not isinstance(spec.get("parameters"), list) or not spec["parameters"]:
            raise ManifestError(f"{where}: spec.parameters must be a non-empty list")
        for field in _BUDGET_FIELDS:
            value = spec.get(field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ManifestError(f"{where}: spec.{field} must be an integer, got {value!r}")
        goal = objective.get("goal")
        if goal is not None and not _is_number(goal):
            raise ManifestError(f"{where}: spec.objective.goal must be a number, got {goal!r}")
        if not isinstance(meta.get("labels") or {}, dict):
            raise ManifestError(f"{where}: metadata.labels must be a mapping, got {meta['labels']!r}")
        return cls(body, default_namespace)

    # --- identity -------------------------------------------------------------------------------
    @property
    def metadata(self) -> Mapping[str, Any]:
        """metadata (empty when unset)."""
        return self.body.get("metadata") or {}

    @property
    def name(self) -> str:
        """metadata.name."""
        return str(self.metadata.get("name") or "")

    @property
    def namespace(self) -> str:
        """metadata.namespace, else ``default_namespace``."""
        return str(self.metadata.get("namespace") or self.default_namespace)

    @property
    def labels(self) -> dict[str, str]:
        """metadata.labels."""
        return dict(self.metadata.get("labels") or {})

    @property
    def spec(self) -> Mapping[str, Any]:
        """The Experiment spec (empty when unset)."""
        return self.body.get("spec") or {}

    # --- algorithm ------------------------------------------------------------------------------
    @property
    def algorithm_name(self) -> str:
        """spec.algorithm.algorithmName."""
        return str((self.spec.get("algorithm") or {}).get("algorithmName") or "")

    @property
    def algorithm_settings(self) -> list[tuple[str, str]]:
        """spec.algorithm.algorithmSettings as (name, value) strings, as Katib sends them."""
        settings = (self.spec.get("algorithm") or {}).get("algorithmSettings") or []
        return [(str(s.get("name")), str(s.get("value", ""))) for s in settings]

    def warm_start_refs(self) -> list[tuple[str, str]]:
        """(namespace, name) of each experiment named by ``warm_start_experiments``, parsed by the
        suggestion service's own settings parser; a bare name is in this Experiment's namespace (where
        Katib runs the suggestion pod). Empty without the setting; the service's InvalidArgument when
        the settings do not parse (as its ValidateAlgorithmSettings would answer)."""
        from suggestion_service.settings import parse_settings

        settings = self.algorithm_settings
        if not any(name == WARM_START_SETTING for name, _ in settings):
            return []
        parsed = parse_settings(self.algorithm_name, settings)
        return [(ref.namespace or self.namespace, ref.name) for ref in parsed.warm_start_experiments]

    # --- objective ------------------------------------------------------------------------------
    @property
    def objective(self) -> Mapping[str, Any]:
        """spec.objective (empty when unset)."""
        return self.spec.get("objective") or {}

    @property
    def objective_metric(self) -> str:
        """The objective metric name."""
        return str(self.objective.get("objectiveMetricName") or "")

    @property
    def objective_type(self) -> str:
        """maximize or minimize."""
        return str(self.objective.get("type") or "")

    @property
    def additional_metrics(self) -> list[str]:
        """spec.objective.additionalMetricNames."""
        return [str(m) for m in self.objective.get("additionalMetricNames") or []]

    @property
    def goal(self) -> float | None:
        """spec.objective.goal, if set."""
        goal = self.objective.get("goal")
        return None if goal is None else float(goal)

    @property
    def metric_names(self) -> list[str]:
        """Objective first, then the additional metrics."""
        return [self.objective_metric, *[m for m in self.additional_metrics if m != self.objective_metric]]

    @property
    def metric_strategies(self) -> dict[str, str]:
        """Strategy per metric with Katib's defaulting (``setDefaultObjective``): max when maximizing,
        min when minimizing, for the objective and the additional metrics alike."""
        default = "max" if self.objective_type == MAXIMIZE else "min"
        strategies = {name: default for name in self.metric_names}
        for item in self.objective.get("metricStrategies") or []:
            strategies[str(item["name"])] = str(item["value"])
        return strategies

    # --- budget ---------------------------------------------------------------------------------
    @property
    def parallel_trial_count(self) -> int:
        """spec.parallelTrialCount (Katib default 3)."""
        return int(self.spec.get("parallelTrialCount") or DEFAULT_PARALLEL)

    @property
    def max_trial_count(self) -> int | None:
        """spec.maxTrialCount (None: unbounded)."""
        value = self.spec.get("maxTrialCount")
        return None if value is None else int(value)

    @property
    def max_failed_trial_count(self) -> int | None:
        """spec.maxFailedTrialCount (None: never fail the experiment for failed trials)."""
        value = self.spec.get("maxFailedTrialCount")
        return None if value is None else int(value)

    # --- search space and requests --------------------------------------------------------------
    @cached_property
    def parameter_specs(self) -> tuple[api_pb2.ParameterSpec, ...]:
        """spec.parameters as the ``ParameterSpec`` messages Katib sends (ManifestError if malformed)."""
        return tuple(parameter_specs(self.spec.get("parameters")))

    @cached_property
    def search_space(self) -> SearchSpace:
        """The suggestion service's SearchSpace of those messages (InvalidArgument if invalid)."""
        from suggestion_service.space import SearchSpace  # numpy: loaded only when a space is needed

        return SearchSpace.from_proto(self.parameter_specs)

    def experiment_proto(
        self, max_trial_count: int | None = None, parallel_trial_count: int | None = None
    ) -> api_pb2.Experiment:
        """The Experiment as Katib's controller converts it (``ConvertExperiment``); the budget may be
        overridden (a local run caps it). The search space is checked first, so an invalid one fails
        here with the service's message."""
        self.search_space  # noqa: B018 - checks the space (and caches it for later readings)
        exp = api_pb2.Experiment(name=self.name)
        spec = exp.spec
        spec.parameter_specs.parameters.extend(self.parameter_specs)
        spec.objective.type = api_pb2.MAXIMIZE if self.objective_type == MAXIMIZE else api_pb2.MINIMIZE
        spec.objective.objective_metric_name = self.objective_metric
        spec.objective.additional_metric_names.extend(self.additional_metrics)
        if self.goal is not None:
            spec.objective.goal = self.goal
        spec.algorithm.algorithm_name = self.algorithm_name
        for name, value in self.algorithm_settings:
            spec.algorithm.algorithm_settings.add(name=name, value=value)
        early = self.spec.get("earlyStopping") or {}
        if early:
            spec.early_stopping.algorithm_name = str(early.get("algorithmName") or "")
            for s in early.get("algorithmSettings") or []:
                spec.early_stopping.algorithm_settings.add(
                    name=str(s.get("name")), value=str(s.get("value", ""))
                )
        spec.parallel_trial_count = (
            self.parallel_trial_count if parallel_trial_count is None else parallel_trial_count
        )
        spec.max_trial_count = (self.max_trial_count or 0) if max_trial_count is None else max_trial_count
        return exp

    def validation_request(self, **budget: int | None) -> api_pb2.ValidateAlgorithmSettingsRequest:
        """The ValidateAlgorithmSettingsRequest Katib sends before the first suggestion (``budget``:
        ``experiment_proto``'s overrides)."""
        return api_pb2.ValidateAlgorithmSettingsRequest(experiment=self.experiment_proto(**budget))

    def suggestions_request(
        self, experiment: api_pb2.Experiment, trials: Iterable[TrialRecord], current: int
    ) -> api_pb2.GetSuggestionsRequest:
        """A GetSuggestionsRequest for ``current`` new assignments after ``trials`` (see
        ``katib_model.requests``), with this Experiment's metrics."""
        return suggestions_request(experiment, trials, self.metric_names, current)

    # --- trials ---------------------------------------------------------------------------------
    @property
    def trial_template(self) -> TrialTemplate:
        """spec.trialTemplate (ManifestError when it is missing)."""
        template = self.spec.get("trialTemplate")
        if not isinstance(template, Mapping):
            raise ManifestError(f"{self.name}: spec.trialTemplate is missing")
        return TrialTemplate(template)

    def trial_workload(self, assignment: Mapping[str, str], trial_name: str) -> dict[str, Any]:
        """The trial object Katib creates for ``assignment`` in this Experiment's namespace."""
        return self.trial_template.substitute(assignment, trial_name, self.namespace, where=self.name)

    @property
    def collector(self) -> CollectorSpec:
        """The metrics collector with Katib's defaults."""
        return collector_spec(self.spec)

    @property
    def retry_rules(self) -> RetryRules:
        """The trial workload's retry rules (ManifestError for a configMap template)."""
        spec = self.trial_template.trial_spec
        if spec is None:
            raise ManifestError(
                f"{self.name}: the trial spec is in a ConfigMap; its retry rules cannot be read"
            )
        return retry_rules(spec)
