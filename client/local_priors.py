"""Warm start in local runs: earlier experiments of the client's SQLite store as a ``PriorSource``.

The suggestion service reads the experiments named by an experiment's ``warm_start_experiments``
setting through a :class:`suggestion_service.priors.PriorSource`. On a cluster that is the Kubernetes
API; in ``python -m client compare --local`` the runner passes :class:`LocalStorePriorSource`, which
answers from the same store the run writes to, so experiment B can warm-start from experiment A run
earlier (or earlier in the same run: :func:`order_for_warm_start` puts A first).

Namespaces: every local experiment keeps its manifest's ``metadata.namespace`` (default
``katib-surrogate``). A reference ``namespace/name`` must match it. A bare ``name`` means, as on a
cluster, the namespace of the experiment that refers to it. The service substitutes its own namespace
for a bare name before it asks the source (``service_namespace()``: ``$POD_NAMESPACE``, else
``default`` outside a pod), so the source accepts that namespace (or ``""``) for a name stored under
any namespace: experiment names are unique in a store (its primary key), so this is never ambiguous.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from client.errors import ClientError
from client.experiments import ExperimentDef
from client.local_store import LocalStore
from client.model import FAILED, SUCCEEDED, Experiment
from katib_model.experiment import WARM_START_SETTING
from suggestion_service.errors import InvalidArgument
from suggestion_service.priors import (
    PriorExperiment,
    PriorNotFound,
    PriorTrial,
    PriorUnavailable,
    service_namespace,
)

#: Conditions of a prior that the local runner accepts: it has finished, so its trials are final.
FINISHED = (SUCCEEDED, FAILED)


def _describe(experiments: Sequence[Experiment]) -> str:
    if not experiments:
        return "none"
    return ", ".join(f"{e.namespace}/{e.name} ({e.condition})" for e in experiments)


class LocalStorePriorSource:
    """A ``PriorSource`` over a :class:`client.local_store.LocalStore` (or the path of one).

    ``fetch`` opens its own connection each call: the gRPC server calls it from its worker threads,
    and a SQLite connection belongs to the thread that made it. The runner writes the store while the
    service reads it; WAL mode lets both proceed.
    """

    def __init__(self, store: LocalStore | str | Path, bare_namespace: str | None = None) -> None:
        self.path = Path(store.path if isinstance(store, LocalStore) else store)
        #: What the service substitutes for a bare name (``suggestion_service.priors.service_namespace``:
        #: $POD_NAMESPACE, else "default" outside a pod); such a request matches a stored name in any
        #: namespace.
        self.bare_namespace = bare_namespace if bare_namespace is not None else service_namespace()

    def _open(self) -> LocalStore:
        if not self.path.exists():
            raise PriorNotFound(
                f"the local store {self.path} does not exist; no experiment can be read from it"
            )
        try:
            return LocalStore(self.path)
        except ClientError as err:
            raise PriorUnavailable(str(err)) from None

    def fetch(self, namespace: str, name: str) -> PriorExperiment:
        """The stored experiment ``namespace/name`` with every trial it ran (see the module docstring).

        Trials carry their assignment, ``succeeded`` (condition Succeeded) and, for succeeded ones, the
        observation strings the runner stored (each metric picked with the experiment's
        metricStrategies, as Katib sends them in GetSuggestions). Raises ``PriorNotFound`` naming the
        store and the experiments it holds.
        """
        store = self._open()
        try:
            found = store.load([name])
            match = found[0] if found else None
            bare = namespace in ("", self.bare_namespace)
            if match is None or (match.namespace != namespace and not bare):
                experiments = store.load()
                where = f"{namespace}/{name}" if namespace else name
                hint = (
                    f"; it is stored in namespace {match.namespace!r}: write {match.namespace}/{name}"
                    if match is not None
                    else ""
                )
                raise PriorNotFound(
                    f"warm-start experiment {where} is not in the local store {self.path}{hint} "
                    f"(stored: {_describe(experiments)})"
                )
            stored = store.trials(name)
        except sqlite3.Error as err:  # e.g. "database is locked" past the 30 s busy timeout
            raise PriorUnavailable(f"cannot read the local store {self.path}: {err}") from None
        finally:
            store.close()
        trials = []
        for s in stored:
            succeeded = s.trial.condition == SUCCEEDED
            metrics = {k: v for k, v in s.observation.items() if succeeded and v != "unavailable"}
            trials.append(
                PriorTrial(assignment=dict(s.trial.parameters), metrics=metrics, succeeded=succeeded)
            )
        return PriorExperiment(
            namespace=match.namespace,
            name=match.name,
            objective_metric_name=match.objective_metric,
            objective_type=match.objective_type,
            trials=tuple(trials),
        )


# --- ordering a local run --------------------------------------------------------------------------------
def warm_start_refs(definition: ExperimentDef) -> list[tuple[str, str]]:
    """(namespace, name) of each experiment ``definition`` warm-starts from
    (:meth:`katib_model.KatibExperiment.warm_start_refs`: the service's own parser reads the setting; a
    bare name takes the experiment's own namespace, as on a cluster, where the suggestion pod runs in
    the experiment's namespace). Empty without the setting."""
    try:
        return definition.model.warm_start_refs()
    except InvalidArgument as err:
        raise ClientError(f"{definition.path or definition.name}: {err}") from None


def _check_stored_prior(
    d: ExperimentDef,
    key: tuple[str, str],
    in_run: ExperimentDef | None,
    stored: Callable[[str], Experiment | None],
    store_path: str,
) -> None:
    """ClientError unless the prior ``key`` (namespace, name) of ``d``, which is not part of this run, is
    finished in the store. ``in_run``: an experiment of this run with that name (in another namespace);
    ``stored``: as for ``order_for_warm_start``."""
    namespace, ref = key
    if in_run is not None:
        raise ClientError(
            f"{d.name} warm-starts from {namespace}/{ref}, but the experiment {ref} of this run is in "
            f"namespace {in_run.namespace}: write {in_run.namespace}/{ref} in {WARM_START_SETTING} "
            "(a bare name means the experiment's own namespace)"
        )
    prior = stored(ref)
    if prior is None:
        raise ClientError(
            f"{d.name} warm-starts from {namespace}/{ref}, which is neither in this run nor in "
            f"{store_path}; run it first (python -m client compare --local --experiment {ref}) or select "
            "it too"
        )
    if prior.namespace != namespace:
        raise ClientError(
            f"{d.name} warm-starts from {namespace}/{ref}, which is not in {store_path}: a stored "
            f"experiment {ref} is in namespace {prior.namespace}; write {prior.namespace}/{ref} in "
            f"{WARM_START_SETTING} to use it (a bare name means the experiment's own namespace)"
        )
    if prior.condition not in FINISHED:
        done = sum(t.is_terminal for t in prior.trials)
        total = prior.max_trial_count if prior.max_trial_count is not None else "?"
        raise ClientError(
            f"{d.name} warm-starts from {namespace}/{ref}, which has not finished in {store_path} "
            f"({prior.condition}, {done}/{total} trials done); a prior outside this run must be finished "
            f"({' or '.join(FINISHED)}): finish it first (python -m client compare --local --experiment "
            f"{ref}) or select it in this run"
        )


def order_for_warm_start(
    definitions: Sequence[ExperimentDef], stored: Callable[[str], Experiment | None], store_path: str
) -> list[ExperimentDef]:
    """The run order: every experiment after the experiments of this run it warm-starts from.

    Otherwise the given order is kept. A prior that is not part of this run must already be finished
    (Succeeded or Failed) in the store: a local run never starts a warm-started experiment from a
    prior that is missing or still incomplete, it fails before running anything. ``stored(name)``
    returns the store's copy of an experiment (None when absent). Raises ClientError for a missing or
    unfinished prior, a reference to itself, and a cycle.
    """
    by_key = {(d.namespace, d.name): d for d in definitions}
    names = {d.name: d for d in definitions}
    needs: dict[str, list[str]] = {}
    for d in definitions:
        needs[d.name] = []
        for key in warm_start_refs(d):
            if key == (d.namespace, d.name):
                raise ClientError(
                    f"{d.name}: {WARM_START_SETTING} names the experiment itself ({key[0]}/{key[1]}); an "
                    "experiment can only warm-start from other experiments: finished ones in the store or "
                    "others of this run"
                )
            if key in by_key:
                needs[d.name].append(by_key[key].name)
                continue
            _check_stored_prior(d, key, names.get(key[1]), stored, store_path)
    ordered: list[ExperimentDef] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = " -> ".join([*path[path.index(name) :], name])
            raise ClientError(
                f"warm-start references form a cycle: {cycle}; an experiment runs after the experiments it "
                f"warm-starts from, so they cannot refer to each other in a loop: remove one of these "
                f"{WARM_START_SETTING} references"
            )
        state[name] = "visiting"
        for prior in needs[name]:
            visit(prior, [*path, name])
        state[name] = "done"
        ordered.append(names[name])

    for d in definitions:
        visit(d.name, [])
    return ordered
