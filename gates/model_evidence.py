"""Model debugging evidence: where and how the candidate fails, judged against the champion.

Pure computations on the test rows both models were scored on (no MLflow, no Prefect), so the
gates, the report and the bench call the same functions. Everything is vectorised; what does not
need the full test set (segment search, permutation importance) runs on a seeded sample whose
size is returned with the result.

- failure set: the candidate's most consequential errors, with the champion's score beside them;
- weak segments: single features and pairs (binned numerics, top categories) searched for the
  segments where the candidate is worst or lost most to the champion;
- confidence: reliability by confidence bucket, Brier and expected calibration error (ECE);
- prediction distribution: PSI of the scores against the champion's on the same rows;
- reliance shift: permutation importance of both models on the same sample.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from gates.config import Task

POSITIVE_THRESHOLD = 0.5  # as in gates.evaluation: a score >= 0.5 is a positive prediction
EPS = 1e-6


def row_loss(y: np.ndarray, scores: np.ndarray, task: Task) -> np.ndarray:
    """A per-row loss that adds up over segments: Brier (p − y)² or the absolute residual."""
    y = np.asarray(y, dtype=float)
    scores = np.asarray(scores, dtype=float)
    return (scores - y) ** 2 if task is Task.CLASSIFICATION else np.abs(scores - y)


def sample_rows(n: int, max_rows: int, seed: int = 0) -> np.ndarray:
    """Sorted positions of a seeded sample of at most `max_rows` of `n` rows (all when n <= max)."""
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


# --------------------------------------------------------------------------- failure set


def failure_set(test: pd.DataFrame, y: np.ndarray, scores: np.ndarray, champion_scores: np.ndarray | None,
                features: list[str], task: Task, n: int = 300) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The `n` most consequential errors of the candidate, and a summary of them.

    Classification: wrong predictions ranked by the candidate's confidence in the wrong class;
    regression: the largest absolute residuals. `champion_right` marks rows the champion got
    right (right class; or a residual at most half the candidate's) that the candidate got wrong.
    """
    y = np.asarray(y, dtype=float)
    scores = np.asarray(scores, dtype=float)
    if task is Task.CLASSIFICATION:
        wrong = (scores >= POSITIVE_THRESHOLD).astype(float) != y
        consequence = np.where(wrong, np.abs(scores - y), -np.inf)
    else:
        consequence = np.abs(scores - y)
    consequence = np.where(np.isfinite(consequence), consequence, -np.inf)
    k = int(min(n, np.isfinite(consequence).sum()))
    top = np.argpartition(-consequence, k - 1)[:k] if k else np.array([], dtype=int)
    top = top[np.argsort(-consequence[top], kind="stable")]
    frame = test.iloc[top][features].reset_index(drop=True)
    frame.insert(0, "test_row", top)
    frame["label"] = y[top]
    frame["candidate_score"] = scores[top]
    frame["consequence"] = consequence[top]
    summary: dict[str, Any] = {"rows": k, "test_rows": len(y), "requested": n,
                               "candidate_errors": int(np.isfinite(consequence).sum()
                                                       if task is Task.CLASSIFICATION else len(y))}
    if champion_scores is not None:
        champ = np.asarray(champion_scores, dtype=float)[top]
        frame["champion_score"] = champ
        if task is Task.CLASSIFICATION:
            right = (champ >= POSITIVE_THRESHOLD).astype(float) == y[top]
        else:
            right = np.abs(champ - y[top]) <= 0.5 * np.abs(scores[top] - y[top])
        frame["champion_right"] = right
        summary.update(champion_right=int(right.sum()),
                       champion_right_share=float(right.mean()) if k else 0.0,
                       # both models confidently wrong on the same rows points at the labels
                       both_wrong_share=float((~right).mean()) if k else 0.0,
                       champion_mean_consequence=float(np.abs(champ - y[top]).mean()) if k else 0.0)
    summary["mean_consequence"] = float(frame["consequence"].mean()) if k else 0.0
    if task is Task.CLASSIFICATION and k:
        summary["false_positives"] = int((y[top] == 0).sum())
        summary["false_negatives"] = int((y[top] == 1).sum())
    return frame, summary


# --------------------------------------------------------------------------- weak segments


