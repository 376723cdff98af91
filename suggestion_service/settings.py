"""Algorithm names and ``algorithmSettings``: parsing, validation and their documentation.

Every setting is described once in ``_SPECS``; ``SETTINGS_DOC`` (rendered into the README and
docs/service-algorithms.md) and the parser are both derived from it, so they cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from suggestion_service.errors import InvalidArgument
from suggestion_service.numbers import NumberError, to_float, to_int

ALGORITHMS: tuple[str, ...] = ("surrogate-gp", "surrogate-rf", "grid", "random")
SURROGATES = ("surrogate-gp", "surrogate-rf")
ACQUISITIONS = ("auto", "ei", "ucb", "pi", "ei_per_cost")
_METRIC_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
#: A Kubernetes namespace or Katib Experiment name: an RFC 1123 label (what the API server accepts).
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
WARM_START_MAX_EXPERIMENTS = 10


def is_k8s_name(text: str) -> bool:
    """Whether ``text`` is a valid Kubernetes namespace or Katib Experiment name (an RFC 1123 label)."""
    return bool(_K8S_NAME.fullmatch(text))


@dataclass(frozen=True)
class PriorRef:
    """One entry of ``warm_start_experiments``: ``namespace`` is None for a bare ``name`` (= the
    suggestion service's own namespace, resolved by ``suggestion_service.warm_start``)."""

    namespace: str | None
    name: str

    def __str__(self) -> str:
        return self.name if self.namespace is None else f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Settings:
    """Validated settings of one experiment (defaults shown; see ``SETTINGS_DOC`` for ranges).

    random_state: seed mixed into every random choice (0..2**32-1, default 0).
    n_initial_points: space-filling design size before the surrogate takes over; None = automatic
        (see ``algorithms.default_initial_points``).
    acquisition: auto (ei, alternated with pi on enumerable spaces), ei (log expected improvement),
        ucb, pi, or ei_per_cost (EI / predicted cost^alpha).
    xi: improvement margin of ei / pi / ei_per_cost, in standardised objective units.
    kappa: UCB exploration weight.
    cost_metric: additional metric holding each trial's cost (e.g. gpu_seconds); ei_per_cost only.
    cost_exponent: alpha in EI / cost^alpha.
    n_candidates: candidate configurations scored per call when the space is not enumerated.
    batch_strategy: how pending trials and earlier picks of the same reply are fantasised.
    failed_trials: worst (impute failed trials with the worst observed value) or ignore.
    output_transform: rank (Gaussian rank scores, robust to outliers) or standardize.
    gp_restarts: extra random restarts of the GP hyperparameter optimiser.
    n_trees / forest_kind: the surrogate-rf ensemble.
    warm_start_experiments: earlier experiments whose completed trials join the model as prior
        observations (see ``suggestion_service.warm_start``).
    warm_start_max_trials: at most this many prior trials in all enter the model.
    """

    algorithm: str
    random_state: int = 0
    n_initial_points: int | None = None
    acquisition: str = "auto"
    xi: float = 0.0
    kappa: float = 1.96
    cost_metric: str | None = None
    cost_exponent: float = 1.0
    n_candidates: int = 2048
    batch_strategy: str = "kriging_believer"
    failed_trials: str = "worst"
    output_transform: str = "rank"
    gp_restarts: int = 1
    n_trees: int = 64
    forest_kind: str = "random_forest"
    warm_start_experiments: tuple[PriorRef, ...] = ()
    warm_start_max_trials: int = 200

    @property
    def is_surrogate(self) -> bool:
        """True for surrogate-gp and surrogate-rf."""
        return self.algorithm in SURROGATES


@dataclass(frozen=True)
class _Spec:
    name: str
    type: str
    default: str
    allowed: str
    applies_to: tuple[str, ...]
    description: str
    parse: Callable[[str], object]
    acquisitions: tuple[str, ...] = ()  # non-empty: only meaningful with these acquisitions


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = to_int(text)
        except NumberError:
            raise ValueError(f"an integer in [{lo}, {hi}]") from None
        if not lo <= value <= hi:
            raise ValueError(f"an integer in [{lo}, {hi}]")
        return value

    return parse


def _float_range(lo: float, hi: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = to_float(text)
        except NumberError:
            raise ValueError(f"a number in [{lo:g}, {hi:g}]") from None
        if not lo <= value <= hi:
            raise ValueError(f"a number in [{lo:g}, {hi:g}]")
        return value

    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.strip() not in options:
            raise ValueError("one of " + ", ".join(options))
        return text.strip()

    return parse


def _metric_name(text: str) -> str:
    if not _METRIC_NAME.match(text.strip()):
        raise ValueError(
            "a metric name of letters, digits, '_' or '-' listed in objective.additionalMetricNames"
        )
    return text.strip()


def _prior_refs(text: str) -> tuple[PriorRef, ...]:
    """``"ns/a, b"`` -> (PriorRef("ns", "a"), PriorRef(None, "b")); ValueError says what is allowed."""
    allowed = (
        f"1 to {WARM_START_MAX_EXPERIMENTS} comma-separated experiment references `namespace/name` or "
        "`name` (lowercase letters, digits and '-', beginning and ending with a letter or digit, "
        "at most 63 characters each), without duplicates"
    )
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise ValueError(allowed + " (an entry is empty)")
    if len(items) > WARM_START_MAX_EXPERIMENTS:
        raise ValueError(allowed + f" ({len(items)} given)")
    refs: list[PriorRef] = []
    for item in items:
        parts = item.split("/")
        if len(parts) > 2 or not all(_K8S_NAME.match(part) for part in parts):
            raise ValueError(allowed + f" ({item!r} is not one)")
        ref = PriorRef(parts[0], parts[1]) if len(parts) == 2 else PriorRef(None, parts[0])
        if ref in refs:
            raise ValueError(allowed + f" ({item!r} is listed twice)")
        refs.append(ref)
    return tuple(refs)


_ALL = ALGORITHMS
_SUR = SURROGATES
_SPECS: tuple[_Spec, ...] = (
    _Spec("random_state", "int", "0", "0 .. 4294967295", _ALL,
          "Seed mixed (with the experiment name and the trial history) into every random choice; "
          "the same request always gets the same reply.", _int_range(0, 2**32 - 1)),
    _Spec("n_initial_points", "int", "auto", "1 .. 1000", _SUR,
          "Trials from a space-filling design (scrambled Sobol / greedy maximin over the grid) before "
          "the surrogate is used. auto = clamp(parameters + 1, 2, 5), at most ceil(grid size / 8) "
          "(3 on a 24-point grid).", _int_range(1, 1000)),
    _Spec("acquisition", "str", "auto", ", ".join(ACQUISITIONS), _SUR,
          "auto: ei, alternated with pi (ei after an even number of completed trials, pi after an odd "
          "one) where the space is small enough to enumerate (at most 20000 configurations); elsewhere "
          "ei, with xi at least 0.5 while two or more trials share the best value (a plateau of a "
          "quantised metric). Both measured on the benchmark (docs/benchmarks.md); "
          "ei: expected improvement (computed as log-EI, numerically stable); ucb: lower/upper "
          "confidence bound; pi: probability of improvement; ei_per_cost: EI / predicted cost^alpha "
          "with a GP cost model on log cost (needs cost_metric).", _choice(*ACQUISITIONS)),
    _Spec("xi", "float", "0.0", "0 .. 10", _SUR,
          "Improvement margin for ei / pi / ei_per_cost, in standardised objective units; larger "
          "explores more.", _float_range(0.0, 10.0), ("auto", "ei", "pi", "ei_per_cost")),
    _Spec("kappa", "float", "1.96", "0 .. 100", _SUR,
          "UCB exploration weight (mean + kappa * std); larger explores more.",
          _float_range(0.0, 100.0), ("ucb",)),
    _Spec("cost_metric", "str", "(none)", "a name in objective.additionalMetricNames", _SUR,
          "Metric holding each trial's cost, e.g. gpu_seconds. Required by ei_per_cost.",
          _metric_name, ("ei_per_cost",)),
    _Spec("cost_exponent", "float", "1.0", "0 .. 2", _SUR,
          "alpha in EI / cost^alpha: 0 ignores cost, 1 is EI per unit cost.",
          _float_range(0.0, 2.0), ("ei_per_cost",)),
    _Spec("n_candidates", "int", "2048", "64 .. 50000", _SUR,
          "Candidates scored per call (scrambled Sobol + uniform + local refinement around the best) "
          "when the space is continuous or has more than 20000 configurations; smaller spaces are "
          "enumerated exactly.", _int_range(64, 50_000)),
    _Spec("batch_strategy", "str", "kriging_believer", "kriging_believer, constant_liar", _SUR,
          "How running trials and earlier picks of the same reply are fantasised so a parallel batch "
          "is diverse: kriging_believer uses the model's mean, constant_liar the mean observed value.",
          _choice("kriging_believer", "constant_liar")),
    _Spec("failed_trials", "str", "worst", "worst, ignore", _SUR,
          "worst: failed/killed trials and trials without an objective inform the model as the worst "
          "observed value (a bad region); ignore: they are only excluded from re-proposal.",
          _choice("worst", "ignore")),
    _Spec("output_transform", "str", "rank", "rank, standardize", _SUR,
          "Objective transform before fitting: rank = Gaussian rank scores (robust to outliers and "
          "diverged runs); standardize = zero mean, unit variance.", _choice("rank", "standardize")),
    _Spec("gp_restarts", "int", "1", "0 .. 10", ("surrogate-gp",),
          "Extra random restarts of the GP hyperparameter optimiser (L-BFGS-B on the marginal "
          "likelihood of at most 64 points).", _int_range(0, 10)),
    _Spec("n_trees", "int", "64", "8 .. 1000", ("surrogate-rf",),
          "Trees in the surrogate-rf ensemble; the spread across trees is the predictive std.",
          _int_range(8, 1000)),
    _Spec("forest_kind", "str", "random_forest", "extra_trees, random_forest", ("surrogate-rf",),
          "extra_trees: randomised split points (smoother); random_forest: bootstrap samples.",
          _choice("extra_trees", "random_forest")),
    _Spec("warm_start_experiments", "str", "(none)",
          f"1-{WARM_START_MAX_EXPERIMENTS} comma-separated `namespace/name` or `name`", _SUR,
          "Warm start: the completed trials of these earlier experiments (same objective metric and "
          "direction; `name` alone = the suggestion pod's namespace, the Experiment's) join the model "
          "as prior observations of related tasks. They never count as this experiment's trials. "
          "Another namespace only where the operator allows it (service flag "
          "`--warm-start-namespaces` in the algorithm's katib-config entry). Needs read access to "
          "Experiments and Trials (manifests/optional/warm-start); see Warm start below.",
          _prior_refs),
    _Spec("warm_start_max_trials", "int", "200", "1 .. 2000", _SUR,
          "At most this many prior trials in all enter the model (each experiment keeps its best half "
          "and a seeded random rest of its share).", _int_range(1, 2000)),
)  # fmt: skip
_BY_NAME = {s.name: s for s in _SPECS}

SETTINGS_DOC: list[tuple[str, str, str, str, str, str]] = [
    (s.name, s.type, s.default, s.allowed,
     ", ".join(s.applies_to) + (f" (acquisition {', '.join(s.acquisitions)})" if s.acquisitions else ""),
     s.description)
    for s in _SPECS
]  # fmt: skip


def settings_table_markdown() -> str:
    """SETTINGS_DOC as a Markdown table."""
    lines = ["| setting | type | default | allowed | algorithms | meaning |", "|---|---|---|---|---|---|"]
    for name, typ, default, allowed, applies, desc in SETTINGS_DOC:
        lines.append(f"| `{name}` | {typ} | `{default}` | {allowed} | {applies} | {desc} |")
    return "\n".join(lines)


def settings_for(algorithm_name: str) -> tuple[str, ...]:
    """Names of the settings ``parse_settings`` accepts for ``algorithm_name``, in documentation order.

    Derived from the same table the parser validates against (some of them are further restricted to
    an acquisition, see ``SETTINGS_DOC``). Raises InvalidArgument for an unknown algorithm name.
    """
    if algorithm_name not in ALGORITHMS:
        raise InvalidArgument(f"unknown algorithm name {algorithm_name!r}; allowed: {', '.join(ALGORITHMS)}")
    return tuple(s.name for s in _SPECS if algorithm_name in s.applies_to)


def parse_settings(algorithm_name: str, settings: Sequence[tuple[str, str]]) -> Settings:
    """Validate an algorithm name and its settings; raises InvalidArgument naming what is wrong."""
    if algorithm_name not in ALGORITHMS:
        raise InvalidArgument(f"unknown algorithm name {algorithm_name!r}; allowed: {', '.join(ALGORITHMS)}")
    values: dict[str, object] = {}
    for name, text in settings:
        spec = _BY_NAME.get(name)
        if spec is None:
            raise InvalidArgument(
                f"unknown setting {name!r} for algorithm {algorithm_name!r}; allowed: "
                + ", ".join(settings_for(algorithm_name))
            )
        if algorithm_name not in spec.applies_to:
            allowed = ", ".join(settings_for(algorithm_name))
            raise InvalidArgument(
                f"setting {name!r} does not apply to algorithm {algorithm_name!r} "
                f"(it applies to {', '.join(spec.applies_to)}); allowed for {algorithm_name}: {allowed}"
            )
        if name in values:
            raise InvalidArgument(f"setting {name!r} is given more than once")
        try:
            values[name] = spec.parse(str(text))
        except ValueError as exc:
            raise InvalidArgument(f"setting {name}={text!r} is invalid; allowed: {exc}") from None
    result = Settings(algorithm=algorithm_name, **values)  # type: ignore[arg-type]
    for name in values:
        spec = _BY_NAME[name]
        if spec.acquisitions and result.acquisition not in spec.acquisitions:
            raise InvalidArgument(
                f"setting {name!r} only applies with acquisition {' or '.join(spec.acquisitions)}, "
                f"but acquisition is {result.acquisition!r}"
            )
    if "warm_start_max_trials" in values and not result.warm_start_experiments:
        raise InvalidArgument(
            "setting 'warm_start_max_trials' only applies together with warm_start_experiments"
        )
    if result.acquisition == "ei_per_cost" and not result.cost_metric:
        raise InvalidArgument(
            "acquisition 'ei_per_cost' needs the setting cost_metric (e.g. gpu_seconds), "
            "a metric listed in objective.additionalMetricNames"
        )
    return result
