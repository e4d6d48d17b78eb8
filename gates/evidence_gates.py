"""Gates on the model debugging evidence: weak segments, calibration, reliance shift.

The evidence is computed once per evaluated run (`collect`), after the candidate and the champion
were scored on the same test rows; the gates only judge it, and the report and MLflow show it
whether a gate is enabled or not. The failure set and the prediction distribution are evidence
for every gate (the `predictions` gate judges the latter, in gates.model_gates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pydantic import Field

from gates import model_evidence as me
from gates.config import PipelineConfig, Task
from gates.registry import Cause, Gate
from gates.results import Family, GateResult, judge
from gates.settings import GateSettings

SCORES_ARTIFACT = "evidence/scores.json"  # the score histogram of every run, for later candidates
FIRST_RUN = "first run: no champion, so nothing to compare with (reported only)"


# --------------------------------------------------------------------------- settings


class WeakSegmentsGate(GateSettings):
    """Segments searched (single features and pairs), not configured; see gates.model_evidence."""

    min_support: int = Field(200, ge=1, description="Test rows a segment needs to be judged.")
    bins: int = Field(5, ge=2, le=20, description="Quantile bins per numeric feature.")
    top_categories: int = Field(8, ge=1, description="Most frequent values per categorical feature.")
    pairs: bool = Field(True, description="Search pairs of features as well as single features.")
    sample_rows: int = Field(200_000, ge=1000, description="Test rows searched (seeded sample).")
    warn_excess: float = Field(0.2, ge=0, description="Extra loss against the champion in a segment, "
                               "beyond the overall change, in units of the champion's loss, that warns.")
    block_excess: float = Field(0.5, ge=0, description="... that blocks (with block_relative_increase).")
    warn_relative_increase: float = Field(0.2, ge=0, description="The segment's own relative loss increase to warn.")
    block_relative_increase: float = Field(0.5, ge=0, description="... to block.")
    report_top: int = Field(10, ge=1, description="Segments listed in the report.")


class CalibrationGate(GateSettings):
    bins: int = Field(10, ge=2, le=50, description="Confidence buckets (uniform) of the reliability table.")
    max_ece: float = Field(0.1, ge=0, le=1, description="Expected calibration error that blocks "
                           "(with max_ece_increase).")
    max_ece_increase: float = Field(0.05, ge=0, le=1, description="ECE increase over the champion's, same rows.")
    warn_ece_increase: float = Field(0.03, ge=0, le=1, description="ECE increase over the champion's that warns.")
    max_slope_ratio: float = Field(1.5, ge=1, description="A collapse also bends the calibration slope "
                                   "(Cox): away from 1 and from the champion's by this factor. An ECE rise with "
                                   "the slope kept (or nearer 1) is an offset (a moved base rate) and warns.")


class RelianceShiftGate(GateSettings):
    sample_rows: int = Field(2000, ge=100, le=100_000, description="Test rows for permutation importance.")
    n_repeats: int = Field(3, ge=1, le=20, description="Permutations per feature.")
    max_share_jump: float = Field(0.3, ge=0, le=1, description="Growth of a feature's share of the "
                                  "importance against the champion that blocks (a shortcut).")
    vanish_share: float = Field(0.1, ge=0, le=1, description="A feature with at least this share "
                                "under the champion ...")
    vanish_ratio: float = Field(0.2, ge=0, le=1, description="... that keeps less than this fraction "
                                "of it under the candidate has vanished (warns).")


# --------------------------------------------------------------------------- evidence


@dataclass
class ModelEvidence:
    """Everything the debugging evidence found on one run's test rows."""

    task: Task
    metric: str
    failures: pd.DataFrame
    failure_summary: dict[str, Any]
    segments: me.SegmentSearch
    calibration: dict[str, Any] | None  # {"candidate": ..., "champion": ...}; None for regression
    distribution: dict[str, Any]
    reliance: pd.DataFrame | None
    reliance_rows: int = 0
    has_champion: bool = False
    champion_reference: dict[str, Any] | None = None  # the champion run's own scores.json
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _inputs(model: Any, fallback: list[str]) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    return [str(n) for n in names] if names is not None else list(fallback)


