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

from gates.results import Family, GateResult, judge

HISTORY_METRIC = "gate.label_noise.candidate_rate"  # logged with each run's own evaluation


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


def check_label_noise(ctx: Any, settings: Any) -> GateResult:
    """Block when the champion is confidently wrong on the new rows far more often than before."""
    from gates.config import Task

    cfg = ctx.cfg
    if cfg.task is not Task.CLASSIFICATION:
        return GateResult(name="label_noise", family=Family.DATA, status="pass",
                          summary="not measured: the confident-wrong rate is defined for classification")
    y = ctx.split.test[cfg.data.target].to_numpy()
    candidate = confident_wrong_rate(y, ctx.scores, settings.confidence)
    measured: dict[str, Any] = {"candidate_rate": round(candidate, 6)}  # tomorrow's history
    threshold = {"confidence": settings.confidence, "max_increase": settings.max_increase,
                 "max_ratio": settings.max_ratio}
    if ctx.champion_scores is None:
        return judge("label_noise", Family.DATA, failures=[], measured=measured, threshold=threshold,
                     ok_summary=f"first run: no champion to witness the labels; this model's "
                     f"confident-wrong rate {candidate:.2%} is logged as its history")
    history = historical_rate(cfg, ctx.champion)
    now = confident_wrong_rate(y, ctx.champion_scores, settings.confidence)
    measured["champion_rate"] = round(now, 6)
    if history is None:
        return judge("label_noise", Family.DATA, failures=[], measured=measured, threshold=threshold,
                     ok_summary=f"champion version {ctx.champion.version} logged no confident-wrong "
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
        hint="Check the labelling job for the newest days (definition, join, delay) before reading the "
        "model gates: a model regression measured on wrong labels is not a model problem.",
        ok_summary=text,
    )


def plan(ctx: Any) -> list:
    """The label-noise gate, run with the model gates (it needs the champion's scores)."""
    from gates.results import plan_gate

    g = ctx.cfg.gates
    return [*plan_gate("label_noise", Family.DATA, g.label_noise, check_label_noise, ctx, g.label_noise)]
