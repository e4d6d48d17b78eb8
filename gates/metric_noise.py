"""How much a metric difference between two models on the same test rows is noise.

A month's test split of a real pipeline holds a few thousand rows; on 1,400 rows the paired
difference of two ROC AUCs moves by about ±0.006 from the rows alone, as much as the champion
gate's default tolerance. So a comparison gate asks two questions: is the difference past the
tolerance, and is it past it beyond the noise of these rows? The noise is a paired bootstrap
(both models scored on the same resampled rows, so their shared difficulty cancels), the
standard tool when no closed form covers every metric (DeLong covers ROC AUC only).

Cost: `resamples` metric evaluations per model on at most `max_rows` rows (a uniform sample of
a larger split; its standard error is scaled back to the full split by sqrt(sample / rows),
as it shrinks for every metric used here). ROC AUC, Brier, MAE and RMSE are computed for all
resamples at once from the draw counts (one sort); other metrics one resample at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gates.config import Task
from gates.evaluation import compute_metrics, rank_auc

RESAMPLES = 200
MAX_ROWS = 20_000


@dataclass(frozen=True)
class PairedNoise:
    """Bootstrap of `candidate − reference` in one metric, on the same rows."""

    metric: str
    difference: float  # on the full test split
    se: float  # bootstrap standard error of the difference
    rows: int
    resamples: int
    sampled_rows: int

    def as_dict(self) -> dict:
        return {"metric": self.metric, "difference": self.difference, "se": self.se, "rows": self.rows,
                "resamples": self.resamples, "sampled_rows": self.sampled_rows}


def _weighted_auc(y: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC AUC of every resample at once; `counts[b, i]` is how often resample b drew row i.
    Rows are sorted by score once and tied scores grouped, so ties count one half, as in `rank_auc`."""
    order = np.argsort(scores, kind="mergesort")
    sorted_scores, positive = scores[order], (y[order] == 1)
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    weights = counts[:, order]
    pos = np.add.reduceat(np.where(positive, weights, 0.0), starts, axis=1)
    neg = np.add.reduceat(np.where(positive, 0.0, weights), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, (pos * (below + 0.5 * neg)).sum(axis=1) / pairs, np.nan)


def _weighted_mean(errors: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return counts @ errors / counts.sum(axis=1)


WEIGHTED = {  # (y, scores, counts) -> the metric of every resample
    "roc_auc": _weighted_auc,
    "brier": lambda y, s, c: _weighted_mean((s - y) ** 2, c),
    "mae": lambda y, s, c: _weighted_mean(np.abs(s - y), c),
    "rmse": lambda y, s, c: np.sqrt(_weighted_mean((s - y) ** 2, c)),
}


def _metric(y: np.ndarray, scores: np.ndarray, task: Task, metric: str) -> float:
    """One metric, cheaply: the bootstrap evaluates it hundreds of times."""
    if metric == "roc_auc":
        return rank_auc(y, scores)
    if metric == "brier":
        return float(np.mean((scores - y) ** 2))
    if metric == "rmse":
        return float(np.sqrt(np.mean((scores - y) ** 2)))
    if metric == "mae":
        return float(np.mean(np.abs(scores - y)))
    return compute_metrics(y, scores, task)[metric]


def paired_noise(y: np.ndarray, candidate: np.ndarray, reference: np.ndarray, task: Task, metric: str,
                 resamples: int = RESAMPLES, max_rows: int = MAX_ROWS, seed: int = 0) -> PairedNoise | None:
    """The bootstrap standard error of metric(candidate) − metric(reference); None if undefined
    (non-finite scores, too few rows, a metric that cannot be computed on the rows)."""
    y, candidate, reference = np.asarray(y), np.asarray(candidate, float), np.asarray(reference, float)
    n = len(y)
    if n < 20 or len(candidate) != n or len(reference) != n:
        return None
    if not (np.all(np.isfinite(candidate)) and np.all(np.isfinite(reference))):
        return None
    difference = _metric(y, candidate, task, metric) - _metric(y, reference, task, metric)
    if not math.isfinite(difference):
        return None
    rng = np.random.default_rng(seed)
    rows = rng.choice(n, size=max_rows, replace=False) if n > max_rows else np.arange(n)
    ys, cs, rs = y[rows], candidate[rows], reference[rows]
    m = len(rows)
    picks = [rng.integers(0, m, size=m) for _ in range(resamples)]
    if metric in WEIGHTED:  # every resample at once, from how often each row was drawn
        counts = np.stack([np.bincount(pick, minlength=m) for pick in picks]).astype(np.float64)
        both = WEIGHTED[metric](ys, cs, counts) - WEIGHTED[metric](ys, rs, counts)
        diffs = both[np.isfinite(both)].tolist()
    else:
        diffs = []
        for pick in picks:
            d = _metric(ys[pick], cs[pick], task, metric) - _metric(ys[pick], rs[pick], task, metric)
            if math.isfinite(d):
                diffs.append(d)
    if len(diffs) < resamples // 2:
        return None
    se = float(np.std(diffs, ddof=1)) * math.sqrt(m / n)
    return PairedNoise(metric=metric, difference=float(difference), se=se, rows=n, resamples=len(diffs),
                       sampled_rows=m)


def noise_for_run(y: np.ndarray, scores: np.ndarray | None, references: dict[str, np.ndarray | None],
                  task: Task, metric: str) -> dict[str, dict]:
    """Paired noise of the candidate against each named reference (champion, baselines)."""
    out: dict[str, dict] = {}
    if scores is None:
        return out
    for name, ref in references.items():
        if ref is None:
            continue
        found = paired_noise(y, scores, ref, task, metric)
        if found is not None:
            out[name] = found.as_dict()
    return out
