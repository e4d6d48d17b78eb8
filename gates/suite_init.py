"""Infer a draft expectation suite from a reference window (as TFDV's infer_schema does).

The draft is for a person to review and commit: column set, types, null rates (as `mostly`),
numeric ranges widened by a margin, category sets, and row counts per partition.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from gates.config import PipelineConfig
from gates.ingest import discover, read_file

MAX_CATEGORIES = 50  # more distinct values: no value set is inferred (likely an id or free text)


def _type_name(series: pd.Series) -> str:
    """The type_ string GE 1.24 accepts for this column on pandas 3 ('str', not 'object')."""
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime64"
    if pd.api.types.is_string_dtype(series) and not pd.api.types.is_object_dtype(series):
        return "str"
    return str(series.dtype)


def _expectation(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": {"inferred": True}, "severity": "critical"}


def _read_window(cfg: PipelineConfig, start: dt.date, end: dt.date) -> dict[dt.date, pd.DataFrame]:
    found = discover(Path(cfg.data.path), cfg.data.partition_key, cfg.data.format)
    frames = {}
    for day in sorted(d for d in found if start <= d <= end):
        parts = [read_file(p, cfg.data.format) for p in found[day]]
        frames[day] = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if not frames:
        raise FileNotFoundError(f"no partitions between {start} and {end} under {cfg.data.path}")
    return frames


def infer_suite(cfg: PipelineConfig, start: dt.date, end: dt.date, margin: float = 0.25,
                row_factor: float = 2.0, name: str | None = None) -> dict[str, Any]:
    """A GE suite (as a JSON-ready dict) that the reference window passes, partition by partition."""
    frames = _read_window(cfg, start, end)
    window = pd.concat(frames.values(), ignore_index=True)
    rows = [len(f) for f in frames.values()]
    exps = [
        _expectation("expect_table_columns_to_match_set", column_set=[str(c) for c in window.columns]),
        _expectation("expect_table_row_count_to_be_between", min_value=int(min(rows) / row_factor),
                     max_value=int(math.ceil(max(rows) * row_factor))),
    ]
    categorical = set(cfg.data.features.categorical)
    for col in window.columns:
        series = window[col]
        type_name = _type_name(series)
        exps.append(_expectation("expect_column_values_to_be_of_type", column=col, type_=type_name))
        worst_null = max(float(f[col].isna().mean()) for f in frames.values())
        if worst_null == 0:
            exps.append(_expectation("expect_column_values_to_not_be_null", column=col))
        else:
            mostly = math.floor(max(0.0, 1 - 2 * worst_null - 0.02) * 100) / 100
            exps.append(_expectation("expect_column_values_to_not_be_null", column=col, mostly=mostly))
        values = series.dropna()
        if type_name in ("bool", "datetime64") or values.empty or col == cfg.data.entity_id:
            continue
        distinct = values.unique()
        is_numeric = pd.api.types.is_numeric_dtype(series)
        if (not is_numeric or col in categorical or col == cfg.data.target) and len(distinct) <= MAX_CATEGORIES:
            value_set = sorted(v.item() if hasattr(v, "item") else v for v in distinct)
            exps.append(_expectation("expect_column_values_to_be_in_set", column=col, value_set=value_set))
        elif is_numeric:
            lo, hi = float(values.min()), float(values.max())
            span = (hi - lo) or abs(hi) or 1.0
            low = lo - margin * span
            exps.append(_expectation("expect_column_values_to_be_between", column=col,
                                     min_value=round(max(0.0, low) if lo >= 0 else low, 6),
                                     max_value=round(hi + margin * span, 6)))
    return {
        "name": name or cfg.name,
        "expectations": exps,
        "meta": {"notes": f"Inferred by `gates suite init` from {len(frames)} partitions {start}..{end} "
                          f"({len(window)} rows; numeric ranges widened by {margin:.0%} of the span, row "
                          f"counts by x{row_factor}). Review before committing."},
        "notes": None,
    }


def write_suite(suite: dict[str, Any], path: Path) -> Path:
    from gates.contract import load_suite

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(suite, indent=2, default=str) + "\n")
    load_suite(path)  # the draft must load as a GE suite
    return path
