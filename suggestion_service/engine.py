"""The facade the gRPC server calls: Katib protos in, plain Python out.

``validate_experiment`` is what ``ValidateAlgorithmSettings`` checks; ``get_suggestions`` answers a
``GetSuggestionsRequest`` with exactly ``current_request_number`` feasible assignments. Both raise
``InvalidArgument`` for anything Katib sent that cannot be served. No state is kept between calls:
the history comes from ``request.trials`` and every random choice is seeded from the experiment
name, the algorithm settings and the history content, so a repeated (or retried, or restarted)
request gets the same reply -- unless a surrogate batch ran into its ``deadline``.

Everything a call depends on is an argument: the request, the warm-start reader (``WarmStart``, which
holds the bounded prior cache; None = no prior source), the ``Deadline`` and the search's model and
acquisition (``bayesopt.SearchParts``). The only process-wide state a call touches is the BLAS thread
limit (``blas_threads``), process-wide by nature.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from suggestion_service import candidates
from suggestion_service.algorithms import check_grid, propose
from suggestion_service.bayesopt import DEFAULT_PARTS, SearchParts
from suggestion_service.blas_threads import PROCESS_LIMIT
from suggestion_service.deadline import NO_DEADLINE, Deadline
from suggestion_service.errors import InvalidArgument
from suggestion_service.history import History, build_history
from suggestion_service.prior_fetch import WarmStart
from suggestion_service.prior_math import PriorData, check_usable, drop_unrelated, prior_data
from suggestion_service.proto import api_pb2
from suggestion_service.seeding import rng_from
from suggestion_service.settings import Settings, parse_settings
from suggestion_service.space import SearchSpace

logger = logging.getLogger(__name__)

MAX_REQUEST_NUMBER = 1000
#: Request-level bounds (checked before any model work, so a hostile or mistaken request costs
#: milliseconds, not minutes of CPU or gigabytes of candidate matrices). Katib experiments use tens.
MAX_PARAMETERS = 1000
#: Columns the surrogate models see: one per numeric parameter, one per category of a categorical.
MAX_ENCODED_WIDTH = 5000
#: Configurations of a finite space: the algorithms count them in floating point.
MAX_SPACE_SIZE = 10**300


@dataclass
class SuggestionResult:
    """What ``get_suggestions`` returns (the server turns ``assignments`` into the reply)."""

    assignments: list[dict[str, str]]
    exhausted: bool
    n_observed: int
    n_pending: int
    n_failed: int
    fit_seconds: float
    n_prior: int = 0


def _prepare(experiment: api_pb2.Experiment) -> tuple[SearchSpace, Settings]:
    spec = experiment.spec
    n_params = len(spec.parameter_specs.parameters)
    if n_params > MAX_PARAMETERS:
        raise InvalidArgument(
            f"the experiment has {n_params} parameters; at most {MAX_PARAMETERS} are supported"
        )
    space = SearchSpace.from_proto(spec.parameter_specs.parameters)
    _check_space_bounds(space)
    settings = parse_settings(
        spec.algorithm.algorithm_name, [(s.name, s.value) for s in spec.algorithm.algorithm_settings]
    )
    objective = spec.objective
    if objective.type not in (api_pb2.MINIMIZE, api_pb2.MAXIMIZE):
        label = (
            api_pb2.ObjectiveType.Name(objective.type)
            if objective.type == api_pb2.UNKNOWN
            else objective.type
        )
        raise InvalidArgument(f"objective.type {label} is not allowed; allowed: MINIMIZE or MAXIMIZE")
    if not objective.objective_metric_name:
        raise InvalidArgument("objective.objective_metric_name is empty; name the metric to optimise")
    if settings.cost_metric and settings.cost_metric not in objective.additional_metric_names:
        raise InvalidArgument(
            f"setting cost_metric={settings.cost_metric!r} is not in objective.additional_metric_names "
            f"{list(objective.additional_metric_names)}; Katib only collects the metrics listed there"
        )
    if settings.algorithm == "grid":
        check_grid(space)
    cells = settings.n_candidates * space.width
    if (
        settings.is_surrogate
        and not candidates.is_enumerable(space)
        and cells > candidates.MAX_CANDIDATE_CELLS
    ):
        raise InvalidArgument(
            f"setting n_candidates={settings.n_candidates} x {space.width} encoded columns = {cells} candidate "
            f"cells; at most {candidates.MAX_CANDIDATE_CELLS} fit the memory budget (use n_candidates <= "
            f"{candidates.MAX_CANDIDATE_CELLS // space.width} for this space)"
        )
    return space, settings


def _check_space_bounds(space: SearchSpace) -> None:
    """InvalidArgument when the space is too wide or too large for the models (see the MAX_* bounds)."""
    if space.width > MAX_ENCODED_WIDTH:
        widest = sorted(space.params, key=lambda p: -p.width)[:3]
        raise InvalidArgument(
            f"the search space encodes to {space.width} model columns (one per numeric parameter, one per "
            f"category); at most {MAX_ENCODED_WIDTH} are supported; widest: "
            + ", ".join(f"{p.name!r} ({p.width})" for p in widest)
        )
    size = space.size()
    if size is not None and size > MAX_SPACE_SIZE:
        raise InvalidArgument(
            f"the search space has about 10^{math.floor(math.log10(size))} configurations; at most 10^300 "
            "are supported (use fewer parameters or fewer values per parameter)"
        )


def _warm(warm_start: WarmStart | None) -> WarmStart:
    """``warm_start``, or one without a source (every warm-start reference is then INVALID_ARGUMENT,
    saying that no source is configured)."""
    return warm_start if warm_start is not None else WarmStart()


def validate_experiment(
    experiment: api_pb2.Experiment, warm_start: WarmStart | None = None, deadline: Deadline = NO_DEADLINE
) -> None:
    """What ``ValidateAlgorithmSettings`` checks: algorithm name and settings, search space, objective,
    for grid that every double has a step and ``max_trial_count`` fits in the grid, and that every
    warm-start experiment can be read, has the same objective and has trials that fit this space
    (``warm_start`` reads them, none after ``deadline``; None = no prior source, so a warm-start
    setting is INVALID_ARGUMENT)."""
    space, settings = _prepare(experiment)
    if settings.warm_start_experiments:
        priors = _warm(warm_start).resolve(experiment, settings, deadline)
        check_usable(prior_data(space, priors, experiment.spec.objective, settings.warm_start_max_trials))
    if settings.algorithm == "grid":
        size = int(space.size())  # type: ignore[arg-type]
        max_trials = experiment.spec.max_trial_count
        if max_trials > size:
            raise InvalidArgument(f"Max Trial Count: {max_trials} > all possible search combinations: {size}")


def _history_fingerprint(space: SearchSpace, history: History) -> list:
    rows = [["observed", sorted(o.assignment.items()), repr(o.y), repr(o.cost)] for o in history.observed]
    rows += [["pending", sorted(a.items())] for a in history.pending]
    rows += [["failed", sorted(a.items())] for a in history.failed]
    return sorted(rows, key=repr)


def get_suggestions(
    request: api_pb2.GetSuggestionsRequest,
    warm_start: WarmStart | None = None,
    *,
    deadline: Deadline = NO_DEADLINE,
    parts: SearchParts = DEFAULT_PARTS,
) -> SuggestionResult:
    """Answer a GetSuggestionsRequest with exactly ``current_request_number`` assignments.

    With the ``warm_start_experiments`` setting the prior trials come through ``warm_start`` (None = no
    prior source: INVALID_ARGUMENT); a transient failure to read them, or reaching ``deadline`` before
    they are read, raises ``Unavailable``. A surrogate batch still being picked at ``deadline`` is
    completed from the candidate pool. ``parts``: the surrogate search's model and acquisition (the
    service's own by default; benchmark prototypes pass theirs)."""
    n = request.current_request_number
    if n < 0 or n > MAX_REQUEST_NUMBER:
        raise InvalidArgument(
            f"current_request_number {n} is out of range; allowed: 0 .. {MAX_REQUEST_NUMBER}"
        )
    experiment = request.experiment
    space, settings = _prepare(experiment)
    history = build_history(space, request.trials, experiment.spec.objective, settings.cost_metric)
    counts = {
        "n_observed": len(history.observed),
        "n_pending": len(history.pending),
        "n_failed": len(history.failed),
    }
    if n == 0:
        return SuggestionResult([], exhausted=False, fit_seconds=0.0, **counts)
    priors: PriorData | None = None
    seed_parts: list = [
        "suggest",
        experiment.name,
        settings.algorithm,
        sorted((s.name, s.value) for s in experiment.spec.algorithm.algorithm_settings),
        _history_fingerprint(space, history),
    ]
    if settings.warm_start_experiments:
        experiments = _warm(warm_start).resolve(experiment, settings, deadline)
        priors = prior_data(space, experiments, experiment.spec.objective, settings.warm_start_max_trials)
        if history.observed:
            own_x = np.vstack([o.x for o in history.observed])
            priors = drop_unrelated(priors, own_x, history.losses())
        counts["n_prior"] = len(priors)
        seed_parts.append(priors.fingerprint())
    rng = rng_from(*seed_parts)
    with PROCESS_LIMIT.held():
        proposal = propose(
            space, history, settings, n, rng, experiment.name, priors, deadline=deadline, parts=parts
        )
    assignments = [space.assignment(r) for r in proposal.raws]
    if len(assignments) != n or not all(space.contains(a) for a in assignments):
        raise RuntimeError(f"internal error: produced {len(assignments)} assignments for {n} requested")
    logger.debug(
        "experiment %r: %d suggestions by %s (%s; %d observed, %d pending, %d failed; fit %.3fs)",
        experiment.name,
        n,
        settings.algorithm,
        space.describe(),
        counts["n_observed"],
        counts["n_pending"],
        counts["n_failed"],
        proposal.fit_seconds,
    )
    return SuggestionResult(
        assignments, exhausted=proposal.exhausted, fit_seconds=proposal.fit_seconds, **counts
    )
