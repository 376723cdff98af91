"""Reading the experiments named by ``warm_start_experiments``: the fetch loop and its bounded cache.

* ``WarmStart.resolve`` turns the setting's references into ``PriorExperiment`` objects: bare names get
  the service's own namespace (``service_namespace``); a reference to another namespace is
  ``InvalidArgument`` unless the operator allowed that namespace (``allowed_namespaces``, the service
  flag ``--warm-start-namespaces`` in the algorithm's katib-config entry, which an Experiment cannot
  set). Each experiment is fetched from the ``PriorSource`` (``priors``; on a cluster ``kube_priors``)
  through ``PriorCache``, a small thread-safe TTL cache (one Katib experiment calls the pod many
  times), and its objective must match this experiment's. Source errors become ``InvalidArgument``
  (missing, forbidden, mismatched: Katib fails the experiment with our message) or ``Unavailable``
  (transient: Katib retries).
* Time: once the call's ``Deadline`` has passed, no further experiment is fetched (``Unavailable``), and
  a source that can bound its reads (``priors.BoundedPriorSource``) gets the time left, so a fetch
  never runs past the deadline.
* Filling across retries: what an unfinished read of a reference set fetched stays usable until the
  set is complete (``PriorCache.get(..., fresh_since=...)``), and its entries age from the end of that
  fill (``PriorCache.restamp``). However long reading all priors takes, every retry goes on from the
  last one, instead of re-reading entries that expired meanwhile.

The cache is the only state of the service that outlives a call; its owner is the ``WarmStart`` the
gRPC servicer holds. What the models make of the fetched trials is ``prior_math``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

from suggestion_service.deadline import NO_DEADLINE, Deadline
from suggestion_service.errors import InvalidArgument, Unavailable
from suggestion_service.priors import (
    BoundedPriorSource,
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
from suggestion_service.settings import PriorRef, Settings, is_k8s_name

DEFAULT_CACHE_TTL_S = 60.0
DEFAULT_CACHE_ENTRIES = 64
#: In ``allowed_namespaces`` (``--warm-start-namespaces '*'``): every namespace RBAC lets the service read.
ANY_NAMESPACE = "*"
NAMESPACES_FLAG = "--warm-start-namespaces"

_Key = tuple[str, str]


class PriorCache:
    """Thread-safe LRU cache of fetched experiments with a time-to-live (errors are not cached).

    An entry is fresh while younger than ``ttl_s``, or, asked with ``fresh_since``, when it was stored
    at or after that time (by the unfinished fill that began then: see ``WarmStart``)."""

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
        self._items: OrderedDict[_Key, tuple[float, PriorExperiment]] = OrderedDict()
        self._lock = threading.Lock()

    def now(self) -> float:
        """The cache's clock (what entry ages and ``fresh_since`` are measured on)."""
        return self._clock()

    def get(self, key: _Key, fresh_since: float | None = None) -> PriorExperiment | None:
        """The cached experiment if it is younger than the TTL or was stored at or after
        ``fresh_since``; else None (and an expired entry is dropped)."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            stored = item[0]
            if self._clock() - stored > self.ttl_s and (fresh_since is None or stored < fresh_since):
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: _Key, value: PriorExperiment) -> None:
        """Store ``value``; the least recently used entry goes when the cache is full."""
        with self._lock:
            self._items[key] = (self._clock(), value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def restamp(self, keys: Iterable[_Key], since: float) -> None:
        """Entries of ``keys`` stored at or after ``since`` count as stored now: the entries a fill
        read age from the end of the fill, not from when each was read."""
        with self._lock:
            now = self._clock()
            for key in keys:
                item = self._items.get(key)
                if item is not None and item[0] >= since:
                    self._items[key] = (now, item[1])

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def parse_namespaces(text: str) -> frozenset[str]:
    """``"ns1, ns2"`` (or ``"*"``) -> the namespaces of ``--warm-start-namespaces``; ValueError saying
    what is allowed."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    bad = [item for item in items if item != ANY_NAMESPACE and not is_k8s_name(item)]
    if not items or bad:
        raise ValueError(
            f"expected comma-separated namespaces (RFC 1123 labels) or {ANY_NAMESPACE!r} for any, "
            f"got {text!r}"
        )
    return frozenset(items)


def _objective_type(objective: api_pb2.ObjectiveSpec) -> str:
    return "maximize" if objective.type == api_pb2.MAXIMIZE else "minimize"