def segment_codes(column: pd.Series, bins: int, top_categories: int) -> tuple[np.ndarray, list[str]]:
    """Integer codes and labels: numeric columns in quantile bins, categories by their top values.

    Missing values get a segment of their own; rarer categories are grouped as 'other'.
    """
    name = column.name
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column) \
            and column.nunique(dropna=True) > bins:
        values = column.to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if len(finite) else np.array([])
        codes = np.searchsorted(edges, values, side="right")
        cuts = [f"{e:.4g}" for e in edges]
        labels = ([f"{name} < {cuts[0]}"] + [f"{a} <= {name} < {b}" for a, b in zip(cuts, cuts[1:])]
                  + [f"{name} >= {cuts[-1]}"]) if len(cuts) else [f"{name} (all)"]
        codes = np.where(np.isfinite(values), codes, len(labels))
        return codes.astype(np.int64), labels + [f"{name} is missing"]
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    counts = np.bincount(codes, minlength=len(uniques))
    order = np.argsort(-counts, kind="stable")[:top_categories]
    remap = np.full(len(uniques), len(order), dtype=np.int64)
    remap[order] = np.arange(len(order))
    labels = [f"{name}={uniques[i]}" for i in order] + [f"{name}=other"]
    return remap[codes], labels


@dataclass
class SegmentSearch:
    """The searched segments, the judged ones first, and how they were found."""

    segments: pd.DataFrame  # one row per segment with support, losses, excess
    overall: dict[str, float]
    sample_rows: int
    searched: int
    uniform: bool  # the candidate lost about equally everywhere (no segment stands out)


def weak_segments(test: pd.DataFrame, y: np.ndarray, scores: np.ndarray, champion_scores: np.ndarray | None,
                  features: list[str], task: Task, *, min_support: int = 200, bins: int = 5,
                  top_categories: int = 8, pairs: bool = True, max_rows: int = 200_000,
                  uniform_excess: float = 0.5, seed: int = 0) -> SegmentSearch:
    """Search single features and pairs for segments where the candidate is worst or lost most.

    A segment's loss is the mean per-row loss (`row_loss`). `lift` = its candidate loss over the
    candidate's overall loss (worst segments); `excess` = how much more the candidate lost to the
    champion in the segment than overall, in units of the champion's overall loss. A uniform drop
    (a worse model everywhere) is then not a weak segment, and a segment that lost far more than
    the rest is; `uniform` says the former happened (no segment's excess reaches
    `uniform_excess` while >= 80 % of single-feature segments got worse).
    """
    rows = sample_rows(len(y), max_rows, seed)
    frame = test.iloc[rows]
    cand = row_loss(np.asarray(y)[rows], np.asarray(scores)[rows], task)
    champ = (row_loss(np.asarray(y)[rows], np.asarray(champion_scores)[rows], task)
             if champion_scores is not None else None)
    coded = {f: segment_codes(frame[f], bins, top_categories) for f in features if f in frame.columns}
    overall_c = float(cand.mean()) if len(cand) else float("nan")
    overall_h = float(champ.mean()) if champ is not None and len(champ) else float("nan")
    overall_rel = (overall_c - overall_h) / max(overall_h, EPS) if champ is not None else float("nan")
    records = []
    members: list[tuple[tuple[str, ...], int]] = []  # per record: its features and its rows' code

    def add(codes: np.ndarray, size: int, label_of, depth: int, names: tuple[str, ...]) -> None:
        support = np.bincount(codes, minlength=size)
        keep = np.flatnonzero(support >= min_support)
        if not len(keep):
            return
        c = np.bincount(codes, weights=cand, minlength=size)[keep] / support[keep]
        h = (np.bincount(codes, weights=champ, minlength=size)[keep] / support[keep]
             if champ is not None else np.full(len(keep), np.nan))
        for i, code in enumerate(keep):
            records.append((label_of(int(code)), depth, int(support[code]), c[i], h[i]))
            members.append((names, int(code)))

    for f, (codes, labels) in coded.items():
        add(codes, len(labels), lambda code, labels=labels: labels[code], 1, (f,))
    if pairs:
        for (f1, (c1, l1)), (f2, (c2, l2)) in itertools.combinations(coded.items(), 2):
            width = len(l2)
            add(c1 * width + c2, len(l1) * width,
                lambda code, l1=l1, l2=l2, width=width: f"{l1[code // width]} & {l2[code % width]}", 2,
                (f1, f2))
    table = pd.DataFrame(records, columns=["segment", "features", "support", "candidate_loss", "champion_loss"])
    table["lift"] = table["candidate_loss"] / max(overall_c, EPS)
    table["relative_increase"] = (table["candidate_loss"] - table["champion_loss"]) / np.maximum(
        table["champion_loss"], EPS)
    overall_diff = overall_c - overall_h
    table["excess"] = ((table["candidate_loss"] - table["champion_loss"]) - overall_diff) / max(overall_h, EPS)
    by = "excess" if champ is not None else "lift"
    table = table.sort_values(by, ascending=False, kind="stable")
    outside = {}
    if champ is not None and len(table):
        names, code = members[table.index[0]]
        outside = _outside_top(_codes_of(coded, names), code, cand, champ)
    table = table.reset_index(drop=True)
    single = table[table["features"] == 1]
    uniform = bool(champ is not None and len(single) and overall_rel > 0
                   and (single["relative_increase"] > 0).mean() >= 0.8
                   and table["excess"].iloc[0] < uniform_excess)
    return SegmentSearch(segments=table, overall={"candidate_loss": overall_c, "champion_loss": overall_h,
                                                  "relative_increase": overall_rel, **outside},
                         sample_rows=len(rows), searched=len(table), uniform=uniform)


