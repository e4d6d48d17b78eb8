"""Fault sizes relative to the data's own natural variation, so the catalogue holds on any date.

A fault sized in absolute terms ("double a column for 12 days", "flip 35 % of labels for 14 days")
is large in one season, window length or dataset and lost in the noise of another: the catalogue
then passes on the test's fixed date and fails on today's. Here a fault measures what the clean
data does on its own (the PSI of each week against the window, the range of the weekly positive
rate), then picks the smallest size from a short ladder that clears both that natural variation
and the gate's block threshold by a stated margin, and records the size it reached.

Model faults are sized the same way on the run's own split: the fault fits the candidate as the
run will and measures its shortfall against the paired-bootstrap noise of the test rows.

The columns come from the config (features, target), never from the demo's names.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gates.drift import psi

if TYPE_CHECKING:
    from gates.faults import FaultTarget

MARGIN = 3.0  # a sized fault reaches at least this multiple of max(natural variation, threshold)
SHARES = (0.5, 0.75, 1.0)  # newest share of the window a sized fault hits, smallest first


@dataclass
class FaultSize:
    """What a sized fault reached, against the data's natural variation and the gate's threshold."""

    measure: str
    achieved: float
    natural: float
    threshold: float
    affected: str

    @property
    def margin(self) -> float:
        floor = max(self.natural, self.threshold)
        return self.achieved / floor if floor > 0 else math.inf

    def describe(self) -> str:
        return (f"{self.measure} {self.achieved:.3g} ({self.affected}); natural {self.natural:.3g}, "
                f"block {self.threshold:.3g}: margin x{self.margin:.1f}")


def window_frames(target: FaultTarget) -> dict[dt.date, list[tuple]]:
    """Each window day's files with their frames: read once, rewritten by the sized faults."""
    return {day: [(path, target.read(path)) for path in target.files(day)] for day in target.window()}


def weekly_blocks(days: list[dt.date], size: int = 7) -> list[list[dt.date]]:
    blocks = [days[i:i + size] for i in range(0, len(days), size)]
    return [b for b in blocks if len(b) == size] or [days]


def _decile_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)


def numeric_column(target: FaultTarget, frame: pd.DataFrame) -> str:
    """The configured numeric feature with the most distinct values (a continuous one)."""
    numeric = [c for c in target.config["data"]["features"].get("numeric", []) if c in frame]
    if not numeric:
        raise ValueError("this fault needs a numeric feature in data.features.numeric")
    return max(numeric, key=lambda c: (frame[c].nunique(), -numeric.index(c)))


def covariate_shift(target: FaultTarget, bins: int = 10) -> FaultSize:
    """Move the newest share of the window of one numeric feature into the upper half of its own
    clean distribution: every value stays one the feature already takes (the contract passes),
    the distribution does not. The share grows until the window's PSI clears MARGIN times the
    larger of the natural weekly PSI and the drift gate's psi_block."""
    frames = window_frames(target)
    days = [d for d in frames if frames[d]]
    clean = pd.concat([f for d in days for _, f in frames[d]], ignore_index=True)
    column = numeric_column(target, clean)
    target.columns.append(column)
    values = pd.to_numeric(clean[column], errors="coerce").dropna().to_numpy(dtype="float64")
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    reference = _decile_counts(values, edges)
    natural = 0.0
    for block in weekly_blocks(days):
        week = pd.concat([f[column] for d in block for _, f in frames[d]])
        week = pd.to_numeric(week, errors="coerce").dropna().to_numpy(dtype="float64")
        natural = max(natural, psi(reference, _decile_counts(week, edges)))
    block = float(target.config.get("gates", {}).get("drift", {}).get("psi_block", 0.25))
    upper = np.sort(values[values >= np.quantile(values, 0.5)])
    rng = np.random.default_rng(target.seed + 11)
    for share in SHARES:
        hit = days[-max(1, math.ceil(share * len(days))):]
        shifted = {}
        for d in hit:
            for path, frame in frames[d]:
                mask = frame[column].notna().to_numpy()
                new = frame[column].to_numpy(dtype="float64", na_value=np.nan, copy=True)
                new[mask] = rng.choice(upper, size=int(mask.sum()))
                shifted[path] = frame.assign(**{column: pd.Series(new, index=frame.index).astype(frame[column].dtype)})
        current = pd.concat([shifted.get(p, f)[column] for d in days for p, f in frames[d]])
        achieved = psi(reference, _decile_counts(pd.to_numeric(current).dropna().to_numpy(dtype="float64"), edges))
        if achieved >= MARGIN * max(natural, block) or share == SHARES[-1]:
            break
    for path, frame in shifted.items():
        target.write(frame, path)
    return FaultSize(f"PSI of {column!r}", achieved, natural, block,
                     f"newest {len(hit)} of {len(days)} days moved into the upper half")


