"""``surrogate-report``: how well the service's surrogate, fitted on an experiment's earlier trials,
predicts its later ones -- and what the service would have run next.

The finished trials with an objective value are ordered by start time; the surrogate (the service's own
``surrogate-gp`` / ``surrogate-rf`` model, fitted by ``suggestion_service.model_fit.fit_model``, the step
a ``GetSuggestions`` call fits it with) is fitted on the first part and predicts the rest (the
*held-out* trials). Reported:

- **Spearman rank correlation** between predicted and observed objective on the held-out trials
  (1: the model orders them perfectly; 0: no better than chance; negative: backwards);
- **top-k hit rate**: of the k held-out configurations the model ranks best, how many are among the
  k that were actually best (a tie with the k-th best value counts as a hit), with the chance level;
- **would run next**: the k configurations the real engine (``suggestion_service.engine.get_suggestions``,
  given the training trials as Katib would send them) proposes, with the objective they reached if the
  experiment ran them later, next to the actually best held-out configurations.

Search space, encoding, history and model all come from ``suggestion_service`` and the trials from the
client's result model (cluster or local store), so nothing is parsed twice.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from client.errors import ClientError
from client.experiments import ExperimentDef
from client.local_store import LocalStore, StoredTrial
from client.model import EARLY_STOPPED, MAXIMIZE, SUCCEEDED, Experiment, Trial

if TYPE_CHECKING:
    from suggestion_service.model_fit import FittedModel
    from suggestion_service.settings import Settings
    from suggestion_service.space import SearchSpace

SURROGATE_ALGORITHMS = ("surrogate-gp", "surrogate-rf")
DEFAULT_TRAIN_FRACTION = 0.5
DEFAULT_TOP_K = 3
MIN_TRAIN = 3
MIN_HELD_OUT = 3
#: Settings of the experiment that never carry over to the report's model: warm start would need the
#: prior experiments (the report measures the model on this experiment's own trials).
_DROPPED_SETTINGS = ("warm_start_experiments", "warm_start_max_trials")
_USABLE = (SUCCEEDED, EARLY_STOPPED)


# --- loading ---------------------------------------------------------------------------------------------
def load_local(store_path: str | Path, name: str) -> tuple[ExperimentDef, Experiment]:
    """Experiment ``name`` of the local store: its definition (search space, objective) and its trials."""
    path = Path(store_path)
    if not path.exists():
        raise ClientError(f"local store {path} does not exist; run `python -m client compare --local` first")
    store = LocalStore(path)
    try:
        experiments = store.load([name])
        if not experiments:
            stored = store.experiment_names()
            raise ClientError(
                f"experiment {name!r} not found in {path}; stored: {', '.join(stored) or 'none'}"
            )
        (body,) = store.db.execute("SELECT body FROM experiments WHERE name=?", (name,)).fetchone()
    finally:
        store.close()
    return ExperimentDef.from_body(json.loads(body), str(path)), experiments[0]


def load_cluster(source: Any, namespace: str, name: str) -> tuple[ExperimentDef, Experiment]:
    """Experiment ``namespace/name`` through the Kubernetes API (``client.katib_source.KatibSource``)."""
    from client.katib_source import experiment_from_cr

    obj = source.get_experiment(namespace, name)
    trials, _ = source.list_trials(namespace, name)
    try:
        definition = ExperimentDef.from_body(obj, f"{namespace}/{name}")
    except ClientError as err:
        raise ClientError(f"cannot read experiment {namespace}/{name} from the cluster: {err}") from None
    try:
        experiment = experiment_from_cr(obj, trials)
    except (AttributeError, TypeError, ValueError) as err:  # an object written by something else
        raise ClientError(
            f"cannot read experiment {namespace}/{name} from the cluster: malformed object "
            f"({type(err).__name__}: {err})"
        ) from None
    return definition, experiment


# --- result ----------------------------------------------------------------------------------------------
@dataclass
class HeldOutTrial:
    """One held-out trial: what was observed and what the model predicted (objective units)."""

    trial: str
    parameters: dict[str, str]
    observed: float
    predicted: float
    predicted_low: float
    predicted_high: float
    observed_rank: int
    predicted_rank: int
    in_predicted_top_k: bool
    in_observed_top_k: bool


@dataclass
class NextSuggestion:
    """A configuration the engine would have proposed next, and what it reached if it was run later."""

    position: int
    parameters: dict[str, str]
    predicted: float | None
    trial: str | None
    observed: float | None
    observed_rank: int | None
    #: Condition of the later trial that ran it (None: never run after the training trials); a trial
    #: without a value (failed, still running) has ``observed`` None and says why here.
    condition: str | None = None


@dataclass
class SurrogateReport:
    """Everything ``surrogate-report`` prints and writes."""

    experiment: str
    namespace: str
    source: str
    task: str
    experiment_algorithm: str
    algorithm: str
    objective_metric: str
    objective_type: str
    settings: dict[str, str]
    trials_total: int
    trials_usable: int
    train_trials: list[str]
    train_failed: int
    held_out: list[HeldOutTrial]
    top_k: int
    spearman: float | None
    spearman_p: float | None
    top_k_hits: int
    chance_hits: float
    best_observed: float
    best_of_predicted_top_k: float
    suggestions: list[NextSuggestion]
    generated_at: datetime
    notes: list[str] = field(default_factory=list)

    @property
    def top_k_hit_rate(self) -> float:
        """Hits / k."""
        return self.top_k_hits / self.top_k

    @property
    def best_held_out(self) -> list[HeldOutTrial]:
        """The k held-out trials with the best observed objective, best first."""
        return sorted(self.held_out, key=lambda h: h.observed_rank)[: self.top_k]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (adds the hit rate and the best held-out list)."""
        out = asdict(self)
        out["generated_at"] = self.generated_at.isoformat()
        out["top_k_hit_rate"] = self.top_k_hit_rate
        out["best_held_out"] = [h.trial for h in self.best_held_out]
        return out


