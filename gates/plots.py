"""Reference-against-current plots of drifted features, logged to MLflow under plots/drift/.

The data comes from the drift gates' results (`details["plots"]`: bin counts or category counts
of both sides), so a plot needs neither the old data nor the current frame.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gates.results import GateReport, GateResult  # noqa: E402
from gates.safety import plot_text  # noqa: E402

MAX_BARS = 30  # categories beyond these are summed into one bar: a figure stays a few inches wide

DRIFT_GATES = ("drift", "split_drift")


def _shares(counts: list[int]) -> np.ndarray:
    arr = np.asarray(counts, dtype="float64")
    return arr / arr.sum() if arr.sum() else arr


def _labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["all"]
    cuts = [f"{e:.3g}" for e in edges]
    return [f"< {cuts[0]}"] + [f"{a}–{b}" for a, b in zip(cuts, cuts[1:])] + [f"≥ {cuts[-1]}"]


def _fewer_bars(labels: list[str], ref: np.ndarray, cur: np.ndarray):
    """At most MAX_BARS bars: the categories with the largest share on either side, the rest as one."""
    if len(labels) <= MAX_BARS or len(ref) != len(labels) or len(cur) != len(labels):
        return labels, ref, cur
    keep = np.sort(np.argsort(-np.maximum(ref, cur), kind="stable")[:MAX_BARS - 1])
    rest = np.setdiff1d(np.arange(len(labels)), keep)
    return ([labels[i] for i in keep] + [f"({len(rest)} others)"],
            np.append(ref[keep], ref[rest].sum()), np.append(cur[keep], cur[rest].sum()))


def drift_figure(feature: str, data: dict[str, Any], reason: str = "", sides=("reference", "current")):
    """Side-by-side bars of the two distributions of one feature (shares of rows)."""
    labels = data["categories"] if data["kind"] == "categorical" else _labels(data.get("edges", []))
    ref, cur = _shares(data["reference"]), _shares(data["current"])
    labels, ref, cur = _fewer_bars([plot_text(label, 40) for label in labels], ref, cur)
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(labels) + 2), 4))
    ax.bar(x - 0.2, ref if len(ref) == len(x) else np.zeros(len(x)), width=0.4, label=sides[0])
    ax.bar(x + 0.2, cur if len(cur) == len(x) else np.zeros(len(x)), width=0.4, label=sides[1])
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("share of rows")
    ax.set_title(plot_text(f"{feature}: {reason}", 110), fontsize=9)
    ax.legend()
    fig.tight_layout()
    return fig


def drift_figures(result: GateResult) -> dict[str, Any]:
    """One figure per drifted feature of a drift gate's result, keyed by artifact path."""
    sides = ("train", "test") if result.name == "split_drift" else ("champion reference", "current")
    features = result.details.get("features", {})
    out = {}
    for feature, data in (result.details.get("plots") or {}).items():
        reason = "; ".join(features.get(feature, {}).get("reasons", []))
        name = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(feature))[:80]
        out[f"plots/drift/{result.name}/{name}.png"] = drift_figure(feature, data, reason, sides)
    return out


def log_drift_plots(report: GateReport) -> int:
    """Log a plot per drifted (warned or blocked) feature to the active MLflow run."""
    import mlflow

    logged = 0
    for result in report.results:
        if result.name not in DRIFT_GATES:
            continue
        for path, fig in drift_figures(result).items():
            try:
                mlflow.log_figure(fig, path)
                logged += 1
            finally:
                plt.close(fig)
    return logged


def metrics_figure(metrics: dict[str, dict[str, float]], primary: str):
    """Candidate against the champion and the baselines, every metric, same test rows."""
    names = list(metrics)
    keys = [k for k in next(iter(metrics.values()))] if metrics else []
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(2.6 * max(1, len(keys)), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        values = [metrics[n].get(key, np.nan) for n in names]
        colors = ["tab:blue" if n == "candidate" else "tab:orange" if n.startswith("champion")
                  else "tab:gray" for n in names]
        ax.bar(range(len(names)), values, color=colors)
        ax.set_xticks(range(len(names)), [plot_text(n, 40) for n in names], rotation=45, ha="right",
                      fontsize=8)
        ax.set_title(plot_text(key + (" (primary)" if key == primary else "")), fontsize=9)
    fig.suptitle("candidate vs champion vs baselines on the same test split", fontsize=9)
    fig.tight_layout()
    return fig


def log_metrics_plot(candidate: dict[str, float], baselines: dict[str, dict[str, float]],
                     champion: dict[str, float] | None, primary: str) -> bool:
    """Log the comparison plot to the active MLflow run (nothing when no model was evaluated)."""
    import mlflow

    if not candidate:
        return False
    metrics = {"candidate": candidate, **({"champion": champion} if champion else {}), **baselines}
    fig = metrics_figure(metrics, primary)
    try:
        mlflow.log_figure(fig, "plots/metrics.png")
    finally:
        plt.close(fig)
    return True
