"""The optimizers behind one ask/tell interface, each with its library's defaults.

``ask(n)`` returns ``n`` new configurations as Katib value strings (``n > 1`` for a parallel batch,
with earlier suggestions still running), ``tell(suggestion, value, cost)`` reports one outcome
(``value`` as the task reports it, None for a failed trial). Peers minimise ``loss`` (the value,
negated when the task maximises). Every peer is seeded by the run's seed.

Search spaces are given to each peer the way Katib's own service for that algorithm does: DISCRETE
and CATEGORICAL lists become categorical choices for hyperopt (``hp.choice``), scikit-optimize
(``Categorical``) and Optuna (``CategoricalDistribution``); SMAC3 gets ordinal hyperparameters for
numeric lists; HEBO an integer index for numeric lists. Log-uniform parameters are log-scaled
everywhere. A failed trial is reported as the library's failure state where it has one (Optuna
FAIL, hyperopt STATUS_FAIL, SMAC CRASHED) and as the worst loss seen so far otherwise.

The peer libraries live in the bench environment only (``make bench-venv``); each is imported when
its optimizer is built, so the harness and the built-in peers work without them.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.optimizers.spaces import Param, catalog, space_size
from katib_model.parameters import LIST_TYPES, KatibType
from suggestion_service.space import format_double


@dataclass
class Suggestion:
    """A configuration proposed by an optimizer, with whatever the optimizer needs to match the tell."""

    assignment: dict[str, str]
    handle: Any = None


@dataclass
class Problem:
    """What an optimizer is told about a run."""

    task_name: str
    params: list[Param]
    maximize: bool
    seed: int
    budget: int
    metric: str = "objective"
    cost_metric: str = "train_seconds"


class Optimizer:
    """Base class: ``ask``/``tell``/``close`` (see the module docstring)."""

    name = "base"

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.params = problem.params
        self.losses: list[float] = []

    def loss(self, value: float | None) -> float | None:
        """The minimised loss of a reported value (None stays None)."""
        if value is None:
            return None
        return -value if self.problem.maximize else value

    def worst(self) -> float:
        """The worst loss seen so far (what a failed trial is imputed with where a peer needs a number)."""
        return max(self.losses) if self.losses else 1e9

    def ask(self, n: int) -> list[Suggestion]:
        """``n`` new configurations."""
        raise NotImplementedError

    def tell(self, suggestion: Suggestion, value: float | None, cost: float) -> None:
        """Report one finished trial."""
        loss = self.loss(value)
        if loss is not None:
            self.losses.append(loss)
        self._tell(suggestion, loss, cost)

    def _tell(self, suggestion: Suggestion, loss: float | None, cost: float) -> None:
        """Peer-specific tell (``loss`` None = failed)."""

    def close(self) -> None:
        """Release files or connections."""


def _int_string(value: float) -> str:
    return str(round(float(value)))


def _value_string(param: Param, value: Any) -> str:
    """A peer's native value -> the Katib value string."""
    if param.kind in LIST_TYPES:
        text = str(value)
        if text in param.values:
            return text
        for v in param.values:  # numeric lists given as numbers
            try:
                if math.isclose(float(v), float(value), rel_tol=1e-9):
                    return v
            except (TypeError, ValueError):
                continue
        raise ValueError(f"parameter {param.name!r}: {value!r} is not in {list(param.values)}")
    if param.kind == KatibType.INT:
        return _int_string(min(max(float(value), param.low), param.high))  # type: ignore[type-var]
    return format_double(min(max(float(value), param.low), param.high))  # type: ignore[type-var]


# ---- built-in peers ----------------------------------------------------------------------------


class RandomSearch(Optimizer):
    """Independent draws from each parameter's prior (log scales honoured), with replacement."""

    name = "random"

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem)
        self.rng = np.random.default_rng(problem.seed)

    def ask(self, n: int) -> list[Suggestion]:
        """``n`` independent draws."""
        return [
            Suggestion(
                {
                    p.name: p.from_unit(u)
                    for p, u in zip(self.params, self.rng.random(len(self.params)), strict=True)
                }
            )
            for _ in range(n)
        ]


