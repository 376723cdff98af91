"""comparison.png: best-so-far objective against cumulative cost, one line per algorithm, one panel per task."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from client.aggregate import Comparison

PANEL_WIDTH_IN = 5.0
PANEL_HEIGHT_IN = 4.0
DPI = 100
COLORS = {"grid": "tab:gray", "random": "tab:orange", "surrogate-gp": "tab:blue", "surrogate-rf": "tab:green"}


def _x_unit(longest_hours: float, cost_label: str) -> tuple[float, str]:
    """Hours for long runs; minutes or seconds for tiny local ones (the label says which)."""
    if longest_hours >= 1 or "hours" not in cost_label:
        return 1.0, cost_label
    if longest_hours >= 1 / 60:
        return 60.0, cost_label.replace("hours", "minutes")
    return 3600.0, cost_label.replace("hours", "seconds")


def comparison_figure(comparison: Comparison) -> Figure:
    """Build the figure (one axes per task); the caller saves or inspects it."""
    n = max(1, len(comparison.tasks))
    fig, axes = plt.subplots(
        1, n, figsize=(PANEL_WIDTH_IN * n, PANEL_HEIGHT_IN), dpi=DPI, squeeze=False, layout="constrained"
    )
    longest = max((p.cumulative_hours for r in comparison.rows for p in r.curve), default=0.0)
    scale, unit_label = _x_unit(longest, comparison.cost_label)
    for ax, task in zip(axes[0], comparison.tasks, strict=False):
        plotted = False
        for row in task.rows:
            xs = [0.0]
            ys: list[float] = [float("nan")]
            for point in row.curve:
                xs.append(point.cumulative_hours * scale)
                ys.append(float("nan") if point.best_so_far is None else point.best_so_far)
            if all(y != y for y in ys):  # nothing succeeded: nothing to draw
                continue
            label = row.algorithm if sum(r.algorithm == row.algorithm for r in task.rows) == 1 else row.name
            ax.step(
                xs, ys, where="post", marker="o", markersize=3, label=label, color=COLORS.get(row.algorithm)
            )
            plotted = True
        if task.target is not None:
            ax.axhline(
                task.target,
                color="black",
                linestyle="--",
                linewidth=0.8,
                label=f"target ({task.target_source})",
            )
        ax.set_title(f"{task.task}")
        ax.set_xlabel(f"cumulative {unit_label}")
        ax.set_ylabel(f"best {task.objective_metric} so far ({task.objective_type})")
        ax.grid(True, alpha=0.3)
        if plotted or task.target is not None:
            ax.legend(
                fontsize="small", loc="lower right" if task.objective_type == "maximize" else "upper right"
            )
        else:
            ax.text(0.5, 0.5, "no finished trial", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(f"Best-so-far {', '.join(sorted({t.objective_metric for t in comparison.tasks}))} vs cost")
    return fig


def plot_comparison(comparison: Comparison, path: str | Path) -> Path:
    """Write the PNG (matplotlib Agg) and return its path."""
    fig = comparison_figure(comparison)
    try:
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return Path(path)
