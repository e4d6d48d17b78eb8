"""Show the model debugging evidence: a report section, MLflow artifacts, metrics and plots.

Logged for every evaluated run, blocked or not, so a reviewer can open the failure set, the
searched segments, the reliability table and the importance shift of any run in MLflow.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gates import model_evidence as me  # noqa: E402
from gates.config import Task  # noqa: E402
from gates.evidence_gates import SCORES_ARTIFACT, ModelEvidence  # noqa: E402
from gates.report import render  # noqa: E402


def _f(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if np.isnan(value) else f"{value:.4g}"
    return str(value)


def markdown(ev: ModelEvidence | None, top: int = 10) -> str:
    """The evidence as a report section (Prefect markdown artifact and MLflow report), laid out
    by gates/templates/evidence.md.j2."""
    if ev is None:
        return ""
    failure_columns = [c for c in ["test_row", "label", "candidate_score", "champion_score", "champion_right"]
                       if c in ev.failures.columns]
    segment_columns = (["segment", "support", "candidate_loss", "champion_loss", "relative_increase", "excess",
                        "lift"] if ev.has_champion else ["segment", "support", "candidate_loss", "lift"])
    return render("evidence.md.j2", ev=ev,
                  failures=ev.failures.head(top).to_dict(orient="records"), failure_columns=failure_columns,
                  segments=ev.segments.segments.head(top).to_dict(orient="records"),
                  segment_columns=segment_columns,
                  reliance=None if ev.reliance is None else ev.reliance.to_dict(orient="records"))


def metrics(ev: ModelEvidence) -> dict[str, float]:
    """Numbers for MLflow's compare view, under `evidence.`."""
    out: dict[str, float] = {}
    s = ev.failure_summary
    for key in ("champion_right", "champion_right_share", "both_wrong_share", "mean_consequence"):
        if key in s:
            out[f"evidence.failure_set.{key}"] = float(s[key])
    if len(ev.segments.segments):
        out["evidence.segments.max_excess"] = float(ev.segments.segments["excess"].max())
        out["evidence.segments.max_lift"] = float(ev.segments.segments["lift"].max())
    if ev.calibration:
        out["evidence.ece"] = ev.calibration["candidate"]["ece"]
        if "champion" in ev.calibration:
            out["evidence.champion_ece"] = ev.calibration["champion"]["ece"]
    for key in ("psi_vs_champion", "psi_vs_champion_evaluation"):
        if key in ev.distribution:
            out[f"evidence.score_{key}"] = float(ev.distribution[key])
    if ev.reliance is not None:
        out["evidence.reliance.max_share_jump"] = float(np.nan_to_num(ev.reliance["share_change"].max()))
    out.update({f"evidence.seconds.{k}": v for k, v in ev.seconds.items()})
    return {k: v for k, v in out.items() if np.isfinite(v)}


# --------------------------------------------------------------------------- plots


def reliability_figure(ev: ModelEvidence):
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k:", label="perfectly calibrated")
    for who, style in (("champion", "s--"), ("candidate", "o-")):
        data = (ev.calibration or {}).get(who)
        if data:
            t = data["table"]
            ax.plot([r["predicted"] for r in t], [r["observed"] for r in t], style,
                    label=f"{who} (ECE {data['ece']:.3f})")
    ax.set_xlabel("mean predicted probability (bucket)")
    ax.set_ylabel("observed positive rate")
    ax.set_title("Reliability on the same test rows")
    ax.legend()
    fig.tight_layout()
    return fig


