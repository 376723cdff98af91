"""Output of ``surrogate-report``: the terminal view, Markdown, JSON and the files in ``--out``.

The numbers come from :func:`client.surrogate_report.build_report`; this module only formats them.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text

from client.errors import ClientError
from client.report import fmt_params, fmt_value
from client.surrogate_report import NextSuggestion, SurrogateReport


def _rho(report: SurrogateReport) -> str:
    if report.spearman is None:
        return "undefined"
    p = "" if report.spearman_p is None else f" (p = {report.spearman_p:.2g})"
    return f"{report.spearman:+.3f}{p}"


def summary_lines(report: SurrogateReport) -> list[str]:
    """The headline numbers as sentences (terminal and Markdown)."""
    k = report.top_k
    m = report.objective_metric
    failed = f" (+{report.train_failed} failed trial(s) in that window)" if report.train_failed else ""
    return [
        f"{report.algorithm} fitted on the first {len(report.train_trials)} of {report.trials_usable} finished "
        f"trials with a value of {m} (by start time){failed}; evaluated on the other {len(report.held_out)}",
        f"Spearman rank correlation, predicted vs observed {m}: {_rho(report)}",
        f"Top-{k} hit rate: {report.top_k_hits}/{k} = {report.top_k_hit_rate:.2f} of the predicted top {k} are "
        f"among the actual top {k} (chance: {report.chance_hits / k:.2f})",
        f"Best {m} in the predicted top {k}: {fmt_value(report.best_of_predicted_top_k)}; best held-out: "
        f"{fmt_value(report.best_observed)}",
    ]


def _outcome(s: NextSuggestion) -> str:
    """What a next configuration reached: its value, else the condition of the trial that ran it without
    one (Failed, Running, ...), else "not run"."""
    if s.observed is not None:
        return fmt_value(s.observed)
    return (s.condition or "ran") if s.trial is not None else "not run"


def _next_vs_best_rows(report: SurrogateReport) -> list[list[str]]:
    best = report.best_held_out
    rows = []
    for i in range(report.top_k):
        s = report.suggestions[i] if i < len(report.suggestions) else None
        b = best[i] if i < len(best) else None
        rows.append(
            [
                str(i + 1),
                fmt_params(s.parameters) if s else "-",
                fmt_value(s.predicted) if s else "-",
                _outcome(s) if s else "-",
                "-" if s is None or s.observed_rank is None else str(s.observed_rank),
                fmt_params(b.parameters) if b else "-",
                fmt_value(b.observed) if b else "-",
                str(b.predicted_rank) if b else "-",
            ]
        )
    return rows


def _next_vs_best_header(report: SurrogateReport) -> list[str]:
    m = report.objective_metric
    return [
        "#",
        f"Would run next ({report.algorithm})",
        f"Predicted {m}",
        f"Observed {m}",
        "Held-out rank",
        "Actually best held-out",
        f"Observed {m}",
        "Predicted rank",
    ]


def report_renderable(report: SurrogateReport) -> Group:
    """The terminal output: headline numbers and the would-run-next vs actually-best table."""
    title = (
        f"Surrogate report: {report.experiment} ({report.source}, {report.experiment_algorithm}); "
        f"{report.objective_metric} ({report.objective_type})"
    )
    table = Table(
        title=f"What {report.algorithm} would run next vs the best held-out trials", header_style="bold"
    )
    for i, column in enumerate(_next_vs_best_header(report)):
        table.add_column(column, justify="right" if i in (0, 2, 3, 4, 6, 7) else "left", overflow="fold")
    for row in _next_vs_best_rows(report):
        table.add_row(*row)
    lines = [Text(title, style="bold"), *(Text(line) for line in summary_lines(report)), table]
    lines += [Text(f"Note: {n}") for n in report.notes]
    return Group(*lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def report_markdown(report: SurrogateReport, plot_name: str | None = None) -> str:
    """The Markdown report: headline, next-vs-best table, every held-out trial, notes."""
    out = [
        f"# Surrogate report: {report.experiment}",
        "",
        f"- Experiment: {report.namespace}/{report.experiment} ({report.source}), task {report.task}, "
        f"algorithm {report.experiment_algorithm}; objective {report.objective_metric} ({report.objective_type})",
        f"- Model: {report.algorithm}"
        + (f" with settings {fmt_params(report.settings)}" if report.settings else " with default settings"),
        f"- Generated {report.generated_at.isoformat(timespec='seconds')}",
        "",
        *[f"- {_md(line)}" for line in summary_lines(report)],
        "",
        f"## What {report.algorithm} would run next vs the best held-out trials",
        "",
    ]
    header = _next_vs_best_header(report)
    out += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in _next_vs_best_rows(report)]
    m = report.objective_metric
    out += [
        "",
        "## Held-out trials (start order)",
        "",
        f"| Trial | Parameters | Observed {m} | Predicted {m} | ±1 std | Observed rank | Predicted rank |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for h in report.held_out:
        out.append(
            f"| {_md(h.trial)} | {_md(fmt_params(h.parameters))} | {fmt_value(h.observed)} | "
            f"{fmt_value(h.predicted)} | {fmt_value(h.predicted_low)} .. {fmt_value(h.predicted_high)} | "
            f"{h.observed_rank} | {h.predicted_rank} |"
        )
    if plot_name:
        out += ["", f"![predicted vs observed]({plot_name})"]
    if report.notes:
        out += ["", "## Notes", ""] + [f"- {_md(n)}" for n in report.notes]
    return "\n".join(out) + "\n"


def report_json(report: SurrogateReport) -> str:
    """The whole report as JSON."""
    return json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"


def write_report(report: SurrogateReport, out: str | Path) -> list[Path]:
    """Write ``<experiment>-surrogate-report.md/.json/.png`` into ``out`` (created); returns the paths."""
    from client.surrogate_plot import plot_surrogate_report

    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ClientError(f"cannot create the output folder {folder}: {err.strerror or err}") from None
    stem = f"{report.experiment}-surrogate-report"
    md, js, png = folder / f"{stem}.md", folder / f"{stem}.json", folder / f"{stem}.png"
    for path, write in (
        (md, lambda: md.write_text(report_markdown(report, png.name))),
        (js, lambda: js.write_text(report_json(report))),
        (png, lambda: plot_surrogate_report(report, png)),
    ):
        try:
            write()
        except OSError as err:
            raise ClientError(f"cannot write {path}: {err.strerror or err}") from None
    return [md, js, png]
