"""Model gates: the candidate against baselines and the champion, on the same test split."""

from __future__ import annotations

import math

from gates.config import BaselineGate, MetricSanityGate, PipelineConfig
from gates.results import Family, GateResult, judge


def check_metric_sanity(candidate: dict[str, float], settings: MetricSanityGate) -> GateResult:
    """NaN or infinite metrics mean the evaluation itself is broken: block before comparing."""
    bad = {k: v for k, v in candidate.items() if not math.isfinite(v)}
    return judge(
        "metric_sanity",
        Family.MODEL,
        failures=[f"metric {k} is {v}" for k, v in bad.items()],
        measured={f"candidate_{k}": v for k, v in candidate.items()},
        hint="Non-finite metrics come from NaN/inf predictions, a test split with one class, "
        "or NaN in the label: inspect the candidate's predictions on the test split.",
        ok_summary="all metrics finite",
    )


def _improvement(candidate: float, reference: float, greater_is_better: bool) -> float:
    return candidate - reference if greater_is_better else reference - candidate


def check_baseline(candidate: dict[str, float], baselines: dict[str, dict[str, float]],
                   cfg: PipelineConfig, settings: BaselineGate) -> GateResult:
    """The candidate must beat every baseline by `min_improvement` in the primary metric."""
    metric, better = cfg.model.primary_metric, cfg.greater_is_better
    value = candidate[metric]
    failures, measured = [], {f"candidate_{metric}": value}
    for name, scores in baselines.items():
        gain = _improvement(value, scores[metric], better)
        measured[f"{name}_{metric}"] = scores[metric]
        measured[f"gain_over_{name}"] = gain
        if not (gain >= settings.min_improvement):  # NaN fails too
            failures.append(
                f"{metric} {value:.4f} beats baseline {name!r} ({scores[metric]:.4f}) by "
                f"{gain:+.4f} < required {settings.min_improvement}")
    return judge(
        "baseline",
        Family.MODEL,
        failures=failures,
        measured=measured,
        threshold={"min_improvement": settings.min_improvement, "metric": metric},
        hint="A candidate no better than a baseline has learned little: check the features reach "
        "the model, the label is right, and the hyperparameters were not changed by mistake.",
        ok_summary=f"{metric} {value:.4f} beats every baseline by >= {settings.min_improvement}",
    )


def plan(ctx) -> list:
    """The model gates, run once the candidate, baselines and champion are evaluated."""
    from gates.results import plan_gate

    g = ctx.cfg.gates
    return [
        *plan_gate("metric_sanity", Family.MODEL, g.metric_sanity, check_metric_sanity, ctx.metrics,
                   g.metric_sanity),
        *plan_gate("baseline", Family.MODEL, g.baseline, check_baseline, ctx.metrics,
                   ctx.baseline_metrics, ctx.cfg, g.baseline),
    ]
