"""The surrogate report's plot: predicted vs observed objective of the held-out trials, with error bars."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from client.surrogate_report import SurrogateReport

DPI = 100


def surrogate_figure(report: SurrogateReport) -> Figure:
    """Scatter of predicted (x, with the model's ±1 std as horizontal bars) vs observed (y); the diagonal is
    a perfect prediction; the actual top-k are orange, the model's top-k are ringed."""
    fig, ax = plt.subplots(figsize=(6.0, 5.0), dpi=DPI, layout="constrained")
    rows = report.held_out
    xs = [h.predicted for h in rows]
    ys = [h.observed for h in rows]
    low = [max(0.0, h.predicted - h.predicted_low) for h in rows]
    high = [max(0.0, h.predicted_high - h.predicted) for h in rows]
    colors = ["tab:orange" if h.in_observed_top_k else "tab:blue" for h in rows]
    ax.errorbar(xs, ys, xerr=[low, high], fmt="none", ecolor="0.6", elinewidth=1, capsize=2, zorder=1)
    ax.scatter(xs, ys, c=colors, s=28, zorder=2)
    top = [h for h in rows if h.in_predicted_top_k]
    ax.scatter(
        [h.predicted for h in top],
        [h.observed for h in top],
        s=110,
        facecolors="none",
        edgecolors="black",
        linewidths=1.2,
        zorder=3,
        label=f"model's top {report.top_k}",
    )
    ax.scatter([], [], c="tab:orange", s=28, label=f"actual top {report.top_k}")
    ax.scatter([], [], c="tab:blue", s=28, label="other held-out trials")
    values = xs + ys + [h.predicted_low for h in rows] + [h.predicted_high for h in rows]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or 0.01
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="black", linestyle="--", linewidth=0.8,
            label="predicted = observed")  # fmt: skip
    metric = report.objective_metric
    ax.set_xlabel(f"predicted {metric} (±1 std)")
    ax.set_ylabel(f"observed {metric}")
    rho = "undefined" if report.spearman is None else f"{report.spearman:+.2f}"
    ax.set_title(
        f"{report.experiment}: {report.algorithm} fitted on {len(report.train_trials)} trials, "
        f"{len(rows)} held out\nSpearman {rho}, top-{report.top_k} hits {report.top_k_hits}/{report.top_k}",
        fontsize="medium",
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return fig


def plot_surrogate_report(report: SurrogateReport, path: str | Path) -> Path:
    """Write the PNG and return its path."""
    fig = surrogate_figure(report)
    try:
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return Path(path)