# --- computation -----------------------------------------------------------------------------------------
def _start_key(trial: Trial) -> tuple[bool, float, str]:
    return (trial.start_time is None, trial.start_time.timestamp() if trial.start_time else 0.0, trial.name)


def _applicable_settings(
    definition: ExperimentDef, algorithm: str
) -> tuple[list[tuple[str, str]], list[str]]:
    """The experiment's algorithm settings that apply to ``algorithm`` (others dropped, with notes)."""
    from suggestion_service.settings import settings_for

    applies = set(settings_for(algorithm))
    kept, dropped = [], []
    for name, value in definition.algorithm_settings:
        if name in _DROPPED_SETTINGS or name not in applies:
            dropped.append(f"{name}={value}")
        else:
            kept.append((name, value))
    notes = []
    if dropped:
        why = (
            " (the report fits on this experiment's own trials only)"
            if any(d.startswith(_DROPPED_SETTINGS) for d in dropped)
            else ""
        )
        notes.append(
            f"experiment settings not used by the report's {algorithm} model: {', '.join(dropped)}{why}"
        )
    return kept, notes


def _with_algorithm(
    definition: ExperimentDef, algorithm: str, settings: list[tuple[str, str]]
) -> ExperimentDef:
    body = copy.deepcopy(definition.body)
    body["spec"]["algorithm"] = {
        "algorithmName": algorithm,
        "algorithmSettings": [{"name": n, "value": v} for n, v in settings],
    }
    return ExperimentDef(body=body, path=definition.path)


def _as_stored(trial: Trial, seq: int) -> StoredTrial:
    """A result-model trial in the shape ``local_runner.suggestions_request`` takes (metrics as strings)."""
    observation = {k: repr(float(v)) for k, v in trial.metrics.items()}
    return StoredTrial(trial, seq, observation, None, "", 1, None)


def _to_objective_units(z: np.ndarray, z_obs: np.ndarray, loss_obs: np.ndarray, transform: str) -> np.ndarray:
    """Model outputs (transformed losses) -> losses, inverting the service's output transform through the
    observed training pairs (``z_obs``, ``loss_obs``).

    ``standardize`` is affine, so the line through the pairs inverts it exactly. ``rank`` (Gaussian rank
    scores) is inverted by the monotone piecewise-linear map through the pairs, so predictions beyond
    the best/worst training value show as that value (the order, which Spearman and top-k use, is
    taken from the model itself).
    """
    zs, idx = np.unique(z_obs, return_index=True)
    if len(zs) < 2:
        return np.full(len(z), float(loss_obs[0]))
    if transform == "standardize":
        slope, intercept = np.polyfit(z_obs, loss_obs, 1)
        return intercept + slope * np.asarray(z, dtype=float)
    return np.interp(z, zs, loss_obs[idx])