class RandomNoReplacement(RandomSearch):
    """Random order without repeats in a finite space (a shuffled enumeration); random draws otherwise."""

    name = "random-noreplace"

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem)
        size = space_size(self.params)
        self.order: list[dict[str, str]] | None = None
        if size is not None and size <= 100_000:
            configs = catalog(self.params).enumerate()
            self.order = [configs[i] for i in self.rng.permutation(len(configs))]

    def ask(self, n: int) -> list[Suggestion]:
        """The next ``n`` configurations of the shuffled enumeration (starting over once exhausted)."""
        if self.order is None:
            return super().ask(n)
        out = []
        for _ in range(n):
            if not self.order:
                configs = catalog(self.params).enumerate()
                self.order = [configs[i] for i in self.rng.permutation(len(configs))]
            out.append(Suggestion(self.order.pop(0)))
        return out


# ---- Optuna --------------------------------------------------------------------------------------


def _optuna_distributions(params: Sequence[Param]) -> dict[str, Any]:
    """Katib's optuna service mapping: int/double -> Int/FloatDistribution, lists -> categorical."""
    import optuna

    out: dict[str, Any] = {}
    for p in params:
        if p.kind in LIST_TYPES:
            out[p.name] = optuna.distributions.CategoricalDistribution(list(p.values))
        elif p.kind == KatibType.INT:
            out[p.name] = optuna.distributions.IntDistribution(
                int(p.low),
                int(p.high),
                log=p.log,
                step=1 if p.log else int(p.step or 1),  # type: ignore[arg-type]
            )
        else:
            out[p.name] = optuna.distributions.FloatDistribution(
                float(p.low),
                float(p.high),
                log=p.log,
                step=None if p.log else p.step,  # type: ignore[arg-type]
            )
    return out


