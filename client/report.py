"""Reporters: the terminal tables (rich) and comparison.md / .csv / .json. All read aggregate objects."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text

from client.aggregate import Comparison, ExperimentSummary, summarize
from client.errors import UsageError
from client.model import FAILED_CONDITIONS, Experiment, Trial, utcnow

DASH = "-"


def fmt_value(value: float | None, digits: int = 4) -> str:
    """An objective/metric value, or '-'."""
    return DASH if value is None else f"{value:.{digits}f}"


def fmt_hours(hours: float | None) -> str:
    """Hours with enough precision for tiny local runs (4 significant digits below 1 h)."""
    if hours is None:
        return DASH
    if hours == 0:
        return "0"
    return f"{hours:.4g}" if hours < 1 else f"{hours:.2f}"


def fmt_duration(seconds: float | None) -> str:
    """A duration as 1h02m03s / 4m05s / 12s."""
    if seconds is None:
        return DASH
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def fmt_params(params: dict[str, str]) -> str:
    """name=value pairs in name order."""
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or DASH


def fmt_metrics(metrics: dict[str, float]) -> str:
    """Additional metrics of a trial, 4 decimals."""
    return ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())) or DASH


def fmt_speedup(value: float | None) -> str:
    """2.50x, or '-' when undefined (a side never reached the target)."""
    return DASH if value is None else f"{value:.2f}x"


def fmt_to_target(row: ExperimentSummary) -> str:
    """Cost until the target was first reached."""
    if row.target is None:
        return DASH
    return "not reached" if row.hours_to_target is None else fmt_hours(row.hours_to_target)


def _trials(row: ExperimentSummary) -> str:
    text = str(row.trials_completed)
    if row.max_trial_count:
        text += f"/{row.max_trial_count}"
    if row.running or row.pending:
        text += f" (+{row.running + row.pending} active)"
    return text


def _cost_sources(comparison: Comparison) -> str:
    counts: Counter[str] = Counter()
    for row in comparison.rows:
        counts.update(row.cost_sources)
    return ", ".join(f"{src} ({n} trials)" for src, n in sorted(counts.items())) or "no finished trials"


def _targets(comparison: Comparison) -> list[str]:
    return [
        f"{t.task}: {fmt_value(t.target)} ({t.target_source})" if t.target is not None else f"{t.task}: none"
        for t in comparison.tasks
    ]


COLUMNS = (
    "Task",
    "Algorithm",
    "Best {metric}",
    "Trials",
    "Failed",
    "Cost",
    "Cost to target",
    "Trials to target",
    "Speed-up vs grid",
    "Best parameters",
    "Other metrics (best trial)",
)
_NUMERIC = frozenset(range(2, 9))


def _header(comparison: Comparison, with_unit: bool = False) -> list[str]:
    metrics = {t.objective_metric for t in comparison.tasks}
    metric = next(iter(metrics)) if len(metrics) == 1 else "objective"
    names = [c.format(metric=metric) for c in COLUMNS]
    if with_unit:
        names[5] = comparison.cost_label
        names[6] = f"{comparison.cost_label} to target"
    return names


def _cells(row: ExperimentSummary) -> list[str]:
    return [
        row.task,
        row.algorithm,
        fmt_value(row.best_value),
        _trials(row),
        str(row.failed),
        fmt_hours(row.cost_hours),
        fmt_to_target(row),
        DASH if row.trials_to_target is None else str(row.trials_to_target),
        fmt_speedup(row.speedup_vs_grid),
        fmt_params(row.best_parameters),
        fmt_metrics(row.best_metrics),
    ]


def _n_trials(n: int | None) -> str:
    return "-" if n is None else f"{n} trial" + ("" if n == 1 else "s")


def verdicts(comparison: Comparison) -> list[str]:
    """One line per task: which non-grid algorithms reached the target (the grid's best by default),
    after how many trials and with what speed-up vs grid, and which did not (with their best value)."""
    lines = []
    for task in comparison.tasks:
        others = [r for r in task.rows if r.algorithm != "grid"]
        if task.target is None or not others:
            continue
        what = "grid's best" if task.target_source == "grid's best" else "target"
        grid = next((r for r in task.rows if r.algorithm == "grid"), None)
        reached, missed = [], []
        for row in others:
            if row.hours_to_target is None:
                missed.append(f"{row.algorithm} (best {fmt_value(row.best_value)})")
                continue
            text = f"{row.algorithm} after {_n_trials(row.trials_to_target)}"
            if grid is not None and grid.trials_to_target is not None:
                text += f" (grid: {grid.trials_to_target})"
            if row.speedup_vs_grid is not None:
                text += f", {fmt_speedup(row.speedup_vs_grid)} speed-up vs grid"
            reached.append(text)
        line = f"{task.task}: {what} {fmt_value(task.target)} reached by " + ("; ".join(reached) or "none")
        if missed:
            line += "; not reached by " + ", ".join(missed)
        lines.append(line)
    return lines


def comparison_table(comparison: Comparison) -> Group:
    """The rich renderable printed by ``compare``: the table plus target/cost/notes lines."""
    title = f"Katib search comparison ({comparison.source}); cost in {comparison.cost_label}"
    table = Table(title=title, show_lines=False, header_style="bold")
    for i, name in enumerate(_header(comparison)):
        table.add_column(name, justify="right" if i in _NUMERIC else "left", overflow="fold")
    for task in comparison.tasks:
        for j, row in enumerate(task.rows):
            cells = _cells(row)
            if j:
                cells[0] = ""
            table.add_row(*cells, end_section=j == len(task.rows) - 1)
    lines = [Text("Target per task: " + "; ".join(_targets(comparison)))]
    lines += [Text(line) for line in verdicts(comparison)]
    lines.append(Text(f"Cost ({comparison.cost_label}) from: {_cost_sources(comparison)}"))
    if comparison.cost_kind == "cpu":
        lines.append(Text("No GPU was used: costs are CPU device-hours of a local run, not GPU-hours."))
    for note in comparison.notes:
        lines.append(Text(f"Note: {note}"))
    return Group(table, *lines)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def comparison_markdown(comparison: Comparison) -> str:
    """comparison.md: one section per task with a Markdown table."""
    out = [
        "# Katib search comparison",
        "",
        f"- Source: {comparison.source}; generated {comparison.generated_at.isoformat(timespec='seconds')}",
        f"- Cost unit: {comparison.cost_label}; from {_cost_sources(comparison)}",
        "- Speed-up vs grid = grid's cost to reach the target / this algorithm's cost to reach it "
        "(trials in completion order).",
    ]
    if comparison.cost_kind == "cpu":
        out.append("- No GPU was used: costs are CPU device-hours of a local run, not GPU-hours.")
    header = _header(comparison, with_unit=True)[1:]
    for task in comparison.tasks:
        target = fmt_value(task.target) if task.target is not None else "none"
        out += [
            "",
            f"## {task.task} ({task.objective_metric}, {task.objective_type}); target {target} "
            f"({task.target_source})",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---:" if i + 1 in _NUMERIC else "---" for i in range(len(header))) + "|",
        ]
        for row in task.rows:
            out.append("| " + " | ".join(_md_escape(c) for c in _cells(row)[1:]) + " |")
    reached = verdicts(comparison)
    if reached:
        out += ["", "## Who reached the target", ""] + [f"- {_md_escape(line)}" for line in reached]
    if comparison.notes:
        out += ["", "## Notes", ""] + [f"- {_md_escape(n)}" for n in comparison.notes]
    return "\n".join(out) + "\n"


CSV_FIELDS = (
    "task",
    "algorithm",
    "experiment",
    "condition",
    "objective_metric",
    "objective_type",
    "best_value",
    "best_trial",
    "best_parameters",
    "best_metrics",
    "trials_completed",
    "succeeded",
    "failed",
    "running",
    "cost_hours",
    "cost_unit",
    "cost_sources",
    "target",
    "target_source",
    "hours_to_target",
    "trials_to_target",
    "speedup_vs_grid",
)


def comparison_csv(comparison: Comparison) -> str:
    """comparison.csv: one row per experiment; dicts as JSON strings, missing values empty."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for task in comparison.tasks:
        for row in task.rows:
            writer.writerow(
                {
                    "task": row.task,
                    "algorithm": row.algorithm,
                    "experiment": row.name,
                    "condition": row.condition,
                    "objective_metric": row.objective_metric,
                    "objective_type": row.objective_type,
                    "best_value": _num(row.best_value),
                    "best_trial": row.best_trial or "",
                    "best_parameters": json.dumps(row.best_parameters, sort_keys=True),
                    "best_metrics": json.dumps(row.best_metrics, sort_keys=True),
                    "trials_completed": row.trials_completed,
                    "succeeded": row.succeeded,
                    "failed": row.failed,
                    "running": row.running,
                    "cost_hours": _num(row.cost_hours),
                    "cost_unit": comparison.cost_label,
                    "cost_sources": json.dumps(row.cost_sources, sort_keys=True),
                    "target": _num(task.target),
                    "target_source": task.target_source,
                    "hours_to_target": _num(row.hours_to_target),
                    "trials_to_target": "" if row.trials_to_target is None else row.trials_to_target,
                    "speedup_vs_grid": _num(row.speedup_vs_grid),
                }
            )
    return buf.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def comparison_json(comparison: Comparison) -> str:
    """comparison.json: the whole comparison including every curve point."""
    data = comparison.to_dict()
    data["cost_sources"] = _cost_sources(comparison)
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def check_output_dir(output: str | Path) -> Path:
    """Create ``output`` and prove a file can be written there, before any work starts.

    Raises UsageError (exit 2, like a bad flag) with one line naming the folder and the cause.
    """
    out = Path(output)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-"):
            pass
    except OSError as err:
        raise UsageError(
            f"--output {output}: cannot write there ({err.strerror or err}); choose a folder you can write to"
        ) from None
    return out


def write_reports(comparison: Comparison, output: str | Path) -> list[Path]:
    """Write comparison.md/.csv/.json/.png into ``output`` (created); returns the paths written."""
    from client.plot import plot_comparison

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "comparison.md", out / "comparison.csv", out / "comparison.json", out / "comparison.png"]
    paths[0].write_text(comparison_markdown(comparison))
    paths[1].write_text(comparison_csv(comparison))
    paths[2].write_text(comparison_json(comparison))
    plot_comparison(comparison, paths[3])
    return paths