def load_champion_scores(champion) -> dict[str, Any] | None:
    """The score histogram the champion's own run logged (None for runs from before #14)."""
    if champion is None or not getattr(champion, "run_id", None):
        return None
    import mlflow

    try:
        return mlflow.artifacts.load_dict(f"runs:/{champion.run_id}/{SCORES_ARTIFACT}")
    except Exception:  # noqa: BLE001 - an older champion without the artifact: compare on the same rows only
        return None


def collect(test: pd.DataFrame, scores: np.ndarray, cfg: PipelineConfig, *, model: Any,
            champion_model: Any = None, champion_scores: np.ndarray | None = None,
            champion_reference: dict[str, Any] | None = None,
            champion_metrics: dict[str, float] | None = None) -> ModelEvidence:
    """Compute every piece of evidence on the test rows (bounded samples where stated)."""
    import time

    g, task, metric = cfg.gates, cfg.task, cfg.model.primary_metric
    features = cfg.data.features.all
    y = test[cfg.data.target].to_numpy()
    champ = champion_scores if champion_scores is not None and np.all(np.isfinite(champion_scores)) else None
    seconds: dict[str, float] = {}
    notes: list[str] = []

    t = time.perf_counter()
    finite = np.where(np.isfinite(scores), scores, np.nan)
    failures, summary = me.failure_set(test, y, finite, champ, features, task, cfg.evidence.failure_rows)
    seconds["failure_set"] = time.perf_counter() - t

    t = time.perf_counter()
    ws = g.weak_segments
    segments = me.weak_segments(test, y, np.nan_to_num(finite, nan=0.5), champ, features, task,
                                min_support=ws.min_support, bins=ws.bins, top_categories=ws.top_categories,
                                pairs=ws.pairs, max_rows=ws.sample_rows, uniform_excess=ws.block_excess)
    seconds["weak_segments"] = time.perf_counter() - t

    t = time.perf_counter()
    calibration = None
    if task is Task.CLASSIFICATION and np.all(np.isfinite(scores)) and len(np.unique(y)) == 2:
        calibration = {"candidate": me.reliability(y, scores, g.calibration.bins)}
        if champ is not None:
            calibration["champion"] = me.reliability(y, champ, g.calibration.bins)
    seconds["calibration"] = time.perf_counter() - t

    t = time.perf_counter()
    distribution = me.prediction_distribution(finite, champ, task, champion_reference)
    then = ((champion_reference or {}).get("metrics") or {}).get(metric)
    now = (champion_metrics or {}).get(metric)
    if then is not None and now is not None:  # has the champion itself got worse on these rows?
        distribution["champion_metric"] = {"metric": metric, "own_evaluation": float(then), "now": float(now),
                                           "greater_is_better": cfg.greater_is_better}
    seconds["distribution"] = time.perf_counter() - t

    t = time.perf_counter()
    reliance, rows = None, np.array([], dtype=int)
    if np.all(np.isfinite(scores)):
        rs = g.reliance_shift
        rows = me.sample_rows(len(test), rs.sample_rows, seed=1)
        sample, y_sample = test.iloc[rows], y[rows]
        if task is Task.CLASSIFICATION and len(np.unique(y_sample)) < 2:
            notes.append("reliance shift skipped: the sample holds one class")
        else:
            better = cfg.greater_is_better
            cand = me.permutation_reliance(model, sample[_inputs(model, features)], y_sample, task, metric,
                                           better, n_repeats=rs.n_repeats)
            champ_imp = None
            if champion_model is not None and champ is not None:
                champ_imp = me.permutation_reliance(champion_model, sample[_inputs(champion_model, features)],
                                                    y_sample, task, metric, better, n_repeats=rs.n_repeats)
            reliance = me.reliance_shift(cand, champ_imp)
    seconds["reliance_shift"] = time.perf_counter() - t
    return ModelEvidence(task=task, metric=metric, failures=failures, failure_summary=summary,
                         segments=segments, calibration=calibration, distribution=distribution,
                         reliance=reliance, reliance_rows=len(rows), has_champion=champ is not None,
                         champion_reference=champion_reference, notes=notes,
                         seconds={k: round(v, 4) for k, v in seconds.items()})


def collect_for_run(ctx) -> ModelEvidence:
    """`collect` with what the run context holds (the evaluate stage calls it)."""
    return collect(ctx.split.test, ctx.scores, ctx.cfg, model=ctx.model, champion_model=ctx.champion_model,
                   champion_scores=ctx.champion_scores, champion_reference=load_champion_scores(ctx.champion),
                   champion_metrics=ctx.champion_metrics)


