"""What the partition gate checks inside the rows: a partition is only as good as its rows.

- Event times: each row's event time lies in its partition's period (daily: the partition's day;
  weekly: the 7 days from it; UTC, naive times taken as UTC), give or take
  `period_tolerance_minutes`, and not after the run's reference instant plus
  `future_tolerance_minutes`: the earlier of the wall clock and the run date's start (00:00 UTC;
  the window ends there), so a replayed past date is judged against its run date, not today.
  A writer that stamped the wrong day, or a clock in the future, is named by partition and count.
- Labels (classification): the evaluation is binary, so the window needs exactly two classes; a
  single class or a third one is named, with the partitions and counts. A partition whose labels
  are all null is named too (its labels never arrived).
- Numbers: a numeric feature holding infinities (a division by zero upstream) or values that are
  not numbers (mixed types) is named, by partition, column and count, before training chokes on it.

Columns the data lacks are left alone: the contract names those (and the preflight check names
config fields that point at columns neither the data nor the contract has).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gates.cadence import add_months
from gates.config import Cadence, PipelineConfig, Task
from gates.ingest import Ingested

if TYPE_CHECKING:  # declared beside the partitions gate, which imports this module
    from gates.data_gates import PartitionsGate

CADENCE_DAYS = {"daily": 1, "weekly": 7}


@dataclass
class RowFindings:
    """Failures (blocking sentences) and the counts behind them, for the partition gate."""

    failures: list[str] = field(default_factory=list)
    measured: dict[str, int] = field(default_factory=dict)
    details: dict[str, dict] = field(default_factory=dict)


def _as_utc_naive(series: pd.Series) -> tuple[pd.Series, int]:
    """Event times as naive UTC datetimes, and how many non-null values could not be read."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").dt.tz_localize(None), 0
    if pd.api.types.is_datetime64_dtype(series.dtype):
        return series, 0
    if pd.api.types.is_numeric_dtype(series.dtype):  # epoch numbers: unit unknown, not guessed
        return pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns]"), int(series.notna().sum())
    parsed = pd.to_datetime(series, errors="coerce", utc=True, format="ISO8601").dt.tz_localize(None)
    return parsed, int((parsed.isna() & series.notna()).sum())


def _counts(items: dict[str, int]) -> str:
    shown = [f"{day} ({n} rows)" for day, n in list(items.items())[:6]]
    return ", ".join(shown) + (f" (+{len(items) - 6} more)" if len(items) > 6 else "")


def check_event_times(ingested: Ingested, column: str, cadence: Cadence, settings: PartitionsGate,
                      now: dt.datetime | None = None) -> RowFindings:
    out = RowFindings()
    days = CADENCE_DAYS.get(str(cadence.value))  # a cadence without a fixed length: future only
    step = dt.timedelta(days=days or 0)
    monthly = cadence is Cadence.MONTHLY  # a month partition's period is its calendar month
    tolerance = pd.Timedelta(minutes=settings.period_tolerance_minutes)
    # "The future" is judged at the run's reference instant: a run as of run_date sees the
    # partitions before that date, so its rows end at the run date's start (00:00 UTC) — the end
    # of every cadence's window (daily, weekly, monthly). A backtest or scenario replaying a past
    # date is judged against its run date, not today; rows after the wall clock are future for
    # any run (a run date ahead of the clock does not make tomorrow's rows possible).
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is not None:
        now = now.astimezone(dt.UTC).replace(tzinfo=None)
    as_of = dt.datetime.combine(ingested.run_date, dt.time())
    reference = min(now, as_of)
    latest = pd.Timestamp(reference) + pd.Timedelta(minutes=settings.future_tolerance_minutes)
    outside: dict[str, int] = {}
    future: dict[str, int] = {}
    unreadable: dict[str, int] = {}
    examples: dict[str, str] = {}
    for day in ingested.expected:
        for frame in ingested.frames.get(day, []):
            if column not in frame.columns or frame.empty:
                continue
            times, bad = _as_utc_naive(frame[column])
            start = pd.Timestamp(day) - tolerance
            end = pd.Timestamp(add_months(day, 1) if monthly else day + step) + tolerance
            is_future = (times > latest).to_numpy()
            is_outside = (((times < start) | (times >= end)).to_numpy() & ~is_future if days or monthly
                          else np.zeros(len(times), dtype=bool))
            key = day.isoformat()
            for store, mask in ((future, is_future), (outside, is_outside)):
                n = int(mask.sum())
                if n:
                    store[key] = store.get(key, 0) + n
                    examples.setdefault(key, str(times[mask].iloc[0]))
            if bad:
                unreadable[key] = unreadable.get(key, 0) + bad
    if outside:
        out.failures.append(
            f"event times outside their partition's period ({column!r}, tolerance "
            f"{settings.period_tolerance_minutes:g} min): {_counts(outside)}; e.g. "
            f"{examples[next(iter(outside))]} in partition {next(iter(outside))}")
    if future:
        out.failures.append(
            f"event times in the future ({column!r} after {latest:%Y-%m-%d %H:%M} UTC, tolerance "
            f"{settings.future_tolerance_minutes:g} min): {_counts(future)}")
    if unreadable:
        out.failures.append(f"event times that are not timestamps ({column!r}): {_counts(unreadable)}")
    out.measured.update({"rows_outside_period": sum(outside.values()),
                         "rows_in_future": sum(future.values()),
                         "unreadable_event_times": sum(unreadable.values())})
    out.details["event_times"] = {"outside_period": outside, "future": future,
                                  "unreadable": unreadable}
    return out


