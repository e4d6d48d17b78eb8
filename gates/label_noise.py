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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pydantic import Field

from gates.registry import Cause, Gate
from gates.results import Family, GateResult, judge
from gates.settings import GateSettings

HISTORY_METRIC = "gate.label_noise.candidate_rate"  # logged with each run's own evaluation


class LabelNoiseGate(GateSettings):
    """The champion's confident-wrong rate on the new rows against its own logged rate."""

    confidence: float = Field(0.8, gt=0.5, lt=1, description="A score at or beyond this (or at or "
                              "below 1 - this for a positive) is a confident prediction.")
    max_increase: float = Field(0.05, ge=0, le=1, description="Absolute increase in the champion's "
                                "confident-wrong rate that blocks (with max_ratio).")
    max_ratio: float = Field(1.5, ge=1, description="Ratio to its historical rate that blocks (with "
                             "max_increase): a jump, not the test split's sampling noise.")


def confident_wrong_rate(y: np.ndarray, scores: np.ndarray, confidence: float) -> float:
    y = np.asarray(y).astype(float)
    scores = np.asarray(scores, dtype=float)
    if len(y) == 0:
        return float("nan")
    wrong = ((y == 1) & (scores <= 1 - confidence)) | ((y == 0) & (scores >= confidence))
    return float(np.mean(wrong))


def historical_rate(cfg: Any, champion: Any) -> float | None:
    """The champion's confident-wrong rate on its own test split, as its run logged it."""
    if champion is None or not champion.run_id:
        return None
    from gates import tracking

    return tracking.client(cfg).get_run(champion.run_id).data.metrics.get(HISTORY_METRIC)


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
    threshold = {"confidence": settings.confidence, "max_increase": settings.max_increase,
                 "max_ratio": settings.max_ratio}
    if champion_scores is None:
        return judge("label_noise", Family.DATA, failures=[], measured=measured, threshold=threshold,
                     ok_summary=f"first run: no champion to witness the labels; this model's "
                     f"confident-wrong rate {candidate:.2%} is logged as its history")
    history = historical_rate(cfg, champion)
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
    return judge(
        "label_noise", Family.DATA,
        failures=[f"{text}: the labels of the new rows look wrong"] if failed else [],
        measured=measured, threshold=threshold,
        hint=LABEL_NOISE.hint,
        ok_summary=text,
    )


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
    "`gate.label_noise.candidate_rate`), and `max_ratio` (1.5) times as often: the labels, not the "
    "model, are the first suspect",
    faults=("label_noise",),
)
GATES = [LABEL_NOISE]