def _require(evidence: ModelEvidence | None) -> ModelEvidence:
    if evidence is None:
        raise ValueError("no model evidence was computed for this run (the evaluate stage did not "
                         "produce it), so the gate cannot judge the candidate")
    return evidence


# --------------------------------------------------------------------------- gates


def check_weak_segments(evidence: ModelEvidence | None, settings: WeakSegmentsGate) -> GateResult:
    """Searched segments where the candidate lost far more to the champion than it did overall.

    Two tiers: a segment past both `block_*` thresholds fails; past both `warn_*` thresholds it
    warns. A uniform drop (worse everywhere) is not a weak segment: the champion gate judges it.
    """
    ev = _require(evidence)
    search = ev.segments
    table = search.segments
    threshold = {"min_support": settings.min_support, "warn_excess": settings.warn_excess,
                 "block_excess": settings.block_excess,
                 "warn_relative_increase": settings.warn_relative_increase,
                 "block_relative_increase": settings.block_relative_increase}
    measured: dict[str, Any] = {"searched": search.searched, "sample_rows": search.sample_rows,
                                "uniform_drop": search.uniform}
    top = table.head(settings.report_top)
    details = {"segments": top.round(6).to_dict(orient="records"), "uniform": search.uniform,
               "overall": search.overall}
    if not ev.has_champion:
        worst = table.sort_values("lift", ascending=False).head(3)
        found = "; ".join(f"{r.segment} (loss x{r.lift:.2f} of overall, {r.support} rows)" for r in worst.itertuples())
        measured["max_lift"] = float(worst["lift"].max()) if len(worst) else None
        return judge("weak_segments", Family.MODEL, failures=[], measured=measured, threshold=threshold,
                     ok_summary=f"{FIRST_RUN}; worst segments: {found or 'none with enough rows'}",
                     details=details | {"first_run": True})
    failures, warnings = [], []
    for r in table.itertuples():
        line = (f"segment {r.segment}: loss {r.candidate_loss:.4g} vs champion {r.champion_loss:.4g} "
                f"(+{r.relative_increase:.0%}; {r.excess:+.2f} of the champion's loss beyond the "
                f"overall change; {r.support} rows)")
        if r.excess >= settings.block_excess and r.relative_increase >= settings.block_relative_increase:
            failures.append(line)
        elif r.excess >= settings.warn_excess and r.relative_increase >= settings.warn_relative_increase:
            warnings.append(line)
    measured.update(max_excess=float(table["excess"].max()) if len(table) else None,
                    overall_relative_increase=search.overall.get("relative_increase"),
                    weak=len(failures), warned=len(warnings))
    return judge(
        "weak_segments", Family.MODEL, failures=failures[:10], warnings=warnings[:10] if not failures else [],
        measured=measured, threshold=threshold, details=details,
        hint=WEAK_SEGMENTS.hint,
        ok_summary=(f"{search.searched} segments searched on {search.sample_rows} rows: none lost much more "
                    "than the overall change" + ("; the candidate lost about equally everywhere "
                                                 "(uniform drop)" if search.uniform else "")),
    )