def check_labels(ingested: Ingested, target: str) -> RowFindings:
    """Binary classification: two classes across the window, none all-null partition."""
    out = RowFindings()
    per_day: dict[str, pd.Series] = {}
    all_null: list[str] = []
    for day in ingested.expected:
        frame = ingested.partition_frame(day) if ingested.frames.get(day) else None
        if frame is None or frame.empty or target not in frame.columns:
            continue
        labels = frame[target]
        if labels.isna().all():
            all_null.append(day.isoformat())
            continue
        per_day[day.isoformat()] = labels.value_counts(dropna=True)
    if all_null:
        out.failures.append(f"target {target!r} is null in every row of partition(s): "
                            f"{', '.join(all_null[:6])}" + (" …" if len(all_null) > 6 else ""))
    totals = pd.concat(per_day.values()).groupby(level=0).sum() if per_day else pd.Series(dtype="int64")
    classes = list(totals.sort_values(ascending=False).index)
    out.measured.update({"label_classes": len(classes), "all_null_label_partitions": len(all_null)})
    out.details["labels"] = {"classes": {str(k): int(v) for k, v in totals.items()}}
    if len(classes) == 1:
        out.failures.append(f"target {target!r} has a single class ({classes[0]!r}) in every "
                            f"partition of the window; a classifier needs two")
    elif len(classes) > 2:
        expected = [c for c in classes if str(c) in ("0", "1", "True", "False")]
        usual = expected if len(expected) == 2 else classes[:2]
        extra = [c for c in classes if c not in usual]
        where = {day: int(counts[counts.index.isin(extra)].sum()) for day, counts in per_day.items()
                 if counts.index.isin(extra).any()}
        out.failures.append(
            f"target {target!r} has {len(classes)} classes; the evaluation is binary "
            f"({usual[0]!r}, {usual[1]!r}): unexpected {', '.join(repr(c) for c in extra[:5])} in "
            f"{_counts(where)}")
    return out


def check_numbers(ingested: Ingested, numeric: list[str]) -> RowFindings:
    """Numeric features hold finite numbers: infinities and non-numbers are named."""
    out = RowFindings()
    infinite: dict[str, dict[str, int]] = {}
    not_numbers: dict[str, dict[str, int]] = {}
    samples: dict[str, str] = {}
    for day in ingested.expected:
        for frame in ingested.frames.get(day, []):
            for col in numeric:
                if col not in frame.columns or frame.empty:
                    continue
                series = frame[col]
                if pd.api.types.is_bool_dtype(series.dtype):
                    continue
                if pd.api.types.is_numeric_dtype(series.dtype):
                    n = int(np.isinf(series.to_numpy(dtype="float64", na_value=np.nan)).sum())
                    store = infinite
                else:  # object or str: mixed types, or numbers written as text
                    numbers = pd.to_numeric(series, errors="coerce")
                    mask = numbers.isna() & series.notna()
                    n = int(mask.sum())
                    if n:
                        samples.setdefault(col, repr(series[mask].iloc[0])[:40])
                    store = not_numbers
                if n:
                    per = store.setdefault(col, {})
                    per[day.isoformat()] = per.get(day.isoformat(), 0) + n
    for col, where in infinite.items():
        out.failures.append(f"infinite values in numeric feature {col!r}: {_counts(where)}")
    for col, where in not_numbers.items():
        out.failures.append(f"values that are not numbers in numeric feature {col!r} (e.g. "
                            f"{samples[col]}): {_counts(where)}")
    out.measured.update({"infinite_values": sum(sum(v.values()) for v in infinite.values()),
                         "non_numeric_values": sum(sum(v.values()) for v in not_numbers.values())})
    out.details["numbers"] = {"infinite": infinite, "not_numbers": not_numbers}
    return out


def check_rows(ingested: Ingested, cfg: PipelineConfig, settings: PartitionsGate,
               now: dt.datetime | None = None) -> RowFindings:
    """Every row check of the window, merged."""
    found = [check_event_times(ingested, cfg.data.timestamp, cfg.data.cadence, settings, now),
             check_numbers(ingested, cfg.data.features.numeric)]
    if cfg.task is Task.CLASSIFICATION:
        found.append(check_labels(ingested, cfg.data.target))
    merged = RowFindings()
    for f in found:
        merged.failures += f.failures
        merged.measured.update(f.measured)
        merged.details.update(f.details)
    return merged
