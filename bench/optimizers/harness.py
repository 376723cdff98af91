"""The ask/tell loop every optimizer runs through, and the per-trial records it produces.

Sequential runs ask for one configuration, evaluate it and tell the result. Parallel runs keep
``parallel`` trials running as Katib does with ``parallelTrialCount``: the first call asks for
``parallel`` configurations with no history; afterwards the oldest running trial finishes (first in,
first out: deterministic whatever the machine's speed), is told, and one new configuration is asked
for while the others are still running (pending). Wall time of every ``ask`` is recorded per
suggestion (the call's time divided by the number of configurations it returned).

On a grid task a run may stop as soon as the grid's best configuration has been evaluated
(``stop_at_best``), which is all the grid metrics need; a run that never finds it stops at ``budget``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from bench.optimizers.peers import Optimizer, Problem, Suggestion
from bench.optimizers.tasks import GridTask, Task


@dataclass(frozen=True)
class TrialRecord:
    """One evaluated trial of one run."""

    task: str
    optimizer: str
    seed: int
    mode: str  # "seq" or "batch<k>"
    index: int  # 1-based trial number in evaluation order
    config: str  # canonical "name=value;..." text
    value: float | None
    cost: float
    ask_seconds: float  # wall seconds per suggestion of the ask that proposed it
    tell_seconds: float  # wall seconds of telling this trial's result (model fits happen here for some)
    repeat: bool  # the configuration had been evaluated before in this run


@dataclass
class RunResult:
    """The records of one (task, optimizer, seed, mode) run, or the error that stopped it."""

    task: str
    optimizer: str
    seed: int
    mode: str
    records: list[TrialRecord]
    error: str = ""


def config_text(assignment: dict[str, str]) -> str:
    """A stable one-line text of an assignment."""
    return ";".join(f"{k}={assignment[k]}" for k in sorted(assignment))


def run_one(
    task: Task,
    make_optimizer: Callable[[Problem], Optimizer],
    optimizer_name: str,
    seed: int,
    budget: int,
    parallel: int = 1,
    stop_at_best: bool = False,
) -> RunResult:
    """Run one optimizer on one task for up to ``budget`` trials (see the module docstring)."""
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    if parallel < 1:
        raise ValueError(f"parallel must be >= 1, got {parallel}")
    mode = "seq" if parallel == 1 else f"batch{parallel}"
    problem = Problem(task.name, list(task.params), task.maximize, seed, budget, metric=task.metric)
    records: list[TrialRecord] = []
    result = RunResult(task.name, optimizer_name, seed, mode, records)
    optimizer = make_optimizer(problem)
    running: deque[tuple[Suggestion, float]] = deque()
    seen: set[str] = set()
    asked = 0
    try:
        while len(records) < budget:
            want = min(parallel - len(running), budget - asked)
            if want > 0:
                t0 = time.perf_counter()
                suggestions = optimizer.ask(want)
                per = (time.perf_counter() - t0) / max(len(suggestions), 1)
                if len(suggestions) != want:
                    raise RuntimeError(
                        f"{optimizer_name} returned {len(suggestions)} configurations for {want}"
                    )
                running.extend((s, per) for s in suggestions)
                asked += want
            suggestion, per = running.popleft()
            evaluation = task.evaluate(suggestion.assignment)
            text = config_text(suggestion.assignment)
            repeat = text in seen
            seen.add(text)
            t1 = time.perf_counter()
            optimizer.tell(suggestion, evaluation.value, evaluation.cost)
            records.append(
                TrialRecord(task.name, optimizer_name, seed, mode, len(records) + 1, text,
                            evaluation.value, evaluation.cost, per, time.perf_counter() - t1, repeat)
            )  # fmt: skip
            if stop_at_best and isinstance(task, GridTask) and task.is_best(evaluation.value):
                break
    except Exception as exc:  # a peer's crash is recorded, not fatal to the whole benchmark
        result.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    finally:
        optimizer.close()
    return result