class WarmStart:
    """Resolves and fetches the experiments named by ``warm_start_experiments`` (see the module doc).

    namespace: the service's own namespace (default ``service_namespace()``: on a cluster the
    Experiment's, where Katib runs the suggestion pod). allowed_namespaces: the other namespaces
    references may name (``ANY_NAMESPACE`` for all), set by the operator; none by default."""

    def __init__(
        self,
        source: PriorSource | None = None,
        namespace: str | None = None,
        cache: PriorCache | None = None,
        allowed_namespaces: Iterable[str] = (),
    ) -> None:
        self.source: PriorSource = source if source is not None else NoPriorSource()
        self.namespace = namespace or service_namespace()
        self.cache = cache if cache is not None else PriorCache()
        self.allowed_namespaces = frozenset(allowed_namespaces)
        #: reference set -> cache time its unfinished fill began (bounded like the cache)
        self._fills: OrderedDict[tuple[_Key, ...], float] = OrderedDict()
        self._fills_lock = threading.Lock()

    def namespace_allowed(self, namespace: str) -> bool:
        """Whether references may name ``namespace``: the own one, or one the operator allowed."""
        return (
            namespace == self.namespace
            or ANY_NAMESPACE in self.allowed_namespaces
            or namespace in self.allowed_namespaces
        )

    def _check_namespace(self, ref: PriorRef, key: _Key) -> None:
        if self.namespace_allowed(key[0]):
            return
        readable = ", ".join(repr(ns) for ns in [self.namespace, *sorted(self.allowed_namespaces)])
        raise InvalidArgument(
            f"setting warm_start_experiments: {ref} is in namespace {key[0]!r}, but this service reads "
            f"warm-start experiments only from {readable} (its own namespace, where Katib runs it for "
            f"this Experiment, and those the operator allows); name an experiment of {self.namespace!r}, "
            f"or ask the operator to allow {key[0]!r} with the service flag {NAMESPACES_FLAG}="
            f"{key[0]} in the args of this algorithm's katib-config entry (an Experiment cannot set it)"
        )

    def references(self, experiment_name: str, refs: Sequence[PriorRef]) -> list[_Key]:
        """(namespace, name) of each reference; InvalidArgument for a namespace that is not allowed,
        a duplicate or the experiment itself."""
        out: list[_Key] = []
        for ref in refs:
            key = (ref.namespace or self.namespace, ref.name)
            self._check_namespace(ref, key)
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

    def _read(self, namespace: str, name: str, deadline: Deadline) -> PriorExperiment:
        """The source's fetch, bounded by the time left to ``deadline`` where the source can be."""
        left = deadline.remaining()
        if math.isfinite(left) and isinstance(self.source, BoundedPriorSource):
            return self.source.fetch_within(namespace, name, left)
        return self.source.fetch(namespace, name)

    def fetch(
        self,
        namespace: str,
        name: str,
        deadline: Deadline = NO_DEADLINE,
        fresh_since: float | None = None,
    ) -> PriorExperiment:
        """One experiment, from the cache (``fresh_since``: see ``PriorCache.get``) or the source;
        source errors mapped to service errors; ``Unavailable`` instead of a source read once
        ``deadline`` has passed, and a bounded source gets only the time left."""
        key = (namespace, name)
        cached = self.cache.get(key, fresh_since)
        if cached is not None:
            return cached
        where = f"warm-start experiment {namespace}/{name}"
        if deadline.passed():
            raise Unavailable(
                f"cannot read {where} now (will be retried): the call ran out of time reading warm-start "
                "experiments; those read so far stay cached until all are read, so the retry goes on from "
                "there"
            )
        try:
            prior = self._read(namespace, name, deadline)
        except PriorUnavailable as exc:
            raise Unavailable(f"cannot read {where} now (will be retried): {exc}") from None
        except (PriorNotFound, PriorForbidden) as exc:
            raise InvalidArgument(f"setting warm_start_experiments: {exc}") from None
        except PriorError as exc:
            raise InvalidArgument(f"setting warm_start_experiments: {exc}") from None
        self.cache.put(key, prior)
        return prior

    def _fill_started(self, keys: tuple[_Key, ...]) -> float:
        """When the unfinished fill of ``keys`` began (now, for a new one)."""
        with self._fills_lock:
            started = self._fills.setdefault(keys, self.cache.now())
            self._fills.move_to_end(keys)
            while len(self._fills) > self.cache.max_entries:
                self._fills.popitem(last=False)
            return started

    def _fill_done(self, keys: tuple[_Key, ...], started: float) -> None:
        """The fill of ``keys`` is complete: forget it; what it read ages from now."""
        with self._fills_lock:
            self._fills.pop(keys, None)
        self.cache.restamp(keys, started)

    def resolve(
        self, experiment: api_pb2.Experiment, settings: Settings, deadline: Deadline = NO_DEADLINE
    ) -> list[PriorExperiment]:
        """Fetch every experiment of ``settings.warm_start_experiments`` (no source read after
        ``deadline``; what a call that ran out of time read stays fresh until a retry completes the
        set) and check its objective."""
        objective = experiment.spec.objective
        keys = tuple(self.references(experiment.name, settings.warm_start_experiments))
        started = self._fill_started(keys)
        out = []
        for namespace, name in keys:
            prior = self.fetch(namespace, name, deadline, fresh_since=started)
            wanted = (objective.objective_metric_name, _objective_type(objective))
            found = (prior.objective_metric_name, prior.objective_type.strip().lower())
            if found != wanted:
                raise InvalidArgument(
                    f"setting warm_start_experiments: experiment {prior.ref} has objective "
                    f"{found[1]} {found[0]!r}, but this experiment has {wanted[1]} {wanted[0]!r}; warm start "
                    "needs the same objective metric and direction"
                )
            out.append(prior)
        self._fill_done(keys, started)
        return out
