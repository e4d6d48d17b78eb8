"""Was the pipeline's preprocessing fitted on the training split only?

A scaler, imputer or encoder fitted before the split has learned the test period (its means,
medians, categories): the test metric is then measured on data the model partly saw. We walk the
fitted Pipeline/ColumnTransformer tree pushing only the training rows through it; for every step
with learned statistics we refit a fresh clone of it on the training rows that reached it. The
fitted statistics must match that refit. Only on a mismatch are the window's rows pushed through
the steps before it and the clone refitted on them, to say whether the step was fitted before the
split (its statistics then match the whole window's). A clean pipeline thus costs one transform
of the training rows per step and one refit per step, not a pass of every window row.

The refits are cheap where the statistics allow it, with the same results: a StandardScaler's
means and scales and a mean or median imputer's values are numpy reductions (nanmean, nanstd,
nanmedian) over the columns; an encoder's categories and a constant imputer's values do not
depend on how often a row occurs, so those steps (and the transforms feeding only them) see each
distinct training row once. Anything else is refitted as a scikit-learn clone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
from gates.split import Split, take_rows


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
    reach: Callable[[Any], Any]  # what the step receives from given rows (the window's, on a mismatch)


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


def walk(step: Any, X: Any, columns: list[str], path: str,
         reach: Callable[[Any], Any] = lambda X: X) -> Iterator[FittedStep]:
    """Yield every learned-statistics step, with the training rows' data that reached it and how
    other rows reach it (`reach`: the steps before it, applied on demand)."""
    inner = getattr(step, "estimator", None) if type(step).__name__ == "FrozenEstimator" else None
    if inner is not None:
        yield from walk(inner, X, columns, path + "(frozen)", reach)
        return
    if isinstance(step, Pipeline):
        transformers = [(n, s) for n, s in step.steps if s not in (None, "passthrough")]
        transformers = [(n, s) for n, s in transformers if hasattr(s, "transform")]
        for k, (name, sub) in enumerate(transformers):
            later = [s for _, rest in transformers[k:] for s in _learned(rest)]
            if later and all(_count_free(s) for s in later):
                X = _distinct(X)  # transforms are row-wise: the distinct rows give the same sets
            yield from walk(sub, X, columns, f"{path}/{name}".lstrip("/"), reach)
            if k + 1 < len(transformers):  # only transform what a later step will inspect
                X, columns = sub.transform(X), _names_out(sub, columns)
                reach = (lambda rows, sub=sub, before=reach: sub.transform(before(rows)))
        return
    if isinstance(step, ColumnTransformer):
        for name, sub, cols in step.transformers_:
            if isinstance(sub, str):  # "drop" / "passthrough"
                continue
            sub_X, sub_cols = _select(X, cols, columns)
            sub_reach = (lambda rows, cols=cols, names=columns, before=reach:
                         _select(before(rows), cols, names)[0])
            yield from walk(sub, sub_X, sub_cols, f"{path}/{name}".lstrip("/"), sub_reach)
        return
    if type(step) in LEARNED:
        yield FittedStep(path, step, list(getattr(step, "feature_names_in_", columns)), X, reach)


def _count_free(step: Any) -> bool:
    """A step whose compared statistics are the same on the distinct rows as on all rows."""
    if isinstance(step, (OneHotEncoder, OrdinalEncoder)):
        return True
    return isinstance(step, SimpleImputer) and step.strategy == "constant"


def _learned(step: Any) -> Iterator[Any]:
    """The learned-statistics steps inside `step` (no data needed)."""
    inner = getattr(step, "estimator", None) if type(step).__name__ == "FrozenEstimator" else None
    if inner is not None:
        yield from _learned(inner)
    elif isinstance(step, Pipeline):
        for _, sub in step.steps:
            if sub not in (None, "passthrough"):
                yield from _learned(sub)
    elif isinstance(step, ColumnTransformer):
        for _, sub, _ in getattr(step, "transformers_", step.transformers):
            if not isinstance(sub, str):
                yield from _learned(sub)
    elif type(step) in LEARNED:
        yield step


def _distinct(X: Any) -> Any:
    """Each distinct row once (first occurrence, in order; a hash, not a sort)."""
    try:
        keep = ~(X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)).duplicated().to_numpy()
    except TypeError:  # unhashable cells: every row, as scikit-learn would see them
        return X
    return X.loc[keep] if isinstance(X, pd.DataFrame) else X[keep]


def _numeric_matrix(X: Any) -> np.ndarray | None:
    """X as float64 columns, if every column is numeric (not bool); else None."""
    if isinstance(X, pd.DataFrame):
        if not all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in X.dtypes):
            return None
        return X.to_numpy(dtype="float64", na_value=np.nan)
    X = np.asarray(X)
    return X.astype("float64", copy=False) if X.dtype.kind in "iuf" else None


def _reduced(step: Any, X: Any) -> dict[str, list[Any]] | None:
    """The statistics of a scaler or mean/median imputer as numpy reductions, where they equal
    scikit-learn's fit exactly (up to float rounding); None to refit a clone instead."""
    plain = type(step) is StandardScaler and step.with_mean and step.with_std
    imputer = (type(step) is SimpleImputer and step.strategy in ("mean", "median")
               and isinstance(step.missing_values, float) and np.isnan(step.missing_values))
    if not (plain or imputer):
        return None
    values = _numeric_matrix(X)
    if values is None or not len(values) or np.isnan(values).all(axis=0).any():
        return None  # an empty column: scikit-learn's own rules apply
    if imputer:
        reduce = np.nanmedian if step.strategy == "median" else np.nanmean
        return {"statistics_": list(reduce(values, axis=0))}
    mean, var = np.nanmean(values, axis=0), np.nanvar(values, axis=0)
    n, eps = (~np.isnan(values)).sum(axis=0), np.finfo(np.float64).eps
    if (var <= n * eps * var + (n * mean * eps) ** 2).any():
        return None  # a constant column (scikit-learn's own bound): its scale is set to 1
    return {"mean_": list(mean), "scale_": list(np.sqrt(var))}


def refit_statistics(step: Any, X: Any) -> dict[str, list[Any]]:
    """Per compared attribute, the per-column statistics the step learns from X."""
    reduced = _reduced(step, X)
    if reduced is not None:
        return reduced
    fitted = clone(step).fit(_distinct(X) if _count_free(step) else X)
    return {attr: _per_column(fitted, attr) for attr in LEARNED[type(step)]}


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
    window = frame[features]
    steps = list(walk(model, take_rows(window, split.train_positions), features, ""))
    failures: list[str] = []
    warnings = [] if steps else [
        f"no preprocessing step with learned statistics in {type(model).__name__}: nothing to "
        f"verify (checked types: {', '.join(t.__name__ for t in LEARNED)})"]
    compared = 0
    for found in steps:
        on_train = refit_statistics(found.step, found.train_input)
        on_all = None  # refit on the whole window only to explain a mismatch
        for attr in LEARNED[type(found.step)]:
            fitted, train_v = _per_column(found.step, attr), on_train[attr]
            for j, (col, f, t) in enumerate(zip(found.columns, fitted, train_v, strict=False)):
                compared += 1
                if _same(f, t, settings.rtol):
                    continue
                if on_all is None:
                    on_all = refit_statistics(found.step, found.reach(window))
                a = on_all[attr][j]
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
        f"training split ({len(split.train_positions)} rows)",
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