def label_rate_shift(target: FaultTarget) -> FaultSize:
    """Relabel negatives as positives in the newest share of the window (a changed labelling
    job). The window's positive-rate change reaches MARGIN times the larger of the seasonal range
    of the weekly positive rate and the label_shift gate's block threshold (capped at 95 % of
    the negatives relabelled)."""
    label = target.config["data"]["target"]
    frames = window_frames(target)
    days = [d for d in frames if frames[d]]
    clean = pd.concat([f[label] for d in days for _, f in frames[d]], ignore_index=True)
    positive = clean.max()
    rate = float((clean == positive).mean())
    weekly = [float(pd.concat([f[label] for d in b for _, f in frames[d]]).eq(positive).mean())
              for b in weekly_blocks(days)]
    natural = max(weekly) - min(weekly)
    block = float(target.config.get("gates", {}).get("label_shift", {}).get("block", 0.08))
    wanted = MARGIN * max(natural, block)
    for share in SHARES:
        hit = days[-max(1, math.ceil(share * len(days))):]
        rows_hit = sum(len(f) for d in hit for _, f in frames[d])
        negatives_hit = sum(int((f[label] != positive).sum()) for d in hit for _, f in frames[d])
        flip = min(0.95, wanted * len(clean) / max(1, negatives_hit))
        if flip < 0.95 or share == SHARES[-1]:
            break
    rng = np.random.default_rng(target.seed + 1)
    flipped = 0
    for d in hit:
        for path, frame in frames[d]:
            turn = (frame[label] != positive).to_numpy() & (rng.random(len(frame)) < flip)
            flipped += int(turn.sum())
            new = frame[label].copy()
            new[turn] = positive
            target.write(frame.assign(**{label: new}), path)
    achieved = flipped / len(clean)
    return FaultSize(f"positive rate of {label!r} change (from {rate:.3f})", achieved, natural, block,
                     f"{flip:.0%} of negatives relabelled in the newest {len(hit)} of {len(days)} days, "
                     f"{rows_hit} rows")


# --------------------------------------------------------------------------- model faults
# A model fault is sized on the run's own split: the fault fits the candidate the way the run will
# (same config, data, split and seed, so the same scores) and measures it against the natural
# variation of the comparison, the paired-bootstrap noise of the test rows (gates.metric_noise).

# Smoke-test settings, weakest breakage first: the shipped max_iter=2, learning_rate=1.0, then
# fewer and smaller trees. A setting that predicts a single class is skipped (predictions and
# class_never_predicted own that).
SMOKE_TEST_PARAMS: tuple[dict[str, float | int], ...] = (
    {"max_iter": 2, "learning_rate": 1.0},
    {"max_iter": 1, "learning_rate": 1.0},
    {"max_iter": 3, "learning_rate": 1.0, "max_depth": 1},
    {"max_iter": 2, "learning_rate": 1.0, "max_depth": 1},
    {"max_iter": 1, "learning_rate": 1.0, "max_leaf_nodes": 3},
    {"max_iter": 1, "learning_rate": 1.0, "max_leaf_nodes": 2},  # one stump: births' strong baseline
    # one stump on coarse histograms (the speed test's max_bins too): it splits only near a median;
    # births in spring, where a stump on the weekday still beats the logistic baseline
    {"max_iter": 1, "learning_rate": 1.0, "max_leaf_nodes": 2, "max_bins": 2},
)