def _competition_ranks(goodness: np.ndarray) -> np.ndarray:
    """1 = best; equal values share the better rank."""
    return np.array([1 + int(np.sum(goodness > g)) for g in goodness], dtype=int)


# --- 1. arguments and the data split ---------------------------------------------------------------------
def _choose_algorithm(experiment: Experiment, algorithm: str | None) -> str:
    """The report's model: ``algorithm``, else the experiment's own surrogate, else surrogate-gp."""
    if algorithm is None:
        algorithm = experiment.algorithm if experiment.algorithm in SURROGATE_ALGORITHMS else "surrogate-gp"
    if algorithm not in SURROGATE_ALGORITHMS:
        raise ClientError(
            f"algorithm {algorithm!r} has no surrogate; allowed: {', '.join(SURROGATE_ALGORITHMS)}"
        )
    return algorithm


def _check_split_arguments(train_fraction: float | None, train_trials: int | None, top_k: int) -> None:
    """ClientError for a split or top-k that can never work, whatever the experiment."""
    if train_fraction is not None and train_trials is not None:
        raise ClientError("give either a train fraction or a number of train trials, not both")
    if train_fraction is not None and not (math.isfinite(train_fraction) and 0 < train_fraction < 1):
        raise ClientError(f"train fraction must be between 0 and 1 (exclusive), got {train_fraction!r}")
    if top_k < 1:
        raise ClientError(f"top-k must be at least 1, got {top_k}")


@dataclass
class _Split:
    """An experiment's finished trials in start order, split into the model's training and held-out
    trials (``usable``: those with a finite objective value; ``window``: every trial started up to the
    last training one, i.e. the training trials plus the failed and still running ones among them)."""

    usable: list[Trial]
    train: list[Trial]
    held_out: list[Trial]
    window: list[Trial]

    @property
    def train_failed(self) -> int:
        """Finished trials in the training window without a usable value."""
        return sum(t.is_terminal for t in self.window) - len(self.train)


def _split_trials(
    experiment: Experiment, train_fraction: float | None, train_trials: int | None, top_k: int
) -> _Split:
    """Split the usable trials in start order (``train_trials`` or ``train_fraction`` of them, default
    half, for the model); ClientError when either side, or the held-out side for ``top_k``, is too small."""
    name, metric = experiment.name, experiment.objective_metric
    finished = sorted((t for t in experiment.trials if t.is_terminal), key=_start_key)
    usable = [
        t
        for t in finished
        if t.condition in _USABLE and metric in t.metrics and math.isfinite(t.metrics[metric])
    ]
    needed = MIN_TRAIN + MIN_HELD_OUT
    if len(usable) < needed:
        raise ClientError(
            f"experiment {name} has {len(usable)} finished trial(s) with a value of {metric} "
            f"({len(experiment.trials)} trials in all); surrogate-report needs at least {needed} "
            f"({MIN_TRAIN} to fit the model, {MIN_HELD_OUT} to evaluate it)"
        )
    if train_trials is None:
        n_train = math.floor((train_fraction or DEFAULT_TRAIN_FRACTION) * len(usable))
        how = f"--train-fraction {train_fraction or DEFAULT_TRAIN_FRACTION:g}"
    else:
        n_train = train_trials
        how = f"--train-trials {train_trials}"
    n_test = len(usable) - n_train
    if n_train > len(usable):
        raise ClientError(
            f"{how} is more than the {len(usable)} finished trials with a value of {metric} in {name}; use "
            f"--train-trials between {MIN_TRAIN} and {len(usable) - MIN_HELD_OUT}"
        )
    if n_train < MIN_TRAIN or n_test < MIN_HELD_OUT:
        raise ClientError(
            f"{how} leaves {n_train} trial(s) to fit and {n_test} to evaluate of the {len(usable)} finished "
            f"trials with a value of {metric} in {name}; each side needs at least {MIN_TRAIN}: use "
            f"--train-trials between {MIN_TRAIN} and {len(usable) - MIN_HELD_OUT}"
        )
    if top_k > n_test:
        raise ClientError(f"--top-k {top_k} is more than the {n_test} held-out trials; use at most {n_test}")
    train = usable[:n_train]
    cut = _start_key(train[-1])
    # as Katib would send them then: every trial started up to the last training one (finished or not:
    # one still running now was running then)
    window = sorted((t for t in experiment.trials if _start_key(t) <= cut), key=_start_key)
    return _Split(usable=usable, train=train, held_out=usable[n_train:], window=window)


