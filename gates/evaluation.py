"""Metrics of a fitted model on a split: the numbers the model gates judge."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from gates.config import PipelineConfig, Task


def predict_scores(model, X: pd.DataFrame, task: Task) -> np.ndarray:
    """Positive-class probability for classifiers, the prediction for regressors."""
    if task is Task.CLASSIFICATION:
        return np.asarray(model.predict_proba(X))[:, 1]
    return np.asarray(model.predict(X), dtype=float)


def compute_metrics(y_true: np.ndarray, scores: np.ndarray, task: Task) -> dict[str, float]:
    y_true = np.asarray(y_true)
    if task is Task.CLASSIFICATION:
        if not np.all(np.isfinite(scores)):
            return {m: float("nan") for m in ("roc_auc", "f1", "accuracy", "log_loss", "brier")}
        labels = (scores >= 0.5).astype(int)
        both = len(np.unique(y_true)) == 2
        return {
            "roc_auc": float(skm.roc_auc_score(y_true, scores)) if both else float("nan"),
            "f1": float(skm.f1_score(y_true, labels, zero_division=0)),
            "accuracy": float(skm.accuracy_score(y_true, labels)),
            "log_loss": float(skm.log_loss(y_true, np.clip(scores, 1e-15, 1 - 1e-15), labels=[0, 1])),
            "brier": float(skm.brier_score_loss(y_true, scores)),
        }
    if not np.all(np.isfinite(scores)):
        return {m: float("nan") for m in ("rmse", "mae", "r2")}
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, scores))),
        "mae": float(skm.mean_absolute_error(y_true, scores)),
        "r2": float(skm.r2_score(y_true, scores)),
    }


def evaluate(model, test: pd.DataFrame, cfg: PipelineConfig) -> tuple[dict[str, float], np.ndarray]:
    X = test[cfg.data.features.all]
    scores = predict_scores(model, X, cfg.task)
    return compute_metrics(test[cfg.data.target].to_numpy(), scores, cfg.task), scores


def evaluate_champion(ctx) -> None:
    """Evaluate the registry's champion on the candidate's test split (the same new rows).

    First run (no champion): stated, and only absolute thresholds apply. A champion that cannot
    be loaded is recorded in `ctx.champion_error` for the champion gate to report.
    """
    from gates import tracking

    ctx.champion = tracking.champion(ctx.cfg)
    if ctx.champion is None:
        ctx.notes.append("first run: no champion in the registry, so only absolute thresholds "
                         "were applied (no comparison with a previous model)")
        return
    import mlflow

    try:
        ctx.champion_model = mlflow.sklearn.load_model(ctx.champion.model_uri)
        ctx.champion_metrics, ctx.champion_scores = evaluate(ctx.champion_model, ctx.split.test, ctx.cfg)
    except Exception as exc:  # noqa: BLE001 - the champion gate turns this into an error result
        ctx.champion_error = f"{type(exc).__name__}: {exc}"