class OptunaOptimizer(Optimizer):
    """An Optuna sampler through ``study.ask``/``study.tell`` (running trials stay RUNNING)."""

    name = "optuna"

    def __init__(self, problem: Problem, make_sampler: Callable[[int], Any]) -> None:
        super().__init__(problem)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        self.optuna = optuna
        self.study = optuna.create_study(direction="minimize", sampler=make_sampler(problem.seed))
        self.distributions = _optuna_distributions(self.params)

    def ask(self, n: int) -> list[Suggestion]:
        """``n`` trials from ``study.ask`` (earlier ones still running)."""
        out = []
        for _ in range(n):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trial = self.study.ask(self.distributions)
            assignment = {p.name: _value_string(p, trial.params[p.name]) for p in self.params}
            out.append(Suggestion(assignment, trial))
        return out

    def _tell(self, suggestion: Suggestion, loss: float | None, cost: float) -> None:
        if loss is None:
            self.study.tell(suggestion.handle, state=self.optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(suggestion.handle, loss)


def optuna_tpe(problem: Problem) -> OptunaOptimizer:
    """Optuna TPE, multivariate, constant liar (Katib ``multivariate-tpe``)."""
    import optuna

    opt = OptunaOptimizer(
        problem, lambda seed: optuna.samplers.TPESampler(multivariate=True, constant_liar=True, seed=seed)
    )
    opt.name = "optuna-tpe"
    return opt


def optuna_gp(problem: Problem) -> OptunaOptimizer:
    """Optuna ``GPSampler`` with its defaults."""
    import optuna

    opt = OptunaOptimizer(problem, lambda seed: optuna.samplers.GPSampler(seed=seed))
    opt.name = "optuna-gp"
    return opt


def optuna_grid(problem: Problem) -> OptunaOptimizer:
    """Optuna ``GridSampler`` over the whole grid, shuffled by the seed (Katib ``grid``)."""
    import optuna

    if space_size(problem.params) is None:
        raise ValueError("grid search needs a finite space (a step on every double)")
    grid = {p.name: p.grid() for p in problem.params}

    class AskTellGridSampler(optuna.samplers.GridSampler):
        """GridSampler minus its ``study.stop()`` once the grid is exhausted (an error outside ``optimize``)."""

        def after_trial(self, study, trial, state, values) -> None:
            return None

    opt = OptunaOptimizer(problem, lambda seed: AskTellGridSampler(grid, seed=seed))
    opt.distributions = {
        p.name: optuna.distributions.CategoricalDistribution(p.grid()) for p in problem.params
    }
    opt.name = "grid"
    return opt


# ---- hyperopt -------------------------------------------------------------------------------------


class HyperoptTPE(Optimizer):
    """hyperopt ``tpe.suggest`` with its defaults (Katib ``tpe``), driven with a ``Trials`` object."""

    name = "hyperopt-tpe"

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem)
        import hyperopt
        from hyperopt import hp

        logging.getLogger("hyperopt").setLevel(logging.ERROR)
        self.hyperopt = hyperopt
        space = {}
        for p in self.params:
            if p.kind in LIST_TYPES:
                space[p.name] = hp.choice(p.name, list(p.values))
            elif p.kind == KatibType.INT:
                lo, hi, step = float(p.low), float(p.high), float(p.step or 1)  # type: ignore[arg-type]
                if p.log:
                    space[p.name] = hp.qloguniform(p.name, math.log(lo), math.log(hi), step)
                else:
                    space[p.name] = hp.quniform(p.name, lo, hi, step)
            elif p.log:
                space[p.name] = hp.loguniform(p.name, math.log(p.low), math.log(p.high))  # type: ignore[arg-type]
            elif p.step is not None:
                space[p.name] = hp.quniform(p.name, p.low, p.high, p.step)
            else:
                space[p.name] = hp.uniform(p.name, p.low, p.high)
        self.space = space
        self.domain = hyperopt.Domain(lambda _cfg: 0.0, space)
        self.trials = hyperopt.Trials()
        self.rng = np.random.default_rng(problem.seed)

    def ask(self, n: int) -> list[Suggestion]:
        """``n`` suggestions, one ``tpe.suggest`` call each (earlier ones queued as running)."""
        h = self.hyperopt
        out = []
        for _ in range(n):
            (tid,) = self.trials.new_trial_ids(1)
            docs = h.tpe.suggest([tid], self.domain, self.trials, int(self.rng.integers(2**31 - 1)))
            for doc in docs:
                doc["state"] = h.JOB_STATE_RUNNING
            self.trials.insert_trial_docs(docs)
            self.trials.refresh()
            vals = {k: v[0] for k, v in docs[0]["misc"]["vals"].items() if v}
            cfg = h.space_eval(self.space, vals)
            out.append(Suggestion({p.name: _value_string(p, cfg[p.name]) for p in self.params}, tid))
        return out

    def _tell(self, suggestion: Suggestion, loss: float | None, cost: float) -> None:
        h = self.hyperopt
        for doc in self.trials._dynamic_trials:
            if doc["tid"] == suggestion.handle:
                doc["state"] = h.JOB_STATE_DONE
                doc["result"] = (
                    {"status": h.STATUS_OK, "loss": loss} if loss is not None else {"status": h.STATUS_FAIL}
                )
                break
        self.trials.refresh()


# ---- scikit-optimize ---------------------------------------------------------------------------