def status_table(experiments: list[Experiment], now: datetime | None = None) -> Table:
    """The ``status`` table: algorithm, trials by condition, best so far, elapsed, cost so far."""
    now = now or utcnow()
    summaries = [summarize(e, now) for e in experiments]
    from client.aggregate import cost_label

    kinds = {s.cost_kind for s in summaries if s.cost_kind in ("gpu", "cpu")}
    label = cost_label(kinds, all(e.source == "local" for e in experiments))
    source = "local" if experiments and all(e.source == "local" for e in experiments) else "cluster"
    table = Table(title=f"Katib experiments ({source})", header_style="bold")
    for name, justify in (
        ("Experiment", "left"),
        ("Task", "left"),
        ("Algorithm", "left"),
        ("State", "left"),
        ("Trials", "left"),
        ("Best so far", "right"),
        ("Elapsed", "right"),
        (f"{label} so far", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for experiment, row in zip(experiments, summaries, strict=True):
        parts = [f"{n} {c}" for c, n in sorted(Counter(t.condition for t in experiment.trials).items()) if n]
        trials = ", ".join(parts) or "none yet"
        if row.max_trial_count:
            trials = f"{row.trials_completed}/{row.max_trial_count} done: {trials}"
        state = row.condition + (f" ({row.reason})" if row.reason else "")
        table.add_row(
            row.name,
            row.task,
            row.algorithm,
            state,
            trials,
            fmt_value(row.best_value),
            fmt_duration(row.elapsed_seconds),
            fmt_hours(row.cost_hours),
        )
    return table


FAILED_LOGS_SHOWN = 5  # per experiment; the others are named (their commands differ only in the name)


def _latest_first(trial: Trial) -> datetime:
    return trial.completion_time or trial.start_time or datetime.min.replace(tzinfo=UTC)


def failed_trial_logs(experiments: Sequence[Experiment], shown: int = FAILED_LOGS_SHOWN) -> list[str]:
    """For each failed trial (Failed or MetricsUnavailable, as Katib counts them), where its output can
    still be read (``Trial.logs``): the ``shown`` most recent per experiment, then the others' names."""
    lines: list[str] = []
    for experiment in experiments:
        failed = [t for t in experiment.trials if t.condition in FAILED_CONDITIONS]
        failed.sort(key=_latest_first, reverse=True)
        for trial in failed[:shown]:
            why = trial.message.strip().splitlines()[0][:120] if trial.message.strip() else ""
            lines.append(f"  {trial.name} ({experiment.name}, {trial.condition}{': ' + why if why else ''})")
            lines += [f"    {where}" for where in trial.logs] or ["    no log location is known"]
        if len(failed) > shown:
            rest = ", ".join(t.name for t in failed[shown:])
            lines.append(f"  {experiment.name}: {len(failed) - shown} more failed, same places: {rest}")
    return ["Logs of failed trials:", *lines] if lines else []
