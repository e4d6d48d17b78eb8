"""Infer a draft expectation suite from the pipeline's history (as TFDV's infer_schema does
from several spans).

The draft is for a person to review and commit: column set, types, null rates (as `mostly`),
numeric ranges from all windows widened by a margin, calendar columns over their full domain,
category sets, and row counts per partition. One season's ranges are never baked in.
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
MAX_DECLARED = 1000  # ...unless the config declares the column categorical (states, countries)


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


# Calendar and cyclic columns: their range is their whole domain, never one season's part of it.
CYCLIC_DOMAINS = {"month": (1, 12), "hour": (0, 23), "minute": (0, 59), "weekday": (0, 6),
                  "day_of_week": (0, 6), "dayofweek": (0, 6), "dow": (0, 6), "wday": (0, 6),
                  "day_of_year": (1, 366), "dayofyear": (1, 366), "doy": (1, 366),
                  "week": (1, 53), "week_of_year": (1, 53), "weekofyear": (1, 53),
                  "quarter": (1, 4), "day": (1, 31), "day_of_month": (1, 31)}


def cyclic_domain(column: str, *values: pd.Series) -> tuple[int, int] | None:
    """The full domain of a calendar column, by name and integer values (weekday 1..7 allowed);
    several series (e.g. a train and a test split) are judged together, without concatenating."""
    domain = CYCLIC_DOMAINS.get(column.lower().rsplit(".", 1)[-1])
    present = [v for v in values if len(v)]
    if domain is None or not present or not all(pd.api.types.is_integer_dtype(v) for v in present):
        return None
    lo, hi = min(int(v.min()) for v in present), max(int(v.max()) for v in present)
    if domain == (0, 6) and hi == 7:
        domain = (1, 7)
    return domain if domain[0] <= lo and hi <= domain[1] else None


def _split_windows(frames: dict[dt.date, pd.DataFrame], windows: int) -> list[dict[dt.date, pd.DataFrame]]:
    days = sorted(frames)
    size = max(1, math.ceil(len(days) / max(1, windows)))
    return [{d: frames[d] for d in days[i:i + size]} for i in range(0, len(days), size)]


def infer_suite(cfg: PipelineConfig, start: dt.date, end: dt.date, margin: float = 0.25,
                row_factor: float = 2.0, name: str | None = None, windows: int = 4,
                explain: list[str] | None = None) -> dict[str, Any]:
    """A GE suite (as a JSON-ready dict) that every partition of start..end passes.

    The history is cut into `windows` spans and only what held in all of them is kept (as TFDV
    infers a schema from several spans): a column missing from a span, or of another type there,
    gets no expectation; numeric ranges come from the envelope of all spans, widened by `margin`;
    calendar columns (month, hour, weekday, day of year...) get their full domain. Types, nulls
    and category sets stay strict. Each dropped or widened expectation is said in `explain`.
    """
    explain = explain if explain is not None else []
    frames = _read_window(cfg, start, end)
    spans = _split_windows(frames, windows)
    span_frames = [pd.concat(s.values(), ignore_index=True) for s in spans]
    window = pd.concat(span_frames, ignore_index=True)
    rows = [len(f) for f in frames.values()]
    everywhere = [c for c in window.columns if all(c in f.columns for f in span_frames)]
    for col in window.columns:
        if col not in everywhere:
            explain.append(f"dropped: column {col!r} is missing from some of the {len(spans)} windows")
    exps = [
        _expectation("expect_table_columns_to_match_set", column_set=[str(c) for c in everywhere]),
        _expectation("expect_table_row_count_to_be_between", min_value=int(min(rows) / row_factor),
                     max_value=int(math.ceil(max(rows) * row_factor))),
    ]
    categorical = set(cfg.data.features.categorical)
    for col in everywhere:
        series = window[col]
        types = {_type_name(f[col]) for f in span_frames}
        if len(types) > 1:
            explain.append(f"dropped: type of {col!r} differs across windows ({sorted(types)})")
            continue
        type_name = types.pop()
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
        domain = cyclic_domain(col, values) if is_numeric else None
        if domain is not None:
            exps.append(_expectation("expect_column_values_to_be_between", column=col,
                                     min_value=domain[0], max_value=domain[1]))
            seen = (int(values.min()), int(values.max()))
            if seen != domain:
                explain.append(f"widened: {col!r} is a calendar column, so its range is its full domain "
                               f"{domain[0]}..{domain[1]} (the history shows {seen[0]}..{seen[1]})")
        elif (not is_numeric or col in categorical or col == cfg.data.target) and (
                len(distinct) <= MAX_CATEGORIES or (col in categorical and len(distinct) <= MAX_DECLARED)):
            value_set = sorted(v.item() if hasattr(v, "item") else v for v in distinct)
            exps.append(_expectation("expect_column_values_to_be_in_set", column=col, value_set=value_set))
        elif is_numeric:
            lo, hi = float(values.min()), float(values.max())
            span = (hi - lo) or abs(hi) or 1.0
            low = lo - margin * span
            exps.append(_expectation("expect_column_values_to_be_between", column=col,
                                     min_value=round(max(0.0, low) if lo >= 0 else low, 6),
                                     max_value=round(hi + margin * span, 6)))
            narrowest = min((float(f[col].max()) - float(f[col].min()) for f in span_frames
                             if f[col].notna().any()), default=span)
            if len(spans) > 1 and narrowest < 0.8 * span:
                explain.append(f"widened: {col!r} range from all {len(spans)} windows ({lo:g}..{hi:g}, "
                               f"one window alone spans only {narrowest:g}), plus {margin:.0%} of the span")
        elif len(distinct) > MAX_CATEGORIES:
            explain.append(f"dropped: no value set for {col!r} ({len(distinct)} distinct values > "
                           f"{MAX_CATEGORIES}: an id or free text)")
    return {
        "name": name or cfg.name,
        "expectations": exps,
        "meta": {"notes": f"Inferred by `gates suite init` from {len(frames)} partitions {start}..{end} "
                          f"in {len(spans)} windows, keeping what held in all of them "
                          f"({len(window)} rows; numeric ranges widened by {margin:.0%} of the span, "
                          f"calendar columns to their full domain, row counts by x{row_factor}). "
                          "Review before committing.",
                 "inference": explain},
        "notes": None,
    }


def write_suite(suite: dict[str, Any], path: Path) -> Path:
    from gates.contract import load_suite

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(suite, indent=2, default=str) + "\n")
    load_suite(path)  # the draft must load as a GE suite
    return path