def _codes_of(coded: dict[str, tuple[np.ndarray, list[str]]], names: tuple[str, ...]) -> np.ndarray:
    """The segment codes of one feature or pair, as the search numbered them."""
    if len(names) == 1:
        return coded[names[0]][0]
    (c1, _), (c2, l2) = coded[names[0]], coded[names[1]]
    return c1 * len(l2) + c2


def _outside_top(codes: np.ndarray, code: int, cand: np.ndarray, champ: np.ndarray) -> dict[str, float]:
    """The candidate against the champion on the rows outside the top segment: a drop that stays
    there is not confined to the segment (a worse model with a worst part, not one broken part)."""
    rest = codes != code
    if not rest.any():
        return {}
    c, h = float(cand[rest].mean()), float(champ[rest].mean())
    return {"outside_top_rows": int(rest.sum()), "outside_top_relative_increase": (c - h) / max(h, EPS)}


# --------------------------------------------------------------------------- confidence


def reliability(y: np.ndarray, scores: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """Reliability table (scikit-learn's calibration_curve, uniform buckets), Brier and ECE.

    ECE is the row-weighted mean gap between the observed positive rate and the mean predicted
    probability per bucket; calibration_curve drops empty buckets, so the weights are counted on
    the same bucket edges.
    """
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)
    observed, predicted = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bucket = np.searchsorted(edges[1:-1], p, side="right")
    counts = np.bincount(bucket, minlength=n_bins)
    counts = counts[counts > 0]
    gaps = np.abs(observed - predicted)
    ece = float(np.sum(gaps * counts) / max(counts.sum(), 1))
    slope, intercept = calibration_slope(y, p)
    return {"brier": float(brier_score_loss(y, p)), "ece": ece, "max_gap": float(gaps.max()) if len(gaps) else 0.0,
            "slope": slope, "intercept": intercept, "mean_predicted": float(p.mean()) if len(p) else float("nan"),
            "observed_rate": float(y.mean()) if len(y) else float("nan"),
            "table": [{"predicted": float(a), "observed": float(b), "rows": int(c)}
                      for a, b, c in zip(predicted, observed, counts)]}


def calibration_slope(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Cox's calibration slope and intercept: logit P(y) = a + b * logit(p), fitted by logistic
    regression. b = 1 keeps the confidence's shape (a moved base rate shifts a alone); b far from
    1 means probabilities squashed toward 0.5 (b > 1) or pushed to the extremes (b < 1)."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y, dtype=int)
    if len(np.unique(y)) < 2:
        return float("nan"), float("nan")
    q = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    logit = np.log(q / (1 - q)).reshape(-1, 1)
    if not np.ptp(logit):
        return float("nan"), float("nan")
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(logit, y)
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])


# --------------------------------------------------------------------------- prediction distribution