def check_calibration(evidence: ModelEvidence | None, settings: CalibrationGate) -> GateResult:
    """A collapse of confidence: ECE past `max_ece` and `max_ece_increase` above the champion's."""
    ev = _require(evidence)
    threshold = {"bins": settings.bins, "max_ece": settings.max_ece,
                 "max_ece_increase": settings.max_ece_increase, "warn_ece_increase": settings.warn_ece_increase,
                 "max_slope_ratio": settings.max_slope_ratio}
    if ev.task is not Task.CLASSIFICATION:
        return judge("calibration", Family.MODEL, failures=[], threshold=threshold,
                     ok_summary="regression: no probabilities to calibrate (see predictions for the "
                     "score distribution)")
    if ev.calibration is None:
        raise ValueError("no reliability table: non-finite scores or a one-class test split")
    cand = ev.calibration["candidate"]
    champ = ev.calibration.get("champion")
    measured: dict[str, Any] = {"ece": cand["ece"], "brier": cand["brier"], "max_gap": cand["max_gap"]}
    failures, warnings = [], []
    if champ is None:  # a collapse is judged against the champion; the first run is reported
        return judge("calibration", Family.MODEL, failures=failures, measured=measured, threshold=threshold,
                     ok_summary=f"ECE {cand['ece']:.4f}, Brier {cand['brier']:.4f}; {FIRST_RUN}",
                     details={"reliability": cand["table"]})
    increase = cand["ece"] - champ["ece"]
    measured.update(champion_ece=champ["ece"], champion_brier=champ["brier"], ece_increase=increase)
    line = (f"ECE {cand['ece']:.4f} vs champion {champ['ece']:.4f} on the same rows (+{increase:.4f}); "
            f"Brier {cand['brier']:.4f} vs {champ['brier']:.4f}; largest bucket gap {cand['max_gap']:.3f}")
    slopes = cand.get("slope"), champ.get("slope")
    ratio = (slopes[0] / slopes[1] if all(v is not None and np.isfinite(v) and v > 0 for v in slopes)
             else float("nan"))
    if np.isfinite(ratio):
        measured.update(slope=slopes[0], champion_slope=slopes[1], slope_ratio=ratio)
        line += f"; calibration slope {slopes[0]:.2f} vs {slopes[1]:.2f}"
    # A collapse bends the shape: the slope moves away from 1 by more than max_slope_ratio, and
    # further than the champion's. A slope near 1 (or nearer 1 than the champion's) is an offset.
    off_one = [abs(math.log(v)) if v is not None and np.isfinite(v) and v > 0 else float("nan") for v in slopes]
    bent = (np.isfinite(ratio) and off_one[0] > math.log(settings.max_slope_ratio)
            and off_one[0] > off_one[1] and not 1 / settings.max_slope_ratio <= ratio <= settings.max_slope_ratio)
    shape_kept = np.isfinite(ratio) and not bent
    if cand["ece"] > settings.max_ece and increase > settings.max_ece_increase and shape_kept:
        warnings.append(line + f": the confidence kept its shape (slope ratio {ratio:.2f} within "
                        f"{settings.max_slope_ratio} of the champion's, or nearer 1), so the rise is an offset: mean predicted "
                        f"{cand.get('mean_predicted', float('nan')):.3f} vs observed "
                        f"{cand.get('observed_rate', float('nan')):.3f} (a moved base rate)")
    elif cand["ece"] > settings.max_ece and increase > settings.max_ece_increase:
        failures.append(line + f" [past max_ece {settings.max_ece} and max_ece_increase {settings.max_ece_increase}]")
    elif increase > settings.warn_ece_increase:
        warnings.append(line)
    return judge(
        "calibration", Family.MODEL, failures=failures, warnings=warnings, measured=measured,
        threshold=threshold, details={"reliability": cand["table"], "champion_reliability": champ["table"]},
        hint=CALIBRATION.hint,
        ok_summary=line,
    )


def check_reliance_shift(evidence: ModelEvidence | None, settings: RelianceShiftGate) -> GateResult:
    """A feature whose share of the permutation importance jumps (a shortcut) or vanishes."""
    ev = _require(evidence)
    threshold = {"sample_rows": settings.sample_rows, "n_repeats": settings.n_repeats,
                 "max_share_jump": settings.max_share_jump, "vanish_share": settings.vanish_share,
                 "vanish_ratio": settings.vanish_ratio}
    if ev.reliance is None:
        raise ValueError("no permutation importance: " + ("; ".join(ev.notes) or "non-finite scores"))
    table = ev.reliance
    details = {"importance": table.round(6).to_dict(orient="records")}
    measured: dict[str, Any] = {"sample_rows": ev.reliance_rows,
                                "top_feature": str(table["feature"].iloc[0]) if len(table) else None,
                                "top_share": float(table["candidate_share"].iloc[0]) if len(table) else None}
    if not ev.has_champion or table["champion_share"].isna().all():
        return judge("reliance_shift", Family.MODEL, failures=[], measured=measured, threshold=threshold,
                     ok_summary=f"{FIRST_RUN}; top feature {measured['top_feature']} "
                     f"({(measured['top_share'] or 0):.0%} of the importance)", details=details)
    failures, warnings = [], []
    for r in table.itertuples():
        was = 0.0 if math.isnan(r.champion_share) else r.champion_share
        if r.share_change >= settings.max_share_jump:
            new = " (a feature the champion does not use)" if math.isnan(r.champion_importance) else ""
            failures.append(f"feature {r.feature!r} carries {r.candidate_share:.0%} of the candidate's "
                            f"importance vs {was:.0%} of the champion's{new}: a possible shortcut")
        elif was >= settings.vanish_share and r.candidate_share < settings.vanish_ratio * was:
            warnings.append(f"feature {r.feature!r} vanished: {r.candidate_share:.0%} of the candidate's "
                            f"importance vs {was:.0%} of the champion's")
    measured["max_share_jump"] = float(table["share_change"].max())
    return judge(
        "reliance_shift", Family.MODEL, failures=failures, warnings=warnings, measured=measured,
        threshold=threshold, details=details,
        hint=RELIANCE_SHIFT.hint,
        ok_summary=f"importance shares within {settings.max_share_jump} of the champion's on "
        f"{ev.reliance_rows} rows ({settings.n_repeats} repeats)",
    )