# --- 2. the model, fitted as the service fits it ---------------------------------------------------------
@dataclass
class _FittedModel:
    """The surrogate fitted on the training window, with what is needed to use and invert it."""

    space: SearchSpace
    settings: Settings
    settings_list: list[tuple[str, str]]
    request: Any  # the GetSuggestionsRequest Katib would send after the training window
    model: FittedModel  # the service's fitted surrogate (``model_fit.fit_model``)
    z_obs: np.ndarray  # transformed outputs of the observed training trials
    loss_obs: np.ndarray  # their losses
    sign: float  # objective = sign * loss

    def objective_of(self, z: np.ndarray) -> np.ndarray:
        """Model outputs -> objective units."""
        return self.sign * _to_objective_units(z, self.z_obs, self.loss_obs, self.settings.output_transform)

    def predict_raw(self, raws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std (transformed loss units) at raw configuration rows."""
        return self.model.predict_raw(raws)


def _fit_model(
    definition: ExperimentDef, experiment: Experiment, algorithm: str, split: _Split, top_k: int
) -> tuple[_FittedModel, list[str]]:
    """Build the request for the training window and fit ``algorithm``'s model with the service's own
    ``model_fit.fit_model`` (as ``bayesopt.surrogate_search`` does, without priors; seed: the
    ``random_state`` setting); returns it and notes on dropped settings."""
    from client.local_runner import experiment_proto, suggestions_request
    from suggestion_service.errors import InvalidArgument
    from suggestion_service.history import build_history
    from suggestion_service.model_fit import fit_model
    from suggestion_service.settings import parse_settings

    name = experiment.name
    settings_list, notes = _applicable_settings(definition, algorithm)
    model_def = _with_algorithm(definition, algorithm, settings_list)
    try:
        space = definition.model.search_space
        settings = parse_settings(algorithm, settings_list)
    except InvalidArgument as err:
        raise ClientError(f"{definition.path or name}: {err}") from None
    max_trials = experiment.max_trial_count or len(experiment.trials)
    proto = experiment_proto(model_def, max_trials, definition.parallel_trial_count)
    stored = [_as_stored(t, i) for i, t in enumerate(split.window)]
    request = suggestions_request(proto, stored, definition.metric_names, top_k)
    history = build_history(space, request.trials, proto.spec.objective, settings.cost_metric)
    for t in split.train:
        try:
            space.raw(t.parameters)
        except ValueError as err:
            notes.append(f"training trial {t.name} skipped: {err}")
    if len(history.observed) < MIN_TRAIN:
        raise ClientError(
            f"only {len(history.observed)} of the {len(split.train)} training trials of {name} fit its "
            f"search space; the model needs at least {MIN_TRAIN}"
        )
    model = fit_model(space, history, settings, settings.random_state)
    fitted = _FittedModel(
        space=space,
        settings=settings,
        settings_list=settings_list,
        request=request,
        model=model,
        z_obs=model.y[: model.n_observed],
        loss_obs=history.losses(),
        sign=-1.0 if experiment.objective_type == MAXIMIZE else 1.0,
    )
    return fitted, notes


# --- 3. held-out predictions and rank metrics ------------------------------------------------------------
def _predict_held_out(
    fitted: _FittedModel, held_out: list[Trial], name: str, top_k: int
) -> tuple[list[Trial], np.ndarray, np.ndarray, list[str]]:
    """The held-out trials that fit the search space and the model's mean and std for them (transformed
    loss units); notes name the skipped ones. ClientError when too few are left for ``top_k``."""
    kept, raws, notes = [], [], []
    for t in held_out:
        try:
            raws.append(fitted.space.raw(t.parameters))
            kept.append(t)
        except ValueError as err:
            notes.append(f"held-out trial {t.name} skipped: {err}")
    if len(kept) < MIN_HELD_OUT:
        raise ClientError(
            f"only {len(kept)} held-out trials of {name} fit its search space; need {MIN_HELD_OUT}"
        )
    if top_k > len(kept):
        raise ClientError(f"--top-k {top_k} is more than the {len(kept)} held-out trials")
    mu, sd = fitted.predict_raw(np.vstack(raws))
    return kept, mu, sd, notes


def _spearman(
    predicted_good: np.ndarray, observed_good: np.ndarray
) -> tuple[float | None, float | None, str]:
    """Spearman rho and its p-value (higher = better on both sides); both None, with a note, when one
    side is constant."""
    from scipy.stats import spearmanr

    if np.ptp(predicted_good) == 0 or np.ptp(observed_good) == 0:
        why = (
            "the model predicts the same value for every held-out trial"
            if np.ptp(predicted_good) == 0
            else "every held-out trial has the same observed value"
        )
        return None, None, f"Spearman correlation undefined: {why}"
    result = spearmanr(predicted_good, observed_good)
    return float(result.statistic), float(result.pvalue), ""


@dataclass
class _TopK:
    """Ranks of the held-out trials (1 = best) and their top-k memberships."""

    observed_rank: np.ndarray  # competition ranks: ties share the better rank
    predicted_rank: np.ndarray  # the model's order, ties broken by start order
    in_predicted_top: np.ndarray
    in_observed_top: np.ndarray  # a tie with the k-th best observed value is in

    @property
    def hits(self) -> int:
        """Predicted top-k trials that are in the observed top k."""
        return int(np.sum(self.in_predicted_top & self.in_observed_top))

    @property
    def chance_hits(self) -> float:
        """Expected hits of k held-out trials picked at random: k times the share of held-out trials in
        the observed top k (ties with the k-th best value included, as for the hits)."""
        k = int(np.sum(self.in_predicted_top))
        return k * float(np.mean(self.in_observed_top))


def _top_k(predicted_good: np.ndarray, observed_good: np.ndarray, top_k: int) -> _TopK:
    """Rank the held-out trials by the model and by what was observed (higher = better on both sides)."""
    predicted_order = np.argsort(-predicted_good, kind="stable")
    predicted_rank = np.empty(len(predicted_good), dtype=int)
    predicted_rank[predicted_order] = np.arange(1, len(predicted_good) + 1)
    kth_best = np.sort(observed_good)[::-1][top_k - 1]
    return _TopK(
        observed_rank=_competition_ranks(observed_good),
        predicted_rank=predicted_rank,
        in_predicted_top=predicted_rank <= top_k,
        in_observed_top=observed_good >= kth_best,
    )


def _held_out_rows(
    trials: list[Trial],
    observed: np.ndarray,
    predicted: np.ndarray,
    ends: np.ndarray,
    ranks: _TopK,
) -> list[HeldOutTrial]:
    """One row per held-out trial (``ends``: the objective at mean -/+ 1 std, one row each)."""
    return [
        HeldOutTrial(
            trial=t.name,
            parameters=dict(t.parameters),
            observed=float(observed[i]),
            predicted=float(predicted[i]),
            predicted_low=float(ends[:, i].min()),
            predicted_high=float(ends[:, i].max()),
            observed_rank=int(ranks.observed_rank[i]),
            predicted_rank=int(ranks.predicted_rank[i]),
            in_predicted_top_k=bool(ranks.in_predicted_top[i]),
            in_observed_top_k=bool(ranks.in_observed_top[i]),
        )
        for i, t in enumerate(trials)
    ]


# --- 4. what the engine would run next -------------------------------------------------------------------
def _next_suggestions(
    fitted: _FittedModel, rows: list[HeldOutTrial], later: list[Trial], name: str, top_k: int
) -> tuple[list[NextSuggestion], list[str]]:
    """The real engine's next ``top_k`` configurations given the training window, matched to the first
    held-out trial that ran each, else to the first of ``later`` (the experiment's trials after the
    training window, in start order) that ran it without a value (failed, still running); notes for
    those and the ones never run, and for an exhausted space."""
    from suggestion_service import engine
    from suggestion_service.errors import InvalidArgument

    try:
        result = engine.get_suggestions(fitted.request)
    except InvalidArgument as err:
        raise ClientError(f"the suggestion engine rejected {name}: {err}") from None
    space = fitted.space
    by_key: dict[tuple, HeldOutTrial] = {}
    for r in rows:
        by_key.setdefault(space.key(r.parameters), r)
    conditions = {t.name: t.condition for t in later}
    other: dict[tuple, Trial] = {}
    for t in later:
        if space.contains(t.parameters):
            other.setdefault(space.key(t.parameters), t)
    next_raws = np.vstack([space.raw(a) for a in result.assignments])
    next_pred = fitted.objective_of(fitted.predict_raw(next_raws)[0])
    suggestions = []
    for i, assignment in enumerate(result.assignments):
        key = space.key(assignment)
        row, ran = by_key.get(key), other.get(key)
        suggestions.append(
            NextSuggestion(
                position=i + 1,
                parameters=assignment,
                predicted=float(next_pred[i]),
                trial=row.trial if row else (ran.name if ran else None),
                observed=row.observed if row else None,
                observed_rank=row.observed_rank if row else None,
                condition=conditions[row.trial] if row else (ran.condition if ran else None),
            )
        )
    notes = []
    without_value = [s for s in suggestions if s.trial is not None and s.observed is None]
    if without_value:
        notes.append(
            f"{len(without_value)} of the {top_k} configurations it would run next ran later without a value "
            f"of {fitted.request.experiment.spec.objective.objective_metric_name}: "
            + ", ".join(f"{s.trial} ({s.condition})" for s in without_value)
        )
    not_run = sum(s.trial is None for s in suggestions)
    if not_run:
        notes.append(
            f"{not_run} of the {top_k} configurations it would run next were never run by {name} "
            "after the training trials, so their outcome is unknown"
        )
    if result.exhausted:
        notes.append("the search space ran out: some suggestions repeat configurations already tried")
    return suggestions, notes


# --- 5. the report ---------------------------------------------------------------------------------------
def build_report(
    definition: ExperimentDef,
    experiment: Experiment,
    *,
    algorithm: str | None = None,
    train_fraction: float | None = None,
    train_trials: int | None = None,
    top_k: int = DEFAULT_TOP_K,
    now: datetime | None = None,
) -> SurrogateReport:
    """Fit the surrogate on the experiment's first finished trials and evaluate it on the rest.

    ``algorithm``: surrogate-gp or surrogate-rf (default: the experiment's own if it is one, else
    surrogate-gp). ``train_fraction`` (default 0.5) or ``train_trials``: how many of the finished trials
    with an objective value, in start order, the model sees. Raises ClientError for bad arguments and
    when there are fewer than ``MIN_TRAIN + MIN_HELD_OUT`` usable trials.
    """
    name, metric = experiment.name, experiment.objective_metric
    algorithm = _choose_algorithm(experiment, algorithm)
    _check_split_arguments(train_fraction, train_trials, top_k)
    split = _split_trials(experiment, train_fraction, train_trials, top_k)
    fitted, fit_notes = _fit_model(definition, experiment, algorithm, split, top_k)
    notes = [*experiment.notes, *fit_notes]
    held_out, mu, sd, skipped = _predict_held_out(fitted, split.held_out, name, top_k)
    notes += skipped

    observed = np.array([t.metrics[metric] for t in held_out])
    observed_good = -fitted.sign * observed  # higher is better
    predicted_good = -mu  # the model's own order (lower loss is better)
    if len(np.unique(fitted.loss_obs)) < 2:
        # nothing to learn from: any differences between the predictions are numerical noise
        predicted_good = np.zeros(len(mu))
        notes.append(
            f"every training trial has the same observed {metric}, so the model cannot order the held-out "
            "trials (its predictions are all that value)"
        )
    rho, p_value, undefined = _spearman(predicted_good, observed_good)
    notes += [undefined] if undefined else []
    ranks = _top_k(predicted_good, observed_good, top_k)
    ends = np.vstack([fitted.objective_of(mu - sd), fitted.objective_of(mu + sd)])
    rows = _held_out_rows(held_out, observed, fitted.objective_of(mu), ends, ranks)

    in_window = {t.name for t in split.window}
    later = sorted((t for t in experiment.trials if t.name not in in_window), key=_start_key)
    suggestions, next_notes = _next_suggestions(fitted, rows, later, name, top_k)
    notes += next_notes
    return SurrogateReport(
        experiment=name,
        namespace=experiment.namespace,
        source=experiment.source,
        task=experiment.task,
        experiment_algorithm=experiment.algorithm,
        algorithm=algorithm,
        objective_metric=metric,
        objective_type=experiment.objective_type,
        settings=dict(fitted.settings_list),
        trials_total=len(experiment.trials),
        trials_usable=len(split.usable),
        train_trials=[t.name for t in split.train],
        train_failed=split.train_failed,
        held_out=rows,
        top_k=top_k,
        spearman=rho,
        spearman_p=p_value,
        top_k_hits=ranks.hits,
        chance_hits=ranks.chance_hits,
        best_observed=float(-fitted.sign * max(observed_good)),
        best_of_predicted_top_k=float(-fitted.sign * max(observed_good[ranks.in_predicted_top])),
        suggestions=suggestions,
        generated_at=now or datetime.now().astimezone(),
        notes=notes,
    )