def _run_split(target: FaultTarget):
    """The config, split and test labels the run will see (same data, run date and seed)."""
    import copy

    from gates.config import parse_config
    from gates.ingest import ingest
    from gates.split import split_data

    cfg = parse_config(copy.deepcopy(target.config))
    split = split_data(ingest(cfg, target.run_date).combined(), cfg, target.run_date)
    return cfg, split, split.test[cfg.data.target].to_numpy()


def _fit_with(target: FaultTarget, split, params: dict[str, float | int]):
    """Metrics and test scores of the candidate fitted with `params` over the config's own."""
    import copy

    from gates.config import parse_config
    from gates.evaluation import evaluate
    from gates.training import build_pipeline, fit

    raw = copy.deepcopy(target.config)
    raw.setdefault("model", {})["params"] = {**raw["model"].get("params", {}), **params}
    trial = parse_config(raw)
    return evaluate(fit(build_pipeline(trial), split.train, trial), split.test, trial)


def _one_class(cfg, scores: np.ndarray) -> bool:
    from gates.config import Task

    return cfg.task is Task.CLASSIFICATION and len(np.unique(scores >= 0.5)) < 2


def below_baseline_params(target: FaultTarget) -> tuple[dict[str, float | int], FaultSize]:
    """The first smoke-test setting whose candidate falls below the baseline gate's bar (the simple
    baseline + min_improvement) by MARGIN times the larger of the comparison's noise (noise_z
    paired-bootstrap standard errors) and min_improvement; the last one if none does."""
    from gates.evaluation import evaluate
    from gates.metric_noise import paired_noise
    from gates.training import build_baselines, fit

    cfg, split, y = _run_split(target)
    metric, better = cfg.model.primary_metric, cfg.greater_is_better
    settings = cfg.gates.baseline
    noise_z = float(getattr(settings, "noise_z", 0.0))
    baselines = build_baselines(cfg)
    name = "simple" if "simple" in baselines else "dummy"
    reference_metrics, reference_scores = evaluate(fit(baselines[name], split.train, cfg), split.test, cfg)
    reference = reference_metrics[metric]
    chosen: tuple[dict, FaultSize] | None = None
    for params in SMOKE_TEST_PARAMS:
        metrics, scores = _fit_with(target, split, params)
        if _one_class(cfg, scores):
            continue
        value = metrics[metric]
        gain = value - reference if better else reference - value
        noise = paired_noise(y, scores, reference_scores, cfg.task, metric)
        natural = noise_z * noise.se if noise is not None else 0.0
        size = FaultSize(f"{metric} shortfall below baseline {name!r} + min_improvement",
                         settings.min_improvement - gain, natural, settings.min_improvement,
                         f"{', '.join(f'{k}={v}' for k, v in params.items())}: {metric} {value:.4f} vs "
                         f"{reference:.4f}; natural = {noise_z:g} paired-bootstrap se")
        chosen = (params, size)
        if size.margin >= MARGIN:
            break
    if chosen is None:
        raise ValueError("every smoke-test setting predicts a single class on these rows")
    return chosen


# Debugging settings left in the config, weakest breakage first: fewer boosting iterations, a
# faster rate over fewer, smaller trees, then coarse histograms left from a speed test (max_bins).
# Measured on the demo (summer and winter 2026): max_iter=10 and the second setting stay below 2x
# the champion gate's bar, max_bins=4 about 2x, max_bins=2 3.3-4.2x; max_iter <= 5 at the
# configured learning rate predicts no positive at all (class_never_predicted owns that).
DEBUG_PARAMS: tuple[dict[str, float | int], ...] = (
    {"max_iter": 10},
    {"max_iter": 5, "learning_rate": 0.5, "max_leaf_nodes": 3},
    {"max_bins": 4},
    {"max_bins": 3},
    {"max_bins": 2},
)


def _champion_scores(target: FaultTarget, cfg, test: pd.DataFrame) -> tuple[dict, np.ndarray, str] | None:
    """The registered champion's metrics and scores on the run's test rows, loaded only from a copy
    verified against its promotion checksums (as the run loads it); None when there is none."""
    import tempfile
    from pathlib import Path

    import mlflow

    from gates import tracking
    from gates.evaluation import evaluate
    from gates.model_integrity import load_verified

    champion = tracking.champion(cfg)
    if champion is None:
        return None
    uri = tracking.tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)  # models:/ URIs resolve through the global registry URI
    mlflow.set_registry_uri(uri)
    with tempfile.TemporaryDirectory(prefix="gates-fault-champion-") as folder:
        model = load_verified(cfg, champion.version, Path(folder))
    metrics, scores = evaluate(model, test, cfg)
    return metrics, scores, f"champion v{champion.version}"


