"""Leakage and split gates: catch a model that saw the answer, or features it will not have.

Before training: the split is in time order (time_order), test rows are not also training rows
(row_overlap), no single feature nearly determines the label (target_leakage), and every feature
is available at prediction time (serving_availability). After training: the metric is not too
good to be true (perfect_metric) and the pipeline's preprocessing learned its statistics from the
training split only (preprocessing_fit). After export: raw rows, as serving sends them, get the
predictions evaluation saw (serving_skew).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score, roc_auc_score

from pydantic import Field

from gates.config import MAX_ROWS, PipelineConfig, Task
from gates.registry import Cause, Gate
from gates.results import Family, GateResult, judge
from gates.settings import GateSettings
from gates.split import Split


# --------------------------------------------------------------------------- settings


class TimeOrderGate(GateSettings):
    """Every training timestamp precedes the oldest test timestamp by at least split.gap_days."""


class RowOverlapGate(GateSettings):
    max_share: float = Field(0.001, ge=0, le=1, description="Share of test rows also in train "
                             "(and, with split.entity_aware, of test entities also in train).")
    ignore_columns: list[str] | None = Field(
        None, description="Columns left out of the row hash; default: the timestamp, because a "
        "re-stamped copy of a record is still the same record.")


class TargetLeakageGate(GateSettings):
    max_single_feature_auc: float = Field(
        0.95, description="One-feature ROC AUC, sign-free max(auc, 1 - auc), that blocks.")
    max_single_feature_r2: float = Field(0.9, description="One-feature R² that blocks (regression).")
    allow: list[str] = Field(default_factory=list, description="Features known to be strong.")
    sample_rows: int = Field(50_000, ge=1000, le=MAX_ROWS, description="Test rows scored (and train rows "
                             "used for the categorical encodings); the AUC's standard error is reported.")


class PerfectMetricGate(GateSettings):
    ceilings: dict[str, float] = Field(
        default_factory=lambda: {"roc_auc": 0.995, "accuracy": 0.995, "r2": 0.995},
        description="Candidate metrics at or above these look like leakage.",
    )
    max_jump: float = Field(
        0.02, ge=0, description="At a ceiling, the most the candidate may beat the champion (or, on a "
        "first run, the best simple baseline) by before it is a jump, not an easy problem.")


class ServingAvailabilityGate(GateSettings):
    max_future_share: float = Field(
        0.0, ge=0, le=1,
        description="Share of rows whose feature value was known only after prediction time.")
    feature_timestamps: dict[str, str] = Field(
        default_factory=dict,
        description="feature -> column holding when that feature's value became known (its "
        "as-of time, as a feature store records it). A row whose as-of time is after its event "
        "timestamp (the prediction time) used the future.")


# --------------------------------------------------------------------------- split integrity


def check_time_order(split: Split, cfg: PipelineConfig, settings: TimeOrderGate) -> GateResult:
    """The newest training event is before the oldest test event minus the gap: the model is
    tested on a future it never saw, as in production."""
    ts = cfg.data.timestamp
    train_t, test_t = pd.to_datetime(split.train[ts]), pd.to_datetime(split.test[ts])
    newest_train, oldest_test = train_t.max(), test_t.min()
    gap = pd.Timedelta(days=cfg.split.gap_days)
    limit = oldest_test - gap
    late = int((train_t >= limit).sum())
    failures = []
    if late:
        failures.append(
            f"{late} of {len(train_t)} training rows ({late / len(train_t):.1%}) are at or after "
            f"{limit} (oldest test {ts} {oldest_test} minus gap {cfg.split.gap_days}d); newest "
            f"training {ts} is {newest_train} (split.strategy={split.strategy})")
    return judge(
        "time_order", Family.LEAKAGE, failures=failures,
        measured={"train_rows_after_test_start": late,
                  "hours_between_train_and_test": round((oldest_test - newest_train) / pd.Timedelta(hours=1), 3)},
        threshold={"gap_days": cfg.split.gap_days},
        hint=TIME_ORDER.hint,
        ok_summary=f"newest train {newest_train} < oldest test {oldest_test} - {cfg.split.gap_days}d gap",
    )


def _row_hashes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()


def check_row_overlap(split: Split, cfg: PipelineConfig, settings: RowOverlapGate) -> GateResult:
    """Test rows that are also training rows (whole-row hash), and with entity-aware splits,
    test entities that are also in train: either lets the model memorise the answer."""
    ignore = settings.ignore_columns if settings.ignore_columns is not None else [cfg.data.timestamp]
    columns = [c for c in split.test.columns if c not in ignore and c in split.train.columns]
    hashes = split.row_hashes  # the split frame's, computed once per run (shared with duplicates)
    if hashes is not None and split.train_positions is not None and split.test_positions is not None:
        test_h = hashes.rows(columns, split.test_positions)
        train_h = hashes.rows(columns, split.train_positions)
    else:
        test_h, train_h = _row_hashes(split.test, columns), _row_hashes(split.train, columns)
    shared = pd.Series(test_h).isin(train_h).to_numpy()  # a hash table: no sort of either side
    count = int(shared.sum())
    share = count / len(test_h) if len(test_h) else 0.0
    failures, measured = [], {"shared_rows": count, "shared_row_share": share, "test_rows": len(test_h)}
    if share > settings.max_share:
        rows = split.test.loc[shared]
        example = rows.iloc[0]
        where = (f", e.g. {cfg.data.entity_id}={example[cfg.data.entity_id]}"
                 if cfg.data.entity_id in rows else "")
        failures.append(f"{count} of {len(test_h)} test rows ({share:.2%}) also appear in train "
                        f"(hash of {len(columns)} columns, {cfg.data.timestamp} ignored){where}")
    entity = cfg.data.entity_id
    if split.entity_aware and entity:
        test_ids = split.test[entity].unique()
        straddle = np.isin(test_ids, split.train[entity].unique())
        n = int(straddle.sum())
        measured.update({"shared_entities": n, "shared_entity_share": n / max(len(test_ids), 1)})
        if n / max(len(test_ids), 1) > settings.max_share:
            failures.append(f"{n} of {len(test_ids)} test entities ({entity}) also have training "
                            f"rows, e.g. {entity}={test_ids[straddle][:3].tolist()}")
    scope = "rows and entities" if split.entity_aware and entity else "rows (entity check off: split.entity_aware false)"
    return judge(
        "row_overlap", Family.LEAKAGE, failures=failures, measured=measured,
        threshold={"max_share": settings.max_share},
        hint=ROW_OVERLAP.hint,
        ok_summary=f"{count} shared {scope}, share {share:.4%} <= {settings.max_share:.2%}",
    )


# --------------------------------------------------------------------------- target leakage


def _hanley_mcneil_se(auc: float, pos: int, neg: int) -> float:
    """Standard error of an AUC (Hanley & McNeil 1982): the sample's stated error."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (pos - 1) * (q1 - auc**2) + (neg - 1) * (q2 - auc**2)) / max(pos * neg, 1)
    return math.sqrt(max(var, 0.0))