class SkoptGP(Optimizer):
    """scikit-optimize ``Optimizer``: GP, ``gp_hedge``, 10 random initial points (Katib ``bayesianoptimization``)."""

    name = "skopt-gp"

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem)
        import skopt
        from skopt.space import Categorical, Integer, Real

        dims = []
        for p in self.params:
            if p.kind in LIST_TYPES:
                dims.append(Categorical(list(p.values), name=p.name))
            elif p.kind == KatibType.INT:
                dims.append(
                    Integer(int(p.low), int(p.high), prior="log-uniform" if p.log else "uniform", name=p.name)
                )  # type: ignore[arg-type]
            else:
                dims.append(Real(p.low, p.high, prior="log-uniform" if p.log else "uniform", name=p.name))
        self.opt = skopt.Optimizer(
            dims, base_estimator="GP", n_initial_points=10, acq_func="gp_hedge", random_state=problem.seed
        )

    def ask(self, n: int) -> list[Suggestion]:
        """``ask()`` or ``ask(n_points=n)`` (constant liar cl_min, skopt's default)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            xs = [self.opt.ask()] if n == 1 else self.opt.ask(n_points=n)
        return [
            Suggestion({p.name: _value_string(p, v) for p, v in zip(self.params, x, strict=True)}, x)
            for x in xs
        ]

    def _tell(self, suggestion: Suggestion, loss: float | None, cost: float) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.opt.tell(list(suggestion.handle), float(self.worst() if loss is None else loss))


# ---- SMAC3 ------------------------------------------------------------------------------------------


class SMAC(Optimizer):
    """SMAC3 2.x ask/tell: ``HyperparameterOptimizationFacade`` (random forest) or ``BlackBoxFacade`` (GP)."""

    def __init__(self, problem: Problem, facade: str) -> None:
        super().__init__(problem)
        from ConfigSpace import Categorical, ConfigurationSpace, Float, Integer, OrdinalHyperparameter
        from smac import BlackBoxFacade, HyperparameterOptimizationFacade, Scenario

        logging.getLogger("smac").setLevel(logging.ERROR)
        cs = ConfigurationSpace(seed=problem.seed)
        for p in self.params:
            if p.kind == KatibType.CATEGORICAL:
                cs.add(Categorical(p.name, list(p.values)))
            elif p.kind == KatibType.DISCRETE:
                cs.add(OrdinalHyperparameter(p.name, sequence=list(p.values)))
            elif p.kind == KatibType.INT:
                cs.add(Integer(p.name, (int(p.low), int(p.high)), log=p.log))  # type: ignore[arg-type]
            else:
                cs.add(Float(p.name, (float(p.low), float(p.high)), log=p.log))  # type: ignore[arg-type]
        self.tmp = tempfile.mkdtemp(prefix="smac-")
        scenario = Scenario(
            cs,
            deterministic=True,
            n_trials=max(problem.budget, 2),
            seed=problem.seed,
            output_directory=self.tmp,
        )
        cls = HyperparameterOptimizationFacade if facade == "hpo" else BlackBoxFacade
        self.name = "smac-rf" if facade == "hpo" else "smac-gp"

        def target(config, seed: int = 0) -> float:  # never called: ask/tell only
            raise RuntimeError("SMAC target function is not used in ask/tell mode")

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.smac = cls(scenario, target, overwrite=True, logging_level=40)

    def ask(self, n: int) -> list[Suggestion]:
        """``n`` calls of ``smac.ask()``."""
        out = []
        for _ in range(n):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                info = self.smac.ask()
            cfg = dict(info.config)
            out.append(Suggestion({p.name: _value_string(p, cfg[p.name]) for p in self.params}, info))
        return out

    def _tell(self, suggestion: Suggestion, loss: float | None, cost: float) -> None:
        from smac.runhistory.dataclasses import TrialValue
        from smac.runhistory.enumerations import StatusType

        value = (
            TrialValue(cost=loss)
            if loss is not None
            else TrialValue(cost=self.worst(), status=StatusType.CRASHED)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.smac.tell(suggestion.handle, value, save=False)

    def close(self) -> None:
        """Remove SMAC's output folder."""
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---- HEBO ----------------------------------------------------------------------------------------------