# --------------------------------------------------------------------------- declarations
# After the overall model gates; depth 5: a named segment, a confidence collapse or a shortcut is
# more specific than the overall comparisons (depth 6) whose failures it explains. Each reads the
# evidence the evaluate step collected (flows/stages.py); without it the gate errors (fail closed).

WEAK_SEGMENTS = Gate(
    name="weak_segments", family=Family.MODEL, stage="model", settings=WeakSegmentsGate,
    inputs=("evidence",), check=check_weak_segments,
    cause=Cause(bucket="model", depth=5,
                meaning="the candidate fails on a segment found by search (a combination of feature values)",
                rules_out="a segment (single feature or pair) that lost far more than the rest",
                next_check="Filter evidence/failure_set.parquet to the segment; check how its features "
                "are produced at prediction time."),
    hint="One combination of feature values got much worse than the rest: look at how the "
    "features of those rows are produced (lookups, joins, encodings at prediction time) and at "
    "the failure set (evidence/failure_set.parquet) filtered to the segment.",
    blocks_when="a segment found by searching single features and pairs (binned numerics, top "
    "categories; ≥ `min_support` rows) lost far more to the champion than the candidate lost overall "
    "(two tiers: warn, block); a uniform drop is left to `champion`",
    faults=("weak_segment",),
)

CALIBRATION = Gate(
    name="calibration", family=Family.MODEL, stage="model", settings=CalibrationGate,
    inputs=("evidence",), check=check_calibration,
    cause=Cause(bucket="model", depth=5,
                meaning="the candidate's confidence collapsed (its probabilities no longer match outcomes)",
                rules_out="a collapse of calibration against the champion",
                next_check="Look at plots/evidence/reliability.png; check post-hoc calibration, class "
                "weights and sampling."),
    hint="The candidate's probabilities no longer mean what they say (see plots/evidence/"
    "reliability.png): look for a post-hoc calibration or temperature step, class weights or "
    "sampling changes, and early stopping settings.",
    blocks_when="the candidate's confidence collapsed: ECE past `max_ece` and `max_ece_increase` above "
    "the champion's on the same rows (reliability table and plot)",
    faults=("miscalibrated",),
)

RELIANCE_SHIFT = Gate(
    name="reliance_shift", family=Family.MODEL, stage="model", settings=RelianceShiftGate,
    inputs=("evidence",), check=check_reliance_shift,
    cause=Cause(bucket="model", depth=5,
                meaning="the candidate leans on a feature far more than the champion (a shortcut or a leak)",
                rules_out="a feature whose importance jumped (a shortcut) against the champion",
                next_check="Check whether the named feature is known before the label and how it is "
                "produced; compare plots/evidence/reliance.png."),
    hint="The candidate leans on a feature far more (or less) than the champion: check how the "
    "named feature is produced and whether it is known before the label (leakage), or why a "
    "feature stopped reaching the model (a broken join, a constant column).",
    blocks_when="a feature's share of permutation importance (≤ 2,000 rows, 3 repeats) jumped by "
    "`max_share_jump` against the champion (a shortcut); a vanished feature warns",
    faults=("shortcut_feature",),
)

GATES = [WEAK_SEGMENTS, CALIBRATION, RELIANCE_SHIFT]