def score_histogram(scores: np.ndarray, task: Task, edges: np.ndarray | None = None, bins: int = 10) -> dict[str, Any]:
    """Bin counts of the scores: fixed [0, 1] deciles for classifiers, quantile edges otherwise.

    Stored with every run, so a later candidate compares with the champion's own evaluation.
    """
    s = np.asarray(scores, dtype=float)
    s = s[np.isfinite(s)]
    if edges is None:
        edges = (np.linspace(0, 1, bins + 1)[1:-1] if task is Task.CLASSIFICATION
                 else np.unique(np.quantile(s, np.linspace(0, 1, bins + 1)[1:-1])) if len(s) else np.array([]))
    counts = np.bincount(np.searchsorted(edges, s, side="right"), minlength=len(edges) + 1)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def psi(reference_counts: list[int] | np.ndarray, current_counts: list[int] | np.ndarray) -> float:
    """Population stability index of two histograms on the same bins (shares floored at 1e-4)."""
    ref = np.asarray(reference_counts, dtype=float)
    cur = np.asarray(current_counts, dtype=float)
    if ref.sum() == 0 or cur.sum() == 0:
        return float("nan")
    ref = np.maximum(ref / ref.sum(), 1e-4)
    cur = np.maximum(cur / cur.sum(), 1e-4)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def prediction_distribution(scores: np.ndarray, champion_scores: np.ndarray | None, task: Task,
                            champion_reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """The candidate's scores against the champion's on the same rows and its own evaluation.

    Classification also counts the predicted classes: a class never predicted is the failure
    the positive-share check missed (a model that predicts no positives at all).
    """
    s = np.asarray(scores, dtype=float)
    out: dict[str, Any] = {}
    base = champion_scores if champion_scores is not None else s
    reference = score_histogram(base, task)
    edges = np.asarray(reference["edges"])
    out["candidate"] = score_histogram(s, task, edges)
    if task is Task.CLASSIFICATION:
        positives = int((s >= POSITIVE_THRESHOLD).sum())
        out["predicted_classes"] = {"0": int(len(s) - positives), "1": positives}
        out["never_predicted"] = [c for c, n in out["predicted_classes"].items() if n == 0]
    if champion_scores is not None:
        out["champion"] = reference
        out["psi_vs_champion"] = psi(reference["counts"], out["candidate"]["counts"])
    if champion_reference and champion_reference.get("counts"):
        ref_edges = np.asarray(champion_reference["edges"], dtype=float)
        out["psi_vs_champion_evaluation"] = psi(champion_reference["counts"],
                                                score_histogram(s, task, ref_edges)["counts"])
    return out


# --------------------------------------------------------------------------- reliance shift


PERMUTATION_BATCH_ROWS = 250_000  # rows per predict call: shuffled copies are scored in batches


def permutation_reliance(model: Any, X: pd.DataFrame, y: np.ndarray, task: Task, metric: str,
                         greater_is_better: bool, *, n_repeats: int = 3, seed: int = 0) -> dict[str, float]:
    """Mean permutation importance per raw input column, on the rows given.

    The definition is scikit-learn's `permutation_importance` (the metric's loss when one column is
    shuffled, averaged over repeats), but every shuffled copy is scored in a few large predict calls
    instead of one call per column and repeat: a pipeline's per-call cost (column checks, each
    transformer, thread start-up) is paid a handful of times, not features x repeats times, which
    on a loaded machine was 56 s of a 60 s evidence stage at 1.1M rows.
    """
    from gates.evaluation import compute_metric, predict_scores

    def score(values: np.ndarray) -> float:
        return compute_metric(y, values, metric)

    rng = np.random.RandomState(seed)
    n = len(X)
    baseline = score(predict_scores(model, X, task))
    losses: dict[str, list[float]] = {c: [] for c in X.columns}
    batch: list[tuple[str, pd.DataFrame]] = []

    def flush() -> None:
        scores = predict_scores(model, pd.concat([f for _, f in batch], ignore_index=True), task)
        for i, (column, _) in enumerate(batch):
            permuted = score(scores[i * n:(i + 1) * n])
            losses[column].append(baseline - permuted if greater_is_better else permuted - baseline)
        batch.clear()

    for column in X.columns:
        values = X[column]
        for _ in range(n_repeats):
            shuffled = X.copy()
            shuffled[column] = values.iloc[rng.permutation(n)].set_axis(X.index)  # keeps the dtype
            batch.append((column, shuffled))
            if len(batch) * n >= PERMUTATION_BATCH_ROWS:
                flush()
    if batch:
        flush()
    return {c: float(np.mean(v)) for c, v in losses.items()}


def reliance_shift(candidate: dict[str, float], champion: dict[str, float] | None) -> pd.DataFrame:
    """Importance shares of both models side by side (negative importances count as zero)."""
    def shares(imp: dict[str, float]) -> dict[str, float]:
        pos = {k: max(v, 0.0) for k, v in imp.items()}
        total = sum(pos.values())
        return {k: (v / total if total > 0 else 0.0) for k, v in pos.items()}

    cand = shares(candidate)
    champ = shares(champion) if champion is not None else {}
    names = list(dict.fromkeys([*candidate, *(champion or {})]))
    table = pd.DataFrame({
        "feature": names,
        "candidate_importance": [candidate.get(n, 0.0) for n in names],
        "champion_importance": [(champion or {}).get(n, math.nan) for n in names],
        "candidate_share": [cand.get(n, 0.0) for n in names],
        "champion_share": [champ.get(n, 0.0) if champion is not None else math.nan for n in names],
    })
    table["share_change"] = table["candidate_share"] - table["champion_share"]
    return table.sort_values("candidate_share", ascending=False, kind="stable").reset_index(drop=True)
