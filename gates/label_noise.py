"""Label-noise hint (issue 11.6): the champion's confident-wrong rate on the new rows against its
own historical rate.

When labels go bad (a labelling job that flips a share of them, a join that attaches the wrong
outcome), every model looks worse on the new test rows, and the model gates report a regression:
the diagnosis then points at the model. But a model that was right and sure about such rows
before is now "confidently wrong" far more often than it ever was. The champion is the fixed
witness: its confident-wrong rate on its own test split was logged when it was evaluated (this
gate's `candidate_rate`, an MLflow metric of its run); scored again on the new test rows, a jump
well beyond that rate points at the labels (data), not at the candidate.

Confident-wrong: a positive scored at or below 1 - `confidence`, or a negative scored at or above
`confidence`. Classification only; a regression pipeline gets a stated pass.

Both sides, not only the total: labels attached to the wrong rows are wrong both ways, so the
champion's confident positives *and* its confident negatives are wrong more often. When the
season or the base rate moves (real data: a busy month after a quiet one), only one side gets
wrong, and that is drift and label shift, judged by their gates: a one-sided jump warns. The
per-side rates are logged with each run (`..._positive_side`, `..._negative_side`); a champion
without them, or a side with fewer than `min_confident` confident rows, is judged on the total.
And wrong labels are wrong for every model: the candidate, trained on newer rows, must be
confidently wrong on them as well. When only the older champion is, the world moved under it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pydantic import Field

from gates.registry import Cause, Gate
from gates.results import Family, GateResult, judge
from gates.settings import GateSettings

HISTORY_METRIC = "gate.label_noise.candidate_rate"  # logged with each run's own evaluation
SIDES = ("positive_side", "negative_side")  # wrong among confident positive / negative predictions


class LabelNoiseGate(GateSettings):
    """The champion's confident-wrong rate on the new rows against its own logged rate."""

    confidence: float = Field(0.8, gt=0.5, lt=1, description="A score at or beyond this (or at or "
                              "below 1 - this for a positive) is a confident prediction.")
    max_increase: float = Field(0.05, ge=0, le=1, description="Absolute increase in the champion's "
                                "confident-wrong rate that blocks (with max_ratio).")
    max_ratio: float = Field(1.5, ge=1, description="Ratio to its historical rate that blocks (with "
                             "max_increase): a jump, not the test split's sampling noise.")
    min_confident: int = Field(30, ge=1, description="Confident predictions a side needs to be judged "
                               "on its own (fewer: the total decides).")


def confident_wrong_rate(y: np.ndarray, scores: np.ndarray, confidence: float) -> float:
    y = np.asarray(y).astype(float)
    scores = np.asarray(scores, dtype=float)
    if len(y) == 0:
        return float("nan")
    wrong = ((y == 1) & (scores <= 1 - confidence)) | ((y == 0) & (scores >= confidence))
    return float(np.mean(wrong))


def side_rates(y: np.ndarray, scores: np.ndarray, confidence: float) -> dict[str, tuple[float, int]]:
    """Per side: the share wrong among confident predictions of that side, and how many there are."""
    y = np.asarray(y).astype(float)
    scores = np.asarray(scores, dtype=float)
    out = {}
    for side, sure, wrong_label in (("positive_side", scores >= confidence, 0.0),
                                    ("negative_side", scores <= 1 - confidence, 1.0)):
        count = int(sure.sum())
        out[side] = (float(np.mean(y[sure] == wrong_label)) if count else float("nan"), count)
    return out


def historical_rates(cfg: Any, champion: Any) -> dict[str, float] | None:
    """The champion's confident-wrong rates on its own test split (total and per side), as its
    run logged them."""
    if champion is None or not champion.run_id:
        return None
    from gates import tracking

    metrics = tracking.client(cfg).get_run(champion.run_id).data.metrics
    if HISTORY_METRIC not in metrics:
        return None
    return {"total": metrics[HISTORY_METRIC],
            **{side: metrics[f"{HISTORY_METRIC}_{side}"] for side in SIDES if f"{HISTORY_METRIC}_{side}" in metrics}}


def historical_rate(cfg: Any, champion: Any) -> float | None:
    """The champion's confident-wrong rate on its own test split, as its run logged it."""
    found = historical_rates(cfg, champion)
    return found["total"] if found else None


