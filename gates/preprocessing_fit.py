"""Was the pipeline's preprocessing fitted on the training split only?

A scaler, imputer or encoder fitted before the split has learned the test period (its means,
medians, categories): the test metric is then measured on data the model partly saw. We walk the
fitted Pipeline/ColumnTransformer tree; for every step with learned statistics we refit a fresh
clone of it on the rows that reached it from the training split, and on those from the whole
window. The fitted statistics must match the training refit; matching the whole-window refit
instead names the step and column as fitted before the split.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from pydantic import Field

from gates.config import PipelineConfig
from gates.registry import Cause, Gate
from gates.results import Family, GateResult, judge
from gates.settings import GateSettings
from gates.split import Split


class PreprocessingFitGate(GateSettings):
    rtol: float = Field(1e-6, description="Tolerance when matching learned statistics.")


# The learned state, per step type, that reveals which rows a step was fitted on.
LEARNED: dict[type, tuple[str, ...]] = {
    StandardScaler: ("mean_", "scale_"),
    MinMaxScaler: ("data_min_", "data_max_"),
    MaxAbsScaler: ("max_abs_",),
    RobustScaler: ("center_", "scale_"),
    SimpleImputer: ("statistics_",),
    OneHotEncoder: ("categories_",),
    OrdinalEncoder: ("categories_",),
}


@dataclass
class FittedStep:
    path: str  # e.g. "preprocess/numeric/scale"
    step: Any  # the fitted step (unwrapped from a FrozenEstimator)
    columns: list[str]
    train_input: Any  # what the step receives from the training rows
    all_input: Any  # ... and from every row of the window


def _take(X: Any, rows: np.ndarray) -> Any:
    return X.iloc[rows] if isinstance(X, pd.DataFrame) else X[rows]


def _select(X: Any, cols: Any, all_columns: list[str]) -> tuple[Any, list[str]]:
    """Columns a ColumnTransformer gave one transformer, by name, position, slice or mask."""
    picked = np.atleast_1d(cols) if not isinstance(cols, slice) else None
    if picked is not None and picked.dtype.kind in "OU":
        idx = [all_columns.index(str(c)) for c in picked]
    else:
        idx = list(np.arange(len(all_columns))[cols])
    names = [all_columns[i] for i in idx]
    if isinstance(X, pd.DataFrame):
        return X.iloc[:, idx], names
    return np.asarray(X)[:, idx], names


def _names_out(step: Any, columns: list[str]) -> list[str]:
    try:
        return [str(c) for c in step.get_feature_names_out(columns)]
    except Exception:  # noqa: BLE001 - steps without names keep their input names
        return columns


def walk(step: Any, X: Any, columns: list[str], train_rows: np.ndarray, path: str) -> Iterator[FittedStep]:
    """Yield every learned-statistics step, with the data that reached it."""
    inner = getattr(step, "estimator", None) if type(step).__name__ == "FrozenEstimator" else None
    if inner is not None:
        yield from walk(inner, X, columns, train_rows, path + "(frozen)")
        return
    if isinstance(step, Pipeline):
        transformers = [(n, s) for n, s in step.steps if s not in (None, "passthrough")]
        transformers = [(n, s) for n, s in transformers if hasattr(s, "transform")]
        for k, (name, sub) in enumerate(transformers):
            yield from walk(sub, X, columns, train_rows, f"{path}/{name}".lstrip("/"))
            if k + 1 < len(transformers):  # only transform what a later step will inspect
                X, columns = sub.transform(X), _names_out(sub, columns)
        return
    if isinstance(step, ColumnTransformer):
        for name, sub, cols in step.transformers_:
            if isinstance(sub, str):  # "drop" / "passthrough"
                continue
            sub_X, sub_cols = _select(X, cols, columns)
            yield from walk(sub, sub_X, sub_cols, train_rows, f"{path}/{name}".lstrip("/"))
        return
    if type(step) in LEARNED:
        yield FittedStep(path, step, list(getattr(step, "feature_names_in_", columns)),
                         _take(X, train_rows), X)


def _per_column(step: Any, attr: str) -> list[Any]:
    value = getattr(step, attr, None)
    if value is None:
        return []
    return list(value) if attr == "categories_" else list(np.asarray(value))


def _same(a: Any, b: Any, rtol: float) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):  # categories of one column
        return len(a) == len(b) and set(map(str, a)) == set(map(str, b))
    try:
        return bool(np.isclose(float(a), float(b), rtol=rtol, atol=0.0, equal_nan=True))
    except (TypeError, ValueError):
        return str(a) == str(b)


def _show(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{len(value)} categories"
    try:
        return f"{float(value):.6g}"
    except (TypeError, ValueError):
        return repr(value)


def check_preprocessing_fit(model: Any, frame: pd.DataFrame, split: Split, cfg: PipelineConfig,
                            settings: PreprocessingFitGate) -> GateResult:
    """Every learned statistic equals a refit on the training split; naming step and column when
    it equals the whole window's instead (fitted before the split)."""
    if split.train_positions is None:
        raise ValueError("the split did not record its training rows (gates.split.Split.train_positions)")
    features = cfg.data.features.all
    steps = list(walk(model, frame[features], features, split.train_positions, ""))
    failures: list[str] = []
    warnings = [] if steps else [
        f"no preprocessing step with learned statistics in {type(model).__name__}: nothing to "
        f"verify (checked types: {', '.join(t.__name__ for t in LEARNED)})"]
    compared = 0
    for found in steps:
        on_train = clone(found.step).fit(found.train_input)
        on_all = None  # refit on the whole window only to explain a mismatch
        for attr in LEARNED[type(found.step)]:
            fitted, train_v = _per_column(found.step, attr), _per_column(on_train, attr)
            for j, (col, f, t) in enumerate(zip(found.columns, fitted, train_v, strict=False)):
                compared += 1
                if _same(f, t, settings.rtol):
                    continue
                if on_all is None:
                    on_all = clone(found.step).fit(found.all_input)
                a = _per_column(on_all, attr)[j]
                origin = ("the whole window (fitted before the split)" if _same(f, a, settings.rtol)
                          else "neither the training split nor the whole window")
                failures.append(f"step {found.path!r} column {col!r}: {attr} {_show(f)} matches "
                                f"{origin}; refit on train gives {_show(t)}")
    return judge(
        "preprocessing_fit", Family.LEAKAGE, failures=failures, warnings=warnings,
        measured={"steps_checked": len(steps), "statistics_compared": compared,
                  "statistics_not_from_train": len(failures)},
        threshold={"rtol": settings.rtol},
        hint=PREPROCESSING_FIT.hint,
        ok_summary=f"{compared} learned statistics in {len(steps)} steps equal a refit on the "
        f"training split ({len(split.train)} rows)",
        details={"steps": [s.path for s in steps]},
    )


PREPROCESSING_FIT = Gate(
    name="preprocessing_fit", family=Family.LEAKAGE, stage="model", settings=PreprocessingFitGate,
    inputs=("model", "frame", "split", "cfg"), check=check_preprocessing_fit,
    cause=Cause(bucket="pipeline", depth=2, meaning="preprocessing was fitted on more than the training split",
                rules_out="scalers, imputers or encoders fitted before the split",
                next_check="Move every fitted step inside the sklearn Pipeline that is fitted on train."),
    hint="Put every fitted preprocessing step inside the model pipeline and fit it on the "
    "training split only; never fit a scaler or encoder on all rows before splitting.",
    blocks_when="a scaler, imputer or encoder in the pipeline was fitted on more than the training split",
    faults=("scaler_before_split",),
)
GATES = [PREPROCESSING_FIT]
