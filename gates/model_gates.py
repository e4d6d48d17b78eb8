"""Model gates: the candidate against baselines and the champion, on the same test split.

Order matters for the headline (the first blocking gate names the cause), so the plan runs the
most specific checks first: broken metrics, then degenerate predictions, then a collapsed slice,
then the baselines, and last the overall comparison with the champion.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pydantic import Field

from gates.config import MAX_ROWS, PipelineConfig, Task
from gates.evaluation import mlflow_threshold_failures, prediction_profile, slice_metrics
from gates.registry import Cause, Gate
from gates.results import Family, GateResult, Status, judge
from gates.settings import GateSettings

FIRST_RUN = ("first run: no champion in the registry, so only absolute thresholds apply "
             "(no comparison with a previous model)")


# --------------------------------------------------------------------------- settings


NOISE_Z = Field(
    2.0, ge=0, description="A shortfall blocks only when it stands this many paired-bootstrap standard "
    "errors beyond the bar (gates/metric_noise.py); a smaller one, within the noise of the test rows, "
    "warns. 0 judges the point estimate alone.")


class BaselineGate(GateSettings):
    min_improvement: float = Field(
        0.01, ge=0, description="The candidate must beat every baseline by this much (absolute)."
    )
    noise_z: float = NOISE_Z


class ChampionGate(GateSettings):
    max_regression: float = Field(
        0.005, ge=0, description="Absolute loss in the primary metric tolerated against the champion."
    )
    min_value: float | None = Field(
        None, description="Absolute bound on the primary metric (a floor, or a ceiling for lower-is-"
        "better metrics), applied on every run; on the first run, with no champion, it is the only check."
    )
    noise_z: float = NOISE_Z


class MetricSanityGate(GateSettings):
    pass


class SlicesGate(GateSettings):
    floor: float | None = Field(None, description="Primary metric floor on every slice.")
    max_regression: float = Field(0.03, ge=0, description="Per-slice loss against the champion.")
    min_count: int = Field(200, ge=1, le=MAX_ROWS, description="Slices with fewer test rows are reported only.")


class PredictionsGate(GateSettings):
    max_rate_change: float = Field(
        0.1, ge=0, description="Change in positive-prediction share (or mean) against the champion that "
        "warns: a model can move its share at the 0.5 threshold with its ranking intact (a season's base "
        "rate moved); a degenerate one blocks (a class never predicted, constant output)."
    )
    score_psi_warn: float = Field(
        0.25, ge=0, description="PSI of the scores against the champion's (same rows or its own "
        "evaluation) that warns. A class never predicted always blocks.")


# --------------------------------------------------------------------------- checks


def _improvement(candidate: float, reference: float, greater_is_better: bool) -> float:
    return candidate - reference if greater_is_better else reference - candidate


def _noise_margin(metric_noise: dict | None, name: str, z: float) -> tuple[float, str]:
    """z standard errors of the paired difference against `name`, and how to say it."""
    found = (metric_noise or {}).get(name)
    if not found or not z or not math.isfinite(found.get("se", float("nan"))):
        return 0.0, ""
    margin = z * found["se"]
    return margin, (f"paired bootstrap se {found['se']:.4f} on {found['rows']} test rows, so "
                    f"{z:g} se = {margin:.4f}")


def check_metric_sanity(metrics: dict[str, float], settings: MetricSanityGate,
                        scores: np.ndarray | None = None) -> GateResult:
    """NaN or infinite metrics mean the evaluation itself is broken: block before comparing."""
    candidate = metrics
    bad = {k: v for k, v in candidate.items() if not math.isfinite(v)}
    failures = [f"metric {k} is {v}" for k, v in bad.items()]
    measured: dict = {f"candidate_{k}": v for k, v in candidate.items()}
    if not candidate:
        failures.append("no metrics were computed for the candidate")
    if scores is not None:
        scores = np.asarray(scores, dtype=float)
        nan, inf = int(np.isnan(scores).sum()), int(np.isinf(scores).sum())
        measured.update(nan_predictions=nan, inf_predictions=inf)
        if nan or inf:
            failures.insert(0, f"the candidate predicted NaN on {nan} and ±inf on {inf} of "
                            f"{len(scores)} test rows, so its metrics are undefined")
    return judge(
        "metric_sanity", Family.MODEL, failures=failures, measured=measured,
        hint=METRIC_SANITY.hint,
        ok_summary="all metrics finite",
    )


def check_baseline(metrics: dict[str, float], baseline_metrics: dict[str, dict[str, float]],
                   cfg: PipelineConfig, settings: BaselineGate, metric_noise: dict | None = None) -> GateResult:
    """The candidate must beat every baseline by `min_improvement` in the primary metric.

    A shortfall within `noise_z` paired-bootstrap standard errors of the bar warns: on a few
    thousand test rows a tuned model and a linear one can trade places by chance.
    """
    candidate, baselines = metrics, baseline_metrics
    metric, better = cfg.model.primary_metric, cfg.greater_is_better
    value = candidate.get(metric, float("nan"))
    if not baselines:
        raise ValueError("no baseline was trained: the baseline gate cannot judge the candidate")
    failures, warnings, measured = [], [], {f"candidate_{metric}": value}
    for name, scores in baselines.items():
        reference = scores.get(metric, float("nan"))
        gain = _improvement(value, reference, better)
        margin, noise = _noise_margin(metric_noise, name, settings.noise_z)
        measured[f"{name}_{metric}"] = reference
        measured[f"gain_over_{name}"] = gain
        if margin:
            measured[f"noise_margin_{name}"] = margin
        required = settings.min_improvement - margin  # MLflow's change threshold must be > 0,
        floor = None if required > 0 or not math.isfinite(reference) else (  # so a negative one is a floor
            reference + required if better else reference - required)
        found = mlflow_threshold_failures(metric, better, value, reference=reference, floor=floor,
                                          min_gain=required if required > 0 else None, reference_name=name)
        said = (f"{metric} {value:.4f} vs baseline {name!r} {reference:.4f}: gain {gain:+.4f} < required "
                f"{settings.min_improvement}")
        if found:
            failures.append(f"{said}{f' beyond the noise ({noise})' if noise else ''} [{found[0]}]")
        elif math.isfinite(gain) and gain < settings.min_improvement:
            warnings.append(f"{said}, but within the noise of the test rows ({noise})")
    return judge(
        "baseline", Family.MODEL, failures=failures, warnings=warnings, measured=measured,
        threshold={"min_improvement": settings.min_improvement, "metric": metric, "noise_z": settings.noise_z},
        hint=BASELINE.hint,
        ok_summary=f"{metric} {value:.4f} beats every baseline by >= {settings.min_improvement}",
    )


def check_champion(metrics: dict[str, float], champion_metrics: dict[str, float] | None,
                   cfg: PipelineConfig, settings: ChampionGate, champion_version: str | None = None,
                   champion_error: str | None = None, metric_noise: dict | None = None) -> GateResult:
    """No regression beyond `max_regression` against the champion scored on the same rows.

    First run (no champion): the stated rule is that only the absolute floor `min_value`
    applies, and the result says so. A champion that cannot be loaded is an error: we cannot
    prove the candidate is not worse, so it does not ship. A loss past `max_regression` but
    within `noise_z` paired-bootstrap standard errors of it warns (the rows cannot tell).
    """
    metric, better = cfg.model.primary_metric, cfg.greater_is_better
    value = metrics.get(metric, float("nan"))
    threshold = {"metric": metric, "max_regression": settings.max_regression, "min_value": settings.min_value,
                 "noise_z": settings.noise_z}
    if champion_error:
        return GateResult(
            name="champion", family=Family.MODEL, status=Status.ERROR, threshold=threshold,
            summary=f"champion v{champion_version} could not be loaded or scored: {champion_error}",
            evidence=[f"models:/{cfg.mlflow.registered_model}@{cfg.mlflow.champion_alias} "
                      f"(version {champion_version}): {champion_error}"],
            hint="Fix the registry entry (or move the alias to a loadable version) and rerun; "
            "without the champion's score the candidate cannot be proven not to regress.")
    failures: list[str] = []
    measured: dict = {f"candidate_{metric}": value}
    if settings.min_value is not None:
        failures += mlflow_threshold_failures(metric, better, value, floor=settings.min_value)
    if champion_metrics is None:
        return judge("champion", Family.MODEL, failures=failures, measured=measured, threshold=threshold,
                     hint="The first model must still reach gates.champion.min_value.",
                     ok_summary=FIRST_RUN, details={"first_run": True})
    reference = champion_metrics.get(metric, float("nan"))
    change = _improvement(value, reference, better)
    margin, noise = _noise_margin(metric_noise, "champion", settings.noise_z)
    measured.update({f"champion_{metric}": reference, "change": change})
    if margin:
        measured["noise_margin"] = margin
    allowed = settings.max_regression + margin
    floor = reference - allowed if better else reference + allowed
    found = mlflow_threshold_failures(metric, better, value, floor=floor if math.isfinite(reference) else None,
                                      reference=reference, reference_name="champion")
    said = (f"{metric} {value:.4f} vs champion v{champion_version} {reference:.4f} on the same test rows: "
            f"change {change:+.4f} exceeds the tolerated regression {settings.max_regression}")
    warnings = []
    if found:
        failures.append(f"{said}{f' beyond the noise ({noise})' if noise else ''} [{found[0]}]")
    elif math.isfinite(change) and -change > settings.max_regression:
        warnings.append(f"{said}, but within the noise of the test rows ({noise})")
    return judge(
        "champion", Family.MODEL, failures=failures, warnings=warnings, measured=measured, threshold=threshold,
        hint=CHAMPION.hint,
        ok_summary=f"{metric} {value:.4f} vs champion v{champion_version} {reference:.4f} "
        f"(change {change:+.4f}, tolerance {settings.max_regression})",
    )


def check_slices(test: pd.DataFrame, scores: np.ndarray, champion_scores: np.ndarray | None,
                 cfg: PipelineConfig, settings: SlicesGate) -> GateResult:
    """The primary metric on every slice: above the floor, and not far below the champion's.

    Slices with fewer than `min_count` test rows are listed but not judged: their metric is
    noise (the standard error of ROC AUC on 200 rows is about 0.03-0.04).
    """
    metric, better = cfg.model.primary_metric, cfg.greater_is_better
    if not cfg.data.slices:
        return judge("slices", Family.MODEL, failures=[], ok_summary="no slices configured (data.slices)")
    candidate = slice_metrics(test, scores, cfg, metric)
    champion = slice_metrics(test, champion_scores, cfg, metric) if champion_scores is not None else None
    failures, small, table = [], [], {}
    for key, row in candidate.items():
        value = row[metric]
        entry = {"rows": row["rows"], "candidate": value}
        if champion is not None:
            entry["champion"] = champion[key][metric]
        table[key] = entry
        if row["rows"] < settings.min_count:
            small.append(f"{key} ({row['rows']} rows)")
            continue
        if not math.isfinite(value):
            failures.append(f"slice {key}: {metric} is {value} on {row['rows']} rows")
            continue
        if settings.floor is not None and (value < settings.floor if better else value > settings.floor):
            failures.append(f"slice {key}: {metric} {value:.4f} is past the floor {settings.floor} "
                            f"({row['rows']} rows)")
        if champion is not None and math.isfinite(entry["champion"]):
            loss = -_improvement(value, entry["champion"], better)
            entry["regression"] = loss
            if loss > settings.max_regression:
                failures.append(f"slice {key}: {metric} {value:.4f} vs champion {entry['champion']:.4f} "
                                f"(regression {loss:.4f} > {settings.max_regression}, {row['rows']} rows)")
    judged = [e for k, e in table.items() if e["rows"] >= settings.min_count]
    worst = min((e["candidate"] for e in judged if math.isfinite(e["candidate"])), default=float("nan"),
                key=lambda v: v if better else -v)
    measured = {"slices": len(table), "judged": len(judged), "too_small": len(small),
                f"worst_{metric}": worst,
                "max_regression": max((e.get("regression", float("-inf")) for e in judged), default=float("nan"))}
    if not math.isfinite(measured["max_regression"]):
        measured["max_regression"] = None
    notes = [f"reported, not judged (< {settings.min_count} rows): {', '.join(small)}"] if small else []
    if champion is None:
        notes.append(FIRST_RUN)
    result = judge(
        "slices", Family.MODEL, failures=failures, measured=measured,
        threshold={"metric": metric, "floor": settings.floor, "max_regression": settings.max_regression,
                   "min_count": settings.min_count},
        hint=SLICES.hint,
        ok_summary=f"{len(judged)} slices judged on {metric}" + (f"; {'; '.join(notes)}" if notes else ""),
        details={"slices": table},
    )
    if failures and notes:
        result.evidence += notes
    return result


def check_predictions(scores: np.ndarray, champion_scores: np.ndarray | None, cfg: PipelineConfig,
                      settings: PredictionsGate, score_distribution: dict | None = None,
                      test: pd.DataFrame | None = None) -> GateResult:
    """Constant predictions or a class never predicted block; the level must stay near the champion's.

    Level: the share of positive predictions (classification, score >= 0.5) as an absolute
    change, or the mean prediction (regression) as a change relative to the champion's mean; a
    change warns, stating the observed share of the rows (a share can follow a season with the
    ranking intact). A class never predicted blocks whatever the severity (a model that never
    says "churn" is broken, not shifted). The score distribution (`gates.model_evidence.prediction_distribution`)
    warns when its PSI against the champion's, on the same rows or in its own evaluation, is
    past `score_psi_warn`.
    """
    from gates.model_evidence import prediction_distribution

    task = cfg.task
    profile = prediction_profile(scores, task)
    what = "positive-prediction share" if task is Task.CLASSIFICATION else "mean prediction"
    failures: list[str] = []
    warnings: list[str] = []
    always_blocks = False
    measured: dict = {"level": profile["level"], "std": profile["std"], "distinct": profile["distinct"]}
    if profile["distinct"] <= 1:
        failures.append(f"the candidate predicts one constant value ({profile['mean']:.4g}) for all "
                        f"{len(scores)} test rows")
    dist = (score_distribution if score_distribution is not None
            else prediction_distribution(scores, champion_scores, task))
    if dist.get("never_predicted"):
        always_blocks = True
        counts = dist["predicted_classes"]
        failures.insert(0, f"class {', '.join(dist['never_predicted'])} is never predicted on {len(scores)} "
                        f"test rows (predicted classes: {counts}; no score reaches 0.5)")
        measured["positive_predictions"] = counts.get("1")
    if dist.get("champion_metric"):  # read by the diagnosis: did the champion itself get worse?
        cm = dist["champion_metric"]
        measured.update(champion_metric_own_evaluation=cm["own_evaluation"], champion_metric_now=cm["now"],
                        greater_is_better=cm["greater_is_better"])
    for key, against in (("psi_vs_champion", "the champion's scores on the same rows"),
                         ("psi_vs_champion_evaluation", "the champion's scores in its own evaluation")):
        value = dist.get(key)
        if value is not None:
            measured[f"score_{key}"] = value
            if math.isfinite(value) and value > settings.score_psi_warn:
                warnings.append(f"score distribution PSI {value:.3f} against {against} (> {settings.score_psi_warn})")
    if profile["non_finite"]:
        failures.append(f"{profile['non_finite']} non-finite predictions")
    observed = None
    if task is Task.CLASSIFICATION and test is not None and cfg.data.target in test.columns and len(test):
        observed = float(np.mean(test[cfg.data.target].to_numpy() == 1))
        measured["observed_positive_share"] = observed
    if champion_scores is not None:
        champ = prediction_profile(champion_scores, task)
        change = profile["level"] - champ["level"]
        if task is Task.REGRESSION:
            change = change / abs(champ["level"]) if champ["level"] else float("inf")
        measured.update(champion_level=champ["level"], change=change)
        if not abs(change) <= settings.max_rate_change:
            seen = f"; observed positive share of these rows {observed:.4g}" if observed is not None else ""
            warnings.append(f"{what} {profile['level']:.4g} vs champion {champ['level']:.4g} on the same "
                            f"rows: change {change:+.4g} beyond ±{settings.max_rate_change}{seen}")
    result = judge(
        "predictions", Family.MODEL, failures=failures, warnings=warnings, measured=measured,
        threshold={"max_rate_change": settings.max_rate_change, "score_psi_warn": settings.score_psi_warn},
        hint=PREDICTIONS.hint,
        ok_summary=f"{what} {profile['level']:.4g}, {profile['distinct']} distinct predictions"
        + ("" if champion_scores is not None else f"; {FIRST_RUN}"),
    )
    if always_blocks:
        result.details["always_blocks"] = True
    return result


# --------------------------------------------------------------------------- declarations
# In run order: broken metrics, degenerate predictions, a collapsed slice, baselines, champion.


METRIC_SANITY = Gate(
    name="metric_sanity", family=Family.MODEL, stage="model", settings=MetricSanityGate,
    inputs=("metrics", "scores"), check=check_metric_sanity,
    cause=Cause(bucket="model", depth=4, meaning="the candidate's metrics are not finite",
                rules_out="NaN or infinite metrics",
                next_check="Look for NaN/inf predictions or a one-class test split."),
    hint="Non-finite metrics come from NaN/inf predictions, a test split with one class, "
    "or NaN in the label: inspect the candidate's predictions on the test split.",
    blocks_when="a metric is NaN or infinite",
    faults=("nan_metric",),
)

PREDICTIONS = Gate(
    name="predictions", family=Family.MODEL, stage="model", settings=PredictionsGate,
    inputs=("scores", "champion_scores", "cfg", "score_distribution", "test"), check=check_predictions,
    cause=Cause(bucket="model", depth=6, meaning="the candidate's predictions are constant, one-class or shifted",
                rules_out="constant, one-class or shifted predictions",
                next_check="Check the prediction distribution and the decision threshold."),
    hint="Constant, one-class or shifted predictions: check hyperparameters that stop the model "
    "from learning (max_iter, min_samples_leaf, regularisation) and the decision threshold.",
    blocks_when="predictions are constant or a class is never predicted (always blocks); warns when the positive share moved against the "
    "champion's on the same rows, and on a score PSI against the champion's (same rows, own evaluation)",
    faults=("constant_predictions", "class_never_predicted"),
)

SLICES = Gate(
    name="slices", family=Family.MODEL, stage="model", settings=SlicesGate,
    inputs=("test", "scores", "champion_scores", "cfg"), check=check_slices,
    cause=Cause(bucket="model", depth=6, meaning="the candidate collapses on a slice",
                rules_out="a collapse on any slice with enough rows",
                next_check="Look at the slice's rows in the new data and its share of the training set."),
    hint="One segment got much worse: check features specific to that segment (joins, lookups, "
    "encodings) and whether its training rows changed.",
    blocks_when="the primary metric collapses on a slice (floor, or against the champion on the "
    "same slice); small slices are reported, not judged",
    faults=("slice_collapse",),
)

BASELINE = Gate(
    name="baseline", family=Family.MODEL, stage="model", settings=BaselineGate,
    inputs=("metrics", "baseline_metrics", "cfg", "metric_noise"), check=check_baseline,
    cause=Cause(bucket="model", depth=6, meaning="the candidate does not beat a simple baseline",
                rules_out="a candidate no better than a baseline",
                next_check="Check the hyperparameters and that features reach the model."),
    hint="A candidate no better than a baseline has learned little: check the features reach "
    "the model, the label is right, and the hyperparameters were not changed by mistake.",
    blocks_when="the candidate does not beat the dummy and the configured simple model by `min_improvement`",
    faults=("below_baseline",),
)

CHAMPION = Gate(
    name="champion", family=Family.MODEL, stage="model", settings=ChampionGate,
    inputs=("metrics", "champion_metrics", "cfg", "champion_version", "champion_error", "metric_noise"),
    check=check_champion,
    cause=Cause(bucket="model", depth=6, meaning="the candidate is worse than the champion on the same new data",
                rules_out="a regression against the production model",
                next_check="Diff params and code against the champion's run (gates compare)."),
    hint="The candidate is worse than the model in production on the same new data: compare "
    "hyperparameters and training data with the champion's run (gates compare RUN_A RUN_B).",
    blocks_when="the candidate loses to `models:/<name>@champion` on the same new test split by more "
    "than `max_regression` (first run: absolute thresholds only, stated in the report)",
    faults=("regressed_hyperparameters",),
)

GATES = [METRIC_SANITY, PREDICTIONS, SLICES, BASELINE, CHAMPION]
