"""The retry rules of a trial workload: what Kubernetes does when a trial's pod fails.

For a ``batch/v1`` Job (Kubernetes' Job controller, ``pkg/controller/job``):

* ``backoffLimit`` (default 6): the Job fails once more pods than this have failed and counted;
  so a trial runs at most ``backoffLimit + 1`` times.
* ``podFailurePolicy.rules``, checked in order for each failed pod, the first match decides:
  ``FailJob`` fails the Job at once, ``Ignore`` retries without counting the failure, ``Count`` counts it
  (as does a failure no rule matches). ``onExitCodes`` matches a container (``containerName``, or any)
  that exited with a non-zero code ``In`` / ``NotIn`` the values (exit code 0 never matches);
  ``onPodConditions`` matches a pod condition of that type and status (e.g. ``DisruptionTarget``, set
  on preemption, eviction and drain).
* ``activeDeadlineSeconds``: the Job fails once it has run that long, whatever is still running.

Training-operator kinds (PyTorchJob, TFJob, ...) keep ``backoffLimit`` and ``activeDeadlineSeconds``
under ``spec.runPolicy`` and have no pod failure policy; an unset ``backoffLimit`` there means no limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from katib_model.errors import ManifestError

#: Kubernetes' default ``spec.backoffLimit`` of a Job.
JOB_DEFAULT_BACKOFF_LIMIT = 6
FAIL_JOB, IGNORE, COUNT = "FailJob", "Ignore", "Count"
_ACTIONS = (FAIL_JOB, IGNORE, COUNT, "FailIndex")


@dataclass(frozen=True)
class PodFailureRule:
    """One ``podFailurePolicy`` rule."""

    action: str
    container_name: str | None = None  # onExitCodes.containerName (None: any container)
    operator: str = ""  # onExitCodes.operator: In | NotIn ("" for a pod-conditions rule)
    exit_codes: tuple[int, ...] = ()
    pod_conditions: tuple[tuple[str, str], ...] = ()  # (type, status) of onPodConditions

    def matches(self, exit_codes: Mapping[str, int], conditions: Mapping[str, str]) -> bool:
        """Whether a failed pod with these container exit codes and pod conditions (type -> status)
        matches this rule."""
        if self.operator:
            for container, code in exit_codes.items():
                if code == 0 or self.container_name not in (None, container):
                    continue
                if (code in self.exit_codes) == (self.operator == "In"):
                    return True
            return False
        return any(conditions.get(kind) == status for kind, status in self.pod_conditions)


@dataclass(frozen=True)
class RetryRules:
    """What happens when a trial's pod fails (see the module docstring)."""

    backoff_limit: int | None  # None: no limit (training-operator kinds without runPolicy.backoffLimit)
    active_deadline_seconds: int | None = None
    pod_failure_rules: tuple[PodFailureRule, ...] = ()

    def action(self, exit_codes: Mapping[str, int], conditions: Mapping[str, str] | None = None) -> str:
        """FailJob, Ignore or Count for a failed pod (first matching rule; Count when none matches)."""
        for rule in self.pod_failure_rules:
            if rule.matches(exit_codes, conditions or {}):
                return FAIL_JOB if rule.action == "FailIndex" else rule.action
        return COUNT

    def attempts(self) -> int | None:
        """The most times a trial runs when every failure counts (None: unlimited)."""
        return None if self.backoff_limit is None else self.backoff_limit + 1


def _int_field(spec: Mapping[str, Any], field: str, where: str) -> int | None:
    value = spec.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ManifestError(f"{where}.{field} must be a non-negative integer, got {value!r}")
    return value


def _rule(raw: Any, where: str) -> PodFailureRule:
    if not isinstance(raw, Mapping) or raw.get("action") not in _ACTIONS:
        raise ManifestError(f"{where}: each rule needs an action ({', '.join(_ACTIONS)}), got {raw!r}")
    on_codes, on_conditions = raw.get("onExitCodes"), raw.get("onPodConditions")
    if on_codes is not None:
        if not isinstance(on_codes, Mapping) or on_codes.get("operator") not in ("In", "NotIn"):
            raise ManifestError(f"{where}: onExitCodes.operator must be In or NotIn, got {on_codes!r}")
        values = on_codes.get("values") or []
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ManifestError(f"{where}: onExitCodes.values must be integers, got {values!r}")
        name = on_codes.get("containerName")
        return PodFailureRule(
            raw["action"], None if name is None else str(name), on_codes["operator"], tuple(values)
        )
    if not isinstance(on_conditions, Sequence) or not on_conditions:
        raise ManifestError(f"{where}: a rule needs onExitCodes or onPodConditions, got {raw!r}")
    pairs = tuple(
        (str(c.get("type")), str(c.get("status", "True"))) for c in on_conditions if isinstance(c, Mapping)
    )
    return PodFailureRule(raw["action"], pod_conditions=pairs)


def retry_rules(trial_spec: Mapping[str, Any]) -> RetryRules:
    """The retry rules of a trial workload (a Job, or a training-operator kind's ``runPolicy``)."""
    spec = trial_spec.get("spec") or {}
    if trial_spec.get("kind") == "Job":
        where = "trialSpec.spec"
        backoff = _int_field(spec, "backoffLimit", where)
        policy = spec.get("podFailurePolicy") or {}
        rules = tuple(
            _rule(r, f"{where}.podFailurePolicy.rules[{i}]") for i, r in enumerate(policy.get("rules") or [])
        )
        return RetryRules(
            JOB_DEFAULT_BACKOFF_LIMIT if backoff is None else backoff,
            _int_field(spec, "activeDeadlineSeconds", where),
            rules,
        )
    run_policy = spec.get("runPolicy") or {}
    where = "trialSpec.spec.runPolicy"
    return RetryRules(
        _int_field(run_policy, "backoffLimit", where), _int_field(run_policy, "activeDeadlineSeconds", where)
    )