def regressed_params(target: FaultTarget) -> tuple[dict[str, float | int], FaultSize]:
    """The first debugging setting whose loss against the champion, on the run's test rows, reaches
    MARGIN times the champion gate's bar (max_regression + noise_z paired-bootstrap standard
    errors) while it still predicts both classes; the strongest two-class one if none does.

    The champion is the registered one when there is one (the scenarios promote it first);
    otherwise a clean candidate of the same config stands in, and the size says so. A setting
    that also falls below the baseline gate's bar is stated: the champion stays the named cause
    only through the diagnosis (a parameter change with a uniform drop), see the README."""
    from gates.metric_noise import paired_noise

    cfg, split, y = _run_split(target)
    metric, better = cfg.model.primary_metric, cfg.greater_is_better
    settings = cfg.gates.champion
    noise_z = float(getattr(settings, "noise_z", 0.0))
    found = None
    try:
        found = _champion_scores(target, cfg, split.test)
    except Exception as exc:  # noqa: BLE001 - sizing falls back to the stand-in, and says why
        unavailable = f"no champion loaded ({type(exc).__name__}: {exc})"
    else:
        unavailable = "no champion registered"
    if found is None:
        reference_metrics, reference_scores = _fit_with(target, split, {})
        who = f"a clean candidate of the same config (stand-in: {unavailable})"
    else:
        reference_metrics, reference_scores, who = found
    reference = reference_metrics[metric]
    baseline_bar = _baseline_bar(cfg, split, y)
    chosen: tuple[dict, FaultSize] | None = None
    for params in DEBUG_PARAMS:
        metrics, scores = _fit_with(target, split, params)
        if _one_class(cfg, scores):
            continue
        value = metrics[metric]
        loss = reference - value if better else value - reference
        noise = paired_noise(y, scores, reference_scores, cfg.task, metric)
        natural = noise_z * noise.se if noise is not None else 0.0
        below = baseline_bar(value, scores)
        size = FaultSize(f"{metric} loss against the champion", loss, natural, settings.max_regression + natural,
                         f"{', '.join(f'{k}={v}' for k, v in params.items())}: {metric} {value:.4f} vs "
                         f"{reference:.4f} of {who}; natural = {noise_z:g} paired-bootstrap se, block = "
                         f"max_regression {settings.max_regression:g} + natural"
                         + (f"; also below the baseline bar ({below})" if below else ""))
        chosen = (params, size)
        if size.margin >= MARGIN:
            break
    if chosen is None:
        raise ValueError("every debugging setting predicts a single class on these rows")
    return chosen


def _baseline_bar(cfg, split, y: np.ndarray):
    """A check of the baseline gate's bar (gain >= min_improvement − noise_z se against every
    baseline): returns what a candidate falls short of, '' when it clears them all."""
    from gates.evaluation import evaluate
    from gates.metric_noise import paired_noise
    from gates.training import build_baselines, fit

    metric, better = cfg.model.primary_metric, cfg.greater_is_better
    settings = cfg.gates.baseline
    noise_z = float(getattr(settings, "noise_z", 0.0))
    fitted = {name: evaluate(fit(model, split.train, cfg), split.test, cfg)
              for name, model in build_baselines(cfg).items()}

    def short_of(value: float, scores: np.ndarray) -> str:
        out = []
        for name, (metrics, reference_scores) in fitted.items():
            gain = value - metrics[metric] if better else metrics[metric] - value
            noise = paired_noise(y, scores, reference_scores, cfg.task, metric)
            bar = settings.min_improvement - (noise_z * noise.se if noise is not None else 0.0)
            if gain < bar:
                out.append(f"gain {gain:+.4f} over {name!r} < {bar:.4f}")
        return "; ".join(out)

    return short_of
