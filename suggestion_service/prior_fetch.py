"""Reading the experiments named by ``warm_start_experiments``: the fetch loop and its bounded cache.

* ``WarmStart.resolve`` turns the setting's references into ``PriorExperiment`` objects: bare names get
  the service's own namespace (``service_namespace``), each experiment is fetched from the
  ``PriorSource`` (``priors``; on a cluster ``kube_priors``) through ``PriorCache``, a small thread-safe
  TTL cache (one Katib experiment calls the pod many times), and its objective must match this
  experiment's. Source errors become ``InvalidArgument`` (missing, forbidden, mismatched: Katib fails
  the experiment with our message) or ``Unavailable`` (transient: Katib retries). Once the call's
  ``Deadline`` has passed, no further experiment is fetched (``Unavailable``; the retry goes on from
  the cache).

The cache is the only state of the service that outlives a call; its owner is the ``WarmStart`` the
gRPC servicer holds. What the models make of the fetched trials is ``prior_math``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from suggestion_service.deadline import NO_DEADLINE, Deadline
from suggestion_service.errors import InvalidArgument, Unavailable
from suggestion_service.priors import (
    NoPriorSource,
    PriorError,
    PriorExperiment,
    PriorForbidden,
    PriorNotFound,
    PriorSource,
    PriorUnavailable,
    service_namespace,
)
from suggestion_service.proto import api_pb2
from suggestion_service.settings import PriorRef, Settings

DEFAULT_CACHE_TTL_S = 60.0
DEFAULT_CACHE_ENTRIES = 64


class PriorCache:
    """Thread-safe LRU cache of fetched experiments with a time-to-live (errors are not cached)."""

    def __init__(
        self,
        ttl_s: float = DEFAULT_CACHE_TTL_S,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s < 0 or max_entries < 1:
            raise ValueError(f"ttl_s must be >= 0 and max_entries >= 1, got {ttl_s} and {max_entries}")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._items: OrderedDict[tuple[str, str], tuple[float, PriorExperiment]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> PriorExperiment | None:
        """The cached experiment if it is younger than the TTL, else None."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if self._clock() - item[0] > self.ttl_s:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: tuple[str, str], value: PriorExperiment) -> None:
        """Store ``value``; the least recently used entry goes when the cache is full."""
        with self._lock:
            self._items[key] = (self._clock(), value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def _objective_type(objective: api_pb2.ObjectiveSpec) -> str:
    return "maximize" if objective.type == api_pb2.MAXIMIZE else "minimize"


class WarmStart:
    """Resolves and fetches the experiments named by ``warm_start_experiments`` (see the module doc)."""

    def __init__(
        self,
        source: PriorSource | None = None,
        namespace: str | None = None,
        cache: PriorCache | None = None,
    ) -> None:
        self.source: PriorSource = source if source is not None else NoPriorSource()
        self.namespace = namespace or service_namespace()
        self.cache = cache if cache is not None else PriorCache()

    def references(self, experiment_name: str, refs: Sequence[PriorRef]) -> list[tuple[str, str]]:
        """(namespace, name) of each reference; InvalidArgument for a duplicate or the experiment itself."""
        out: list[tuple[str, str]] = []
        for ref in refs:
            key = (ref.namespace or self.namespace, ref.name)
            if key in out:
                raise InvalidArgument(
                    f"setting warm_start_experiments names {key[0]}/{key[1]} twice (a bare name means "
                    f"namespace {self.namespace!r}, where this service runs)"
                )
            if key == (self.namespace, experiment_name):
                raise InvalidArgument(
                    f"setting warm_start_experiments names this experiment itself ({key[0]}/{key[1]}); "
                    "its own trials are used anyway: list only earlier experiments"
                )
            out.append(key)
        return out

    def fetch(self, namespace: str, name: str, deadline: Deadline = NO_DEADLINE) -> PriorExperiment:
        """One experiment, from the cache or the source; source errors mapped to service errors;
        ``Unavailable`` instead of a source read once ``deadline`` has passed."""
        key = (namespace, name)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        where = f"warm-start experiment {namespace}/{name}"
        if deadline.passed():
            raise Unavailable(
                f"cannot read {where} now (will be retried): the call ran out of time reading warm-start "
                f"experiments; those read so far stay cached for {self.cache.ttl_s:g} s, so the retry goes on "
                "from there"
            )
        try:
            prior = self.source.fetch(namespace, name)
        except PriorUnavailable as exc:
            raise Unavailable(f"cannot read {where} now (will be retried): {exc}") from None
        except (PriorNotFound, PriorForbidden) as exc:
            raise InvalidArgument(f"setting warm_start_experiments: {exc}") from None
        except PriorError as exc:
            raise InvalidArgument(f"setting warm_start_experiments: {exc}") from None
        self.cache.put(key, prior)
        return prior

    def resolve(
        self, experiment: api_pb2.Experiment, settings: Settings, deadline: Deadline = NO_DEADLINE
    ) -> list[PriorExperiment]:
        """Fetch every experiment of ``settings.warm_start_experiments`` (no source read after
        ``deadline``) and check its objective."""
        objective = experiment.spec.objective
        out = []
        for namespace, name in self.references(experiment.name, settings.warm_start_experiments):
            prior = self.fetch(namespace, name, deadline)
            wanted = (objective.objective_metric_name, _objective_type(objective))
            found = (prior.objective_metric_name, prior.objective_type.strip().lower())
            if found != wanted:
                raise InvalidArgument(
                    f"setting warm_start_experiments: experiment {prior.ref} has objective "
                    f"{found[1]} {found[0]!r}, but this experiment has {wanted[1]} {wanted[0]!r}; warm start "
                    "needs the same objective metric and direction"
                )
            out.append(prior)
        return out