def distribution_figure(ev: ModelEvidence):
    d = ev.distribution
    counts = np.asarray(d["candidate"]["counts"], dtype=float)
    x = np.arange(len(counts))
    fig, ax = plt.subplots(figsize=(7, 4))
    if "champion" in d:
        ch = np.asarray(d["champion"]["counts"], dtype=float)
        ax.bar(x - 0.2, ch / max(ch.sum(), 1), width=0.4, label="champion (same rows)")
    ax.bar(x + 0.2, counts / max(counts.sum(), 1), width=0.4, label="candidate")
    edges = d["candidate"].get("edges") or d.get("champion", {}).get("edges", [])
    labels = ([f"< {edges[0]:.3g}"] + [f"{a:.3g}–{b:.3g}" for a, b in zip(edges, edges[1:])]
              + [f"≥ {edges[-1]:.3g}"]) if edges else ["all"]
    ax.set_xticks(x, labels[: len(x)], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("share of rows")
    ax.set_title(f"Score distribution (PSI vs champion {d.get('psi_vs_champion', float('nan')):.3f})")
    ax.legend()
    fig.tight_layout()
    return fig


def reliance_figure(ev: ModelEvidence):
    t = ev.reliance
    y = np.arange(len(t))
    fig, ax = plt.subplots(figsize=(7, max(3, 0.4 * len(t) + 1)))
    ax.barh(y - 0.2, np.nan_to_num(t["champion_share"].to_numpy(dtype=float)), height=0.4, label="champion")
    ax.barh(y + 0.2, t["candidate_share"], height=0.4, label="candidate")
    ax.set_yticks(y, t["feature"])
    ax.invert_yaxis()
    ax.set_xlabel("share of permutation importance")
    ax.set_title(f"Reliance on the same {ev.reliance_rows} rows")
    ax.legend()
    fig.tight_layout()
    return fig


def segments_figure(ev: ModelEvidence, top: int = 10):
    t = ev.segments.segments.head(top)
    value = "excess" if ev.has_champion else "lift"
    fig, ax = plt.subplots(figsize=(9, max(3, 0.4 * len(t) + 1)))
    ax.barh(np.arange(len(t)), t[value])
    ax.set_yticks(np.arange(len(t)), [s[:70] for s in t["segment"]], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("loss lost to the champion beyond the overall change (x champion loss)"
                  if ev.has_champion else "loss relative to overall")
    ax.set_title("Weakest segments found")
    fig.tight_layout()
    return fig


def figures(ev: ModelEvidence) -> dict[str, Any]:
    out = {"plots/evidence/score_distribution.png": distribution_figure(ev),
           "plots/evidence/weak_segments.png": segments_figure(ev)}
    if ev.calibration:
        out["plots/evidence/reliability.png"] = reliability_figure(ev)
    if ev.reliance is not None:
        out["plots/evidence/reliance.png"] = reliance_figure(ev)
    return out


def log(ev: ModelEvidence | None, scores: np.ndarray | None, task: Task,
        run_metrics: dict[str, float] | None = None) -> None:
    """Artifacts, metrics and plots of the evidence in the active MLflow run."""
    import mlflow

    if scores is not None:  # this run's own evaluation, for the next candidate to compare with
        own = {k: float(v) for k, v in (run_metrics or {}).items() if np.isfinite(v)}
        mlflow.log_dict({**me.score_histogram(scores, task), "metrics": own}, SCORES_ARTIFACT)
    if ev is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "failure_set.parquet"
        ev.failures.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), "evidence")
        seg = Path(tmp) / "weak_segments.parquet"
        ev.segments.segments.to_parquet(seg, index=False)
        mlflow.log_artifact(str(seg), "evidence")
    summary = {"failure_set": ev.failure_summary,
               "segments": {"searched": ev.segments.searched, "sample_rows": ev.segments.sample_rows,
                            "uniform": ev.segments.uniform, "overall": ev.segments.overall},
               "calibration": ev.calibration, "distribution": ev.distribution,
               "reliance": None if ev.reliance is None else ev.reliance.to_dict(orient="records"),
               "reliance_rows": ev.reliance_rows, "seconds": ev.seconds, "notes": ev.notes}
    mlflow.log_dict(json.loads(json.dumps(summary, default=float)), "evidence/summary.json")
    mlflow.log_metrics(metrics(ev))
    for path, fig in figures(ev).items():
        mlflow.log_figure(fig, path)
        plt.close(fig)


def failure_rows(ev: ModelEvidence, top: int = 50) -> list[dict[str, str]]:
    """The failure set's first rows for the Prefect table artifact (strings, as Prefect shows them)."""
    return [{k: _f(v) for k, v in row.items()} for row in ev.failures.head(top).to_dict(orient="records")]