def _encoded(train: pd.DataFrame, test: pd.DataFrame, feature: str, target: str,
             categorical: bool) -> np.ndarray:
    """The feature as a one-feature model's score: numeric values as they are (missing -> train
    median); categories as their training target mean (unseen -> the training prior)."""
    if categorical:
        means = train[target].groupby(train[feature].astype("str")).mean()
        return test[feature].astype("str").map(means).fillna(train[target].mean()).to_numpy(float)
    values = pd.to_numeric(test[feature], errors="coerce").astype(float)
    return values.fillna(pd.to_numeric(train[feature], errors="coerce").median()).to_numpy(float)


def single_feature_power(train: pd.DataFrame, test: pd.DataFrame, feature: str, cfg: PipelineConfig) -> float:
    """Sign-free one-feature ROC AUC (classification) or R² (regression) on the test rows."""
    target = cfg.data.target
    score = _encoded(train, test, feature, target, feature in cfg.data.features.categorical)
    y = test[target].to_numpy()
    if cfg.task is Task.CLASSIFICATION:
        auc = roc_auc_score(y, score)
        return float(max(auc, 1 - auc))
    if feature in cfg.data.features.categorical:
        return float(r2_score(y, score))
    corr = np.corrcoef(score, y)[0, 1] if np.std(score) > 0 else 0.0
    return float(corr**2)