class HEBOOptimizer(Optimizer):
    """HEBO 0.3.6 with its defaults (``suggest(n_suggestions=n)`` for batches)."""

    name = "hebo"

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem)
        import torch
        from hebo.design_space.design_space import DesignSpace
        from hebo.optimizers.hebo import HEBO

        torch.set_num_threads(1)
        np.random.seed(problem.seed % (2**32))  # HEBO draws from the global generators
        torch.manual_seed(problem.seed)
        spec = []
        for p in self.params:
            if p.kind == KatibType.CATEGORICAL:
                spec.append({"name": p.name, "type": "cat", "categories": list(p.values)})
            elif p.kind == KatibType.DISCRETE:
                spec.append({"name": p.name, "type": "int", "lb": 0, "ub": len(p.values) - 1})
            elif p.kind == KatibType.INT:
                spec.append(
                    {
                        "name": p.name,
                        "type": "pow_int" if p.log else "int",
                        "lb": int(p.low),
                        "ub": int(p.high),
                    }
                )  # type: ignore[arg-type]
            else:
                spec.append({"name": p.name, "type": "pow" if p.log else "num", "lb": p.low, "ub": p.high})
        self.opt = HEBO(DesignSpace().parse(spec), scramble_seed=problem.seed)

    def ask(self, n: int) -> list[Suggestion]:
        """``suggest(n_suggestions=n)``."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec = self.opt.suggest(n_suggestions=n)
        out = []
        for i in range(len(rec)):
            row = rec.iloc[[i]]
            assignment = {}
            for p in self.params:
                v = row[p.name].iloc[0]
                assignment[p.name] = p.values[int(v)] if p.kind == KatibType.DISCRETE else _value_string(p, v)
            out.append(Suggestion(assignment, row))
        return out

    def _tell(self, suggestion: Suggestion, loss: float | None, cost: float) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.opt.observe(suggestion.handle, np.array([[self.worst() if loss is None else loss]]))


# ---- registry ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerSpec:
    """How to build a peer, what it stands for, and which task families it applies to."""

    name: str
    build: Callable[[Problem], Optimizer]
    stands_for: str
    package: str = ""
    finite_only: bool = False
    families: tuple[str, ...] = field(default=("grid", "function", "live"))


PEERS: dict[str, PeerSpec] = {
    s.name: s
    for s in (
        PeerSpec("random", RandomSearch, "random search with replacement"),
        PeerSpec("random-noreplace", RandomNoReplacement, "Katib `random` in a finite space (no repeats)"),
        PeerSpec(
            "grid", optuna_grid, "Katib `grid` (Optuna GridSampler, shuffled)", "optuna", finite_only=True
        ),
        PeerSpec("hyperopt-tpe", HyperoptTPE, "Katib `tpe` (hyperopt TPE)", "hyperopt"),
        PeerSpec(
            "skopt-gp", SkoptGP, "Katib `bayesianoptimization` (skopt GP, gp_hedge, 10 initial)", "skopt"
        ),
        PeerSpec("optuna-tpe", optuna_tpe, "Katib `multivariate-tpe` (Optuna TPE, constant liar)", "optuna"),
        PeerSpec("optuna-gp", optuna_gp, "Optuna GPSampler", "optuna"),
        PeerSpec("smac-rf", lambda pr: SMAC(pr, "hpo"), "SMAC3 HPO facade (random forest)", "smac"),
        PeerSpec("smac-gp", lambda pr: SMAC(pr, "bb"), "SMAC3 BlackBox facade (GP)", "smac"),
        PeerSpec("hebo", HEBOOptimizer, "HEBO 0.3.6", "hebo"),
    )
}


def available(name: str) -> tuple[bool, str]:
    """(True, "") if peer ``name``'s library imports here, else (False, the import error)."""
    spec = PEERS[name]
    if not spec.package:
        return True, ""
    try:
        __import__(spec.package)
    except Exception as exc:  # any import-time failure means the peer cannot run here
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""