def check_label_noise(test: Any, scores: np.ndarray | None, champion_scores: np.ndarray | None,
                      champion: Any, cfg: Any, settings: LabelNoiseGate) -> GateResult:
    """Block when the champion is confidently wrong on the new rows far more often than before."""
    from gates.config import Task

    if cfg.task is not Task.CLASSIFICATION:
        return GateResult(name="label_noise", family=Family.DATA, status="pass",
                          summary="not measured: the confident-wrong rate is defined for classification")
    if scores is None:
        raise ValueError("the candidate has no test scores: label noise cannot be judged")
    y = test[cfg.data.target].to_numpy()
    candidate = confident_wrong_rate(y, scores, settings.confidence)
    measured: dict[str, Any] = {"candidate_rate": round(candidate, 6)}  # tomorrow's history
    for side, (rate, count) in side_rates(y, scores, settings.confidence).items():
        if count >= settings.min_confident:
            measured[f"candidate_rate_{side}"] = round(rate, 6)
    threshold = {"confidence": settings.confidence, "max_increase": settings.max_increase,
                 "max_ratio": settings.max_ratio}
    if champion_scores is None:
        return judge("label_noise", Family.DATA, failures=[], measured=measured, threshold=threshold,
                     ok_summary=f"first run: no champion to witness the labels; this model's "
                     f"confident-wrong rate {candidate:.2%} is logged as its history")
    histories = historical_rates(cfg, champion) or {}
    history = histories.get("total")
    now = confident_wrong_rate(y, champion_scores, settings.confidence)
    measured["champion_rate"] = round(now, 6)
    if history is None:
        return judge("label_noise", Family.DATA, failures=[], measured=measured, threshold=threshold,
                     ok_summary=f"champion version {champion.version} logged no confident-wrong "
                     f"rate ({HISTORY_METRIC}); now {now:.2%} (not compared: the stated first-run rule)")
    measured["historical_rate"] = round(history, 6)
    increase = now - history
    ratio = now / history if history > 0 else float("inf")
    measured.update(increase=round(increase, 6), ratio=round(min(ratio, 1e6), 4))
    text = (f"the champion is confidently wrong (score beyond {settings.confidence}) on {now:.2%} of "
            f"the new test rows against {history:.2%} on its own test split (+{increase:.2%}, x{ratio:.1f})")
    failed = increase >= settings.max_increase and ratio >= settings.max_ratio
    warnings: list[str] = []
    sides = _judge_sides(side_rates(y, champion_scores, settings.confidence), histories, settings, measured)
    if failed and sides is not None and not all(sides.values()):
        jumped = [side.replace("_", " ") for side, up in sides.items() if up]
        failed = False
        if jumped:
            warnings.append(f"{text}, but only on its confident {jumped[0].split()[0]} predictions (the "
                            "other side is as right as before): a one-sided jump is a moved base rate or "
                            "season (drift, label_shift), not labels wrong both ways")
    fresh_up = candidate - history >= settings.max_increase and (
        candidate / history if history > 0 else float("inf")) >= settings.max_ratio
    if failed and not fresh_up:
        failed = False
        warnings.append(f"{text}, but the candidate, trained on newer rows, is confidently wrong on only "
                        f"{candidate:.2%} of them: the labels agree with a fresh model, so the champion is "
                        "stale (drift, label_shift), not the labels wrong")
    threshold["min_confident"] = settings.min_confident
    return judge(
        "label_noise", Family.DATA,
        failures=[f"{text}: the labels of the new rows look wrong"] if failed else [],
        warnings=warnings, measured=measured, threshold=threshold,
        hint=LABEL_NOISE.hint,
        ok_summary=text,
    )


def _judge_sides(now: dict[str, tuple[float, int]], histories: dict[str, float], settings: LabelNoiseGate,
                 measured: dict[str, Any]) -> dict[str, bool] | None:
    """Did each side's confident-wrong rate jump? None when a side cannot be judged (too few
    confident rows, or a champion run that logged no per-side rate): the total decides."""
    out = {}
    for side in SIDES:
        rate, count = now[side]
        history = histories.get(side)
        if count < settings.min_confident or history is None or not np.isfinite(rate):
            return None
        measured[f"champion_rate_{side}"] = round(rate, 6)
        measured[f"historical_rate_{side}"] = round(history, 6)
        out[side] = (rate - history >= settings.max_increase
                     and (rate / history if history > 0 else float("inf")) >= settings.max_ratio)
    return out


LABEL_NOISE = Gate(
    name="label_noise", family=Family.DATA, stage="model", settings=LabelNoiseGate,
    inputs=("test", "scores", "champion_scores", "champion", "cfg"), check=check_label_noise,
    # Depth 4: after drift and label shift (a shifted rate also makes the champion wrong), before
    # every model gate: a regression measured on wrong labels is a symptom of the labels.
    cause=Cause(bucket="data", depth=4, meaning="the new rows' labels look wrong (the champion is "
                "confidently wrong far more often than on its own test split)",
                rules_out="a jump in label noise on the new rows",
                next_check="Check the labelling job for the newest days (definition, join, delay) "
                "before reading the model gates."),
    hint="Check the labelling job for the newest days (definition, join, delay) before reading the "
    "model gates: a model regression measured on wrong labels is not a model problem.",
    blocks_when="the champion, scored on the new test rows, is confidently wrong (score beyond "
    "`confidence` 0.8) on `max_increase` (0.05) more of them than on its own test split (its run's "
    "`gate.label_noise.candidate_rate`), and `max_ratio` (1.5) times as often, on both its confident "
    "positives and negatives when each side has `min_confident` rows (one side only warns: a moved base "
    "rate), and the candidate is confidently wrong on them too (only the champion: it is stale, warns): "
    "the labels, not the model, are the first suspect",
    faults=("label_noise",),
)
GATES = [LABEL_NOISE]
