"""Prior trials for warm start: what an earlier experiment ran and measured, and where it comes from.

The ``warm_start_experiments`` setting names earlier experiments (``namespace/name`` or ``name``, which
means the suggestion pod's own namespace). A ``PriorSource`` turns each name into a ``PriorExperiment``:
on a cluster ``suggestion_service.kube_priors`` reads the Trials through the Kubernetes API; in local
runs the client passes a source backed by its SQLite store (``client.local_priors``). The service only
sees this interface, so the model code does not know or care where the trials were stored.

Sources raise ``PriorNotFound`` (no such experiment), ``PriorForbidden`` (the service account may not
read it: say which RBAC rule is missing) or ``PriorUnavailable`` (a transient failure worth retrying).
A source that reads over the network also implements ``BoundedPriorSource``: the service then gives
each fetch the time left to the call's deadline, so no fetch runs past it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

#: Mounted in every pod that has a service account: ``namespace``, ``token``, ``ca.crt``.
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def service_namespace(env: Mapping[str, str] | None = None, sa_dir: Path = SERVICE_ACCOUNT_DIR) -> str:
    """The namespace bare experiment names refer to: env ``POD_NAMESPACE``, else the service account's
    namespace file (present in every pod), else ``"default"``."""
    env = os.environ if env is None else env
    if env.get("POD_NAMESPACE", "").strip():
        return env["POD_NAMESPACE"].strip()
    try:
        text = (sa_dir / "namespace").read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or "default"


class PriorError(Exception):
    """A prior experiment could not be read; the message says which one and why."""


class PriorNotFound(PriorError):  # noqa: N818 - names fixed by the interface
    """The named experiment (or its namespace) does not exist."""


class PriorForbidden(PriorError):  # noqa: N818
    """The source is not allowed to read the named experiment's trials (RBAC)."""


class PriorUnavailable(PriorError):  # noqa: N818
    """A transient failure (API server unreachable, timeout, 5xx); the call may be retried."""


@dataclass(frozen=True)
class PriorTrial:
    """One trial of an earlier experiment, as Katib stores it.

    assignment: parameter name -> value, as the strings Katib puts in ``parameterAssignments``.
    metrics: metric name -> value as a string: the one Katib would send a suggestion service (picked by
        the experiment's ``metricStrategies``: min/max, falling back to latest; sources without
        min/max give ``observation.metrics[].latest``); may be empty when the trial did not succeed.
    succeeded: the trial reached ``Succeeded`` (failed, killed, early-stopped and running ones are False).
    """

    assignment: dict[str, str]
    metrics: dict[str, str] = field(default_factory=dict)
    succeeded: bool = True


@dataclass(frozen=True)
class PriorExperiment:
    """An earlier experiment's objective and trials.

    objective_metric_name / objective_type: from its spec (``objective_type`` is ``"maximize"`` or
    ``"minimize"``); warm start requires both to equal the current experiment's.
    """

    namespace: str
    name: str
    objective_metric_name: str
    objective_type: str
    trials: tuple[PriorTrial, ...]

    @property
    def ref(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"


class PriorSource(Protocol):
    """Where prior experiments are read from (Kubernetes API, local store, or a fixed set in tests)."""

    def fetch(self, namespace: str, name: str) -> PriorExperiment:
        """The experiment ``namespace/name`` with its trials; raises a ``PriorError`` subclass."""
        ...


@runtime_checkable
class BoundedPriorSource(Protocol):
    """A ``PriorSource`` whose fetch can be bounded in time (the Kubernetes source)."""

    def fetch(self, namespace: str, name: str) -> PriorExperiment:
        """As ``PriorSource.fetch``, within the source's own time limit."""
        ...

    def fetch_within(self, namespace: str, name: str, seconds: float) -> PriorExperiment:
        """As ``fetch``, but giving up (``PriorUnavailable``) after at most ``seconds`` (and at most the
        source's own limit), however slow the reads."""
        ...


class NoPriorSource:
    """The source used when none is configured: every warm-start reference is an error that says how
    to enable one (run in a cluster with the RBAC from manifests/optional/warm-start, or pass
    ``--warm-start-source``)."""

    def fetch(self, namespace: str, name: str) -> PriorExperiment:
        """Always raises PriorError explaining that no source is configured."""
        raise PriorError(
            f"cannot read warm-start experiment {namespace}/{name}: this service has no prior-trial source "
            "(it is not running in a Kubernetes pod with a service account token, and no source was given)"
        )


class StaticPriorSource:
    """A fixed set of prior experiments held in memory (benchmarks, tests, embedding applications)."""

    def __init__(self, experiments: Iterable[PriorExperiment]) -> None:
        self.experiments: dict[tuple[str, str], PriorExperiment] = {}
        for experiment in experiments:
            key = (experiment.namespace, experiment.name)
            if key in self.experiments:
                raise ValueError(f"experiment {experiment.ref} is given twice")
            self.experiments[key] = experiment

    def fetch(self, namespace: str, name: str) -> PriorExperiment:
        """The stored experiment; PriorNotFound listing the ones held otherwise."""
        try:
            return self.experiments[(namespace, name)]
        except KeyError:
            held = ", ".join(sorted(e.ref for e in self.experiments.values())) or "none"
            raise PriorNotFound(
                f"experiment {namespace}/{name} not found (this source holds: {held})"
            ) from None