def _sample(frame: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    return frame if len(frame) <= n else frame.sample(n=n, random_state=seed)


def check_target_leakage(split: Split, cfg: PipelineConfig, settings: TargetLeakageGate) -> GateResult:
    """A feature that predicts the label almost perfectly on its own was most likely computed
    from the label (or after it): block and name it, unless the config allow-lists it."""
    target, classification = cfg.data.target, cfg.task is Task.CLASSIFICATION
    test = _sample(split.test, settings.sample_rows)
    train = _sample(split.train, settings.sample_rows)
    if classification and test[target].nunique() < 2:
        raise ValueError(f"test sample has a single {target} class: one-feature AUC undefined")
    limit = settings.max_single_feature_auc if classification else settings.max_single_feature_r2
    stat = "auc" if classification else "r2"
    powers = {f: single_feature_power(train, test, f, cfg) for f in cfg.data.features.all}
    pos = int((test[target] == 1).sum()) if classification else 0
    failures, warnings = [], []
    for feature, power in sorted(powers.items(), key=lambda kv: -kv[1]):
        if not power >= limit:
            continue
        line = f"feature {feature!r} alone reaches {stat} {power:.4f} >= {limit} on {len(test)} test rows"
        (warnings if feature in settings.allow else failures).append(
            line + (" (allow-listed)" if feature in settings.allow else ""))
    top = max(powers, key=powers.get)
    se = _hanley_mcneil_se(powers[top], pos, len(test) - pos) if classification else float("nan")
    return judge(
        "target_leakage", Family.LEAKAGE, failures=failures, warnings=warnings,
        measured={"sample_rows": len(test), f"max_single_feature_{stat}": powers[top],
                  **({"max_auc_standard_error": se} if classification else {}),
                  **{f"{stat}.{f}": round(v, 6) for f, v in powers.items()}},
        threshold={f"max_single_feature_{stat}": limit, "allow": ",".join(settings.allow)},
        hint=TARGET_LEAKAGE.hint,
        ok_summary=f"strongest single feature {top!r}: {stat} {powers[top]:.3f} < {limit} "
        f"(sample of {len(test)} test rows" + (f", standard error {se:.3f})" if classification else ")"),
        details={"powers": powers},
    )


def _best_simple_baseline(baselines: dict[str, dict[str, float]], metric: str) -> tuple[str, float] | None:
    """The strongest configured baseline other than the dummy (which learns nothing)."""
    scored = {n: m.get(metric) for n, m in (baselines or {}).items() if n != "dummy"
              and m.get(metric) is not None and math.isfinite(m.get(metric))}
    return max(scored.items(), key=lambda kv: kv[1]) if scored else None


def check_perfect_metric(metrics: dict[str, float], settings: PerfectMetricGate, *,
                         baselines: dict[str, dict[str, float]] | None = None,
                         champion: dict[str, float] | None = None,
                         single_feature: Callable[[], tuple[str, float, float]] | None = None) -> GateResult:
    """A metric at its ceiling is leakage only when something says so, not by itself: an easy
    problem is easy for every model, every month.

    At a ceiling, the candidate blocks when it jumps past the champion by more than `max_jump`
    (a sudden gain on the same task); with no champion, when one feature alone nearly determines
    the label (target_leakage's one-feature measure, allow-listed or not), or when it jumps past
    the best simple baseline. A ceiling the simple baseline reaches too, with no one-feature
    evidence, is an easy problem: reported, not blocked.
    """
    failures, notes, measured, skipped = [], [], {}, []
    evidence = None
    for metric, ceiling in settings.ceilings.items():
        value = metrics.get(metric)
        if value is None or not math.isfinite(value):
            skipped.append(metric)
            continue
        measured[f"candidate_{metric}"] = value
        if value < ceiling:
            continue
        base = _best_simple_baseline(baselines or {}, metric)
        champ = (champion or {}).get(metric)
        if base:
            measured[f"jump_over_baseline_{metric}"] = value - base[1]
        if champ is not None and math.isfinite(champ):
            measured[f"jump_over_champion_{metric}"] = value - champ
            if value - champ > settings.max_jump:
                failures.append(f"candidate {metric} {value:.4f} >= ceiling {ceiling} and jumps "
                                f"{value - champ:+.4f} past the champion's {champ:.4f} (> {settings.max_jump}) "
                                "on the same test rows: too good to be true, likely leakage")
            else:
                notes.append(f"{metric} {value:.4f} at the ceiling {ceiling}, as the champion "
                             f"({champ:.4f}): an easy problem, not a jump, so not leakage")
            continue
        if evidence is None and single_feature is not None:
            evidence = single_feature()
            measured["max_single_feature_power"] = evidence[1]
        if evidence is not None and evidence[1] >= evidence[2]:
            failures.append(f"candidate {metric} {value:.4f} >= ceiling {ceiling}, and feature "
                            f"{evidence[0]!r} alone reaches {evidence[1]:.4f} (>= {evidence[2]}): "
                            "one feature nearly determines the label, likely leakage")
        elif base is None or value - base[1] > settings.max_jump:
            failures.append(f"candidate {metric} {value:.4f} >= ceiling {ceiling}: too good to be true, "
                            "likely leakage" + (f" (jumps {value - base[1]:+.4f} past the simple baseline "
                                               f"{base[0]!r} {base[1]:.4f})" if base else
                                               " (no simple baseline to compare with)"))
        else:
            notes.append(f"{metric} {value:.4f} at the ceiling {ceiling}, but the simple baseline "
                         f"{base[0]!r} scores {base[1]:.4f} too and no single feature determines the "
                         "label: an easy problem, not leakage")
    if not measured:
        raise ValueError(f"no finite candidate metric among the ceilings {sorted(settings.ceilings)}")
    result = judge(
        "perfect_metric", Family.LEAKAGE, failures=failures, measured=measured,
        threshold={**{f"ceiling_{k}": v for k, v in settings.ceilings.items()}, "max_jump": settings.max_jump},
        hint=PERFECT_METRIC.hint,
        ok_summary="; ".join(notes) if notes else "below every ceiling"
        + (f" ({', '.join(skipped)} not measured)" if skipped else ""),
    )
    if notes and failures:
        result.evidence.extend(notes)
    return result


def _single_feature_evidence(split: Split, cfg: PipelineConfig) -> Callable[[], tuple[str, float, float]]:
    """target_leakage's one-feature measure, computed only when a ceiling needs it."""

    def measure() -> tuple[str, float, float]:
        g = cfg.gates.target_leakage
        test, train = _sample(split.test, g.sample_rows), _sample(split.train, g.sample_rows)
        powers = {f: single_feature_power(train, test, f, cfg) for f in cfg.data.features.all}
        top = max(powers, key=powers.get)
        limit = g.max_single_feature_auc if cfg.task is Task.CLASSIFICATION else g.max_single_feature_r2
        return top, powers[top], limit

    return measure


def judge_perfect_metric(metrics: dict[str, float], baseline_metrics: dict[str, dict[str, float]],
                         champion_metrics: dict[str, float] | None, split: Split, cfg: PipelineConfig,
                         settings: PerfectMetricGate) -> GateResult:
    """check_perfect_metric on the run's values: baselines and champion on the same test rows,
    and the one-feature evidence measured on the split only if a ceiling is reached."""
    return check_perfect_metric(metrics, settings, baselines=baseline_metrics, champion=champion_metrics,
                                single_feature=_single_feature_evidence(split, cfg))


# --------------------------------------------------------------------------- serving availability


def check_serving_availability(frame: pd.DataFrame, cfg: PipelineConfig,
                               settings: ServingAvailabilityGate) -> GateResult:
    """Features the model uses must be served, and known at prediction time.

    Prediction time is the event timestamp (data.timestamp). Whether a value was known then
    cannot be read from the value itself, so the config names, per feature, the column holding
    its as-of time (gates.serving_availability.feature_timestamps, as a feature store records
    it); a row whose value is present but whose as-of time is later than (or missing from) its
    event is a future value. Features without an as-of column are trusted here; one that nearly
    determines the label is still caught by target_leakage.
    """
    features, served = cfg.data.features.all, set(cfg.serving_features)
    failures = [f"feature {f!r} is used by the model but is not in data.serving_features "
                "(not available when serving)" for f in features if f not in served]
    event = pd.to_datetime(frame[cfg.data.timestamp])
    measured: dict[str, float | int] = {"features_not_served": len(failures),
                                        "features_with_as_of": 0}
    for feature, column in settings.feature_timestamps.items():
        if feature not in features:
            continue
        if column not in frame.columns:
            failures.append(f"as-of column {column!r} for feature {feature!r} is missing from the data")
            continue
        measured["features_with_as_of"] += 1
        as_of = pd.to_datetime(frame[column])
        known = frame[feature].notna().to_numpy()
        future = known & (as_of > event).to_numpy()
        unknown = known & as_of.isna().to_numpy()
        share = float((future | unknown).mean())
        measured[f"future_share.{feature}"] = share
        if share > settings.max_future_share:
            line = (f"feature {feature!r}: {int(future.sum())} of {len(frame)} rows ({share:.1%}) "
                    f"have {column} after the event {cfg.data.timestamp}")
            if future.any():
                i = int(np.flatnonzero(future)[0])
                lead = (as_of[future] - event[future]).median()
                line += f" (median {lead} later; e.g. event {event.iloc[i]}, as-of {as_of.iloc[i]})"
            if unknown.any():
                line += f"; {int(unknown.sum())} rows have no as-of time"
            failures.append(line)
    return judge(
        "serving_availability", Family.LEAKAGE, failures=failures, measured=measured,
        threshold={"max_future_share": settings.max_future_share},
        hint=SERVING_AVAILABILITY.hint,
        ok_summary=f"{len(features)} features served; {measured['features_with_as_of']} with "
        "as-of times, none after prediction time",
    )


# --------------------------------------------------------------------------- declarations


TIME_ORDER = Gate(
    name="time_order", family=Family.LEAKAGE, stage="leakage", settings=TimeOrderGate,
    inputs=("split", "cfg"), check=check_time_order,
    cause=Cause(bucket="pipeline", depth=2,
                meaning="the split is not in time order (test rows older than train rows)",
                rules_out="a shuffled or overlapping time split",
                next_check="Check split.strategy and the timestamp column."),
    hint="Split by time (split.strategy: time) so the test rows are newer than every training "
    "row; a shuffled split lets the model learn from the period it is tested on.",
    blocks_when="training rows are not all older than the test rows (minus the gap): a shuffled split",
    faults=("shuffled_split",),
)

ROW_OVERLAP = Gate(
    name="row_overlap", family=Family.LEAKAGE, stage="leakage", settings=RowOverlapGate,
    inputs=("split", "cfg"), check=check_row_overlap,
    cause=Cause(bucket="pipeline", depth=2, meaning="rows are shared between train and test",
                rules_out="duplicated rows across the split",
                next_check="Look for duplicated rows upstream and for entities that straddle the split."),
    hint="Deduplicate upstream (a re-delivered or backfilled record landed in a training "
    "partition) or split by entity (split.entity_aware: true).",
    blocks_when="rows (or, entity-aware, entities) are shared by train and test",
    faults=("train_test_overlap",),
)

TARGET_LEAKAGE = Gate(
    name="target_leakage", family=Family.LEAKAGE, stage="leakage", settings=TargetLeakageGate,
    inputs=("split", "cfg"), check=check_target_leakage,
    cause=Cause(bucket="pipeline", depth=2, meaning="a feature nearly determines the label (target leakage)",
                rules_out="single features that give the label away",
                next_check="Find how the named feature is computed; drop it or allow-list it if legitimate."),
    hint="Find how the feature is computed: a value derived from the label or from events "
    "after it leaks the answer. Drop it, or allow-list it (gates.target_leakage.allow) if "
    "it is known to be legitimately strong.",
    blocks_when="one feature alone nearly predicts the label (one-feature ROC AUC or R² on a "
    "sample); `allow` lists known strong features",
    faults=("target_leak",),
)

SERVING_AVAILABILITY = Gate(
    name="serving_availability", family=Family.LEAKAGE, stage="leakage", settings=ServingAvailabilityGate,
    inputs=("frame", "cfg"), check=check_serving_availability,
    cause=Cause(bucket="pipeline", depth=2,
                meaning="the model uses features not available at prediction time",
                rules_out="features from the future or missing at serving",
                next_check="Compare the feature list with serving_features and the feature timestamps."),
    hint="Train only on features the serving path provides, with the values known at "
    "prediction time (a point-in-time join on the as-of column); a value computed from "
    "later events is not available when the model must predict.",
    blocks_when="the model uses a feature outside `serving_features`, or one whose value is known "
    "only after the event time (`feature_timestamps`)",
    faults=("future_feature", "feature_not_at_serving"),
)

PERFECT_METRIC = Gate(
    name="perfect_metric", family=Family.LEAKAGE, stage="model", settings=PerfectMetricGate,
    inputs=("metrics", "baseline_metrics", "champion_metrics", "split", "cfg"), check=judge_perfect_metric,
    cause=Cause(bucket="model", depth=6, meaning="the metric is suspiciously perfect (likely leakage)",
                rules_out="suspiciously perfect metrics",
                next_check="Look for a leaked feature or test rows seen in training."),
    hint="Look for a feature derived from the label, test rows in train, or a preprocessing "
    "step fitted on all data; a task this easy for the simple baseline (or the champion) too is "
    "not leakage.",
    blocks_when="the candidate's metric reaches a ceiling and jumps past the champion (or, on a first "
    "run, the simple baseline) by more than `max_jump`, or one feature alone nearly determines the label",
)

GATES = [TIME_ORDER, ROW_OVERLAP, TARGET_LEAKAGE, SERVING_AVAILABILITY, PERFECT_METRIC]
