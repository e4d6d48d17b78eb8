"""Duplicate rows inside a partition and across the window's partitions (issue 11.5).

The partitions gate catches a file written twice or a day copied whole. A retried micro-batch,
an at-least-once consumer or a fan-out join instead repeats *some* rows inside one file, and the
row count barely moves: nothing else notices, and the model is trained (and tested) on
over-weighted rows. Each row is hashed (pd.util.hash_pandas_object, vectorised), and the share of
rows that repeat an earlier row, in the same partition or an earlier one, is judged per partition.

Threshold: `max_share` (default 0.001) — event data with a timestamp and an entity almost never
repeats a whole row by chance, so more than one row in a thousand repeated is a delivery problem;
`min_count` keeps a tiny partition's single repeat from blocking. When the pipeline's calibration
file (gates calibrate, beside the suite) holds `"duplicates": {"envelope": share}` learned from
history, the larger of the two is used and the report says which.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pydantic import Field

from gates.registry import Cause, Gate
from gates.results import Family, GateResult, judge
from gates.settings import GateSettings


class DuplicatesGate(GateSettings):
    """Exact duplicate rows inside a partition or repeating an earlier one."""

    max_share: float = Field(
        0.001, ge=0, le=1, description="Share of a partition's rows that may repeat an earlier row. "
        "Event rows with a timestamp and an entity almost never repeat whole by chance: more than 1 "
        "in 1000 is a retried batch or a fanning join.")
    min_count: int = Field(5, ge=1, description="Fewer duplicate rows in a partition never block.")
    columns: list[str] | None = Field(None, description="Columns hashed; default: every column.")
    learn_from_calibration: bool = Field(
        True, description="Use the natural duplicate share of the calibration file (key "
        "duplicates.envelope) when it is larger than max_share.")


def learned_share(cfg: Any) -> float | None:
    """The natural duplicate share learned from history, if the calibration file holds one."""
    path = getattr(cfg, "calibration", None) or Path(cfg.expectations).with_suffix(".calibration.json")
    path = Path(path)
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text()).get("duplicates", {}).get("envelope")
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"calibration file {path} is not readable JSON: {exc}") from None
    return float(found) if found is not None else None


def _judge_hashes(hashes: np.ndarray, part: np.ndarray, days: list[dt.date], rows_of: Any
                  ) -> tuple[dict[dt.date, int], dict[dt.date, int], dict[dt.date, pd.DataFrame]]:
    """Counts and samples from row hashes with each row's partition number (rows in partition
    order); `rows_of(k, rows)` gives partition k's rows at those positions within it."""
    candidates = _repeated_hash_rows(hashes)
    hashes, part_of = hashes[candidates], part[candidates]
    codes = pd.factorize(hashes)[0].astype("int64")  # one hash table; then integer keys
    within = pd.Series(codes * len(days) + part_of).duplicated().to_numpy()  # same (row, partition)
    across = ~within & pd.Series(codes).duplicated().to_numpy()  # first seen in an earlier partition
    inside = np.bincount(part_of[within], minlength=len(days))
    earlier = np.bincount(part_of[across], minlength=len(days))
    repeated = candidates[within | across]
    starts = np.searchsorted(part, np.arange(len(days)))
    samples = {}
    for k in np.unique(part[repeated]):
        first = repeated[part[repeated] == k][:5]
        samples[days[k]] = rows_of(k, first - starts[k])
    return ({days[k]: int(v) for k, v in enumerate(inside) if v},
            {days[k]: int(v) for k, v in enumerate(earlier) if v}, samples)


def _repeated_hash_rows(hashes: np.ndarray) -> np.ndarray:
    """Positions (ascending) of the rows whose hash occurs more than once. A hash table over
    every row is a cache miss per row (2.2 s at 10M rows); a vectorised sort finds the repeated
    values (0.1 s), and a table of those few values picks their rows out."""
    ordered = np.sort(hashes)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if not len(repeated):
        return np.empty(0, dtype="int64")
    return np.flatnonzero(pd.Series(hashes).isin(repeated).to_numpy())


def duplicate_counts(frames: dict[dt.date, pd.DataFrame], columns: list[str] | None = None
                     ) -> tuple[dict[dt.date, int], dict[dt.date, int], dict[dt.date, pd.DataFrame]]:
    """Per partition: rows repeating a row of the same partition, rows repeating a row of an
    earlier partition, and the repeated rows themselves (for samples). Each partition is hashed
    on its own columns (used when the partitions' columns or dtypes differ)."""
    days = sorted(d for d, f in frames.items() if len(f))
    if not days:
        return {}, {}, {}
    hashes, part = [], []
    for k, day in enumerate(days):
        frame = frames[day] if columns is None else frames[day][[c for c in columns if c in frames[day]]]
        hashes.append(pd.util.hash_pandas_object(frame, index=False).to_numpy())
        part.append(np.full(len(frame), k))
    return _judge_hashes(np.concatenate(hashes), np.concatenate(part), days,
                         lambda k, rows: frames[days[k]].iloc[rows])


def window_duplicate_counts(ingested: Any, columns: list[str] | None = None
                            ) -> tuple[dict[dt.date, int], dict[dt.date, int], dict[dt.date, pd.DataFrame]]:
    """duplicate_counts from the window's row hashes, computed once per run (gates.row_hashes):
    the partitions are views of one frame with the same columns, so a row's hash is the one its
    partition alone would give."""
    window = ingested.row_hashes.frame
    used = [c for c in (columns if columns is not None else window.columns) if c in window]
    spans = {d: span for d, span in ingested.partition_positions().items() if span[1] > span[0]}
    days = sorted(spans)
    if not days or not used:
        return {}, {}, {}
    positions = np.concatenate([np.arange(*spans[d]) for d in days])
    part = np.concatenate([np.full(spans[d][1] - spans[d][0], k) for k, d in enumerate(days)])
    hashes = ingested.row_hashes.rows(used, positions)
    return _judge_hashes(hashes, part, days,
                         lambda k, rows: window.iloc[spans[days[k]][0] + rows].reset_index(drop=True))


def check_duplicates(ingested: Any, cfg: Any, settings: DuplicatesGate) -> GateResult:
    """Share of exact duplicate rows per partition (inside it, or repeating an earlier one)."""
    ingested.combined()  # one window frame: its partitions become views of it when they can
    if ingested.views:
        inside, earlier, samples = window_duplicate_counts(ingested, settings.columns)
    else:
        inside, earlier, samples = duplicate_counts(
            {d: ingested.partition_frame(d) for d in ingested.expected if ingested.frames.get(d)},
            settings.columns)
    lengths = {d: ingested.rows(d) for d in ingested.expected if ingested.frames.get(d)}
    learned = learned_share(cfg) if settings.learn_from_calibration else None
    limit = max(settings.max_share, learned) if learned is not None else settings.max_share
    keys = [c for c in (cfg.data.entity_id, cfg.data.timestamp) if c]
    failures, per_partition = [], {}
    for day in sorted(set(inside) | set(earlier)):
        count = inside.get(day, 0) + earlier.get(day, 0)
        share = count / lengths[day]
        per_partition[day.isoformat()] = {"inside": inside.get(day, 0), "earlier": earlier.get(day, 0),
                                          "share": round(share, 6)}
        if share > limit and count >= settings.min_count:
            sample = samples.get(day)
            shown = "; ".join(", ".join(f"{k}={row[k]}" for k in keys if k in row)
                              for _, row in sample.iterrows()) if sample is not None and keys else ""
            failures.append(f"partition {cfg.data.partition_key}={day.isoformat()}: {count} duplicate rows "
                            f"({share:.2%} > {limit:.2%}; {inside.get(day, 0)} inside it, "
                            f"{earlier.get(day, 0)} repeating an earlier partition)"
                            + (f", e.g. {shown}" if shown else ""))
    total = sum(lengths.values())
    duplicated = sum(inside.values()) + sum(earlier.values())
    return judge(
        "duplicates", Family.DATA, failures=failures,
        measured={"rows": total, "duplicate_rows": duplicated,
                  "duplicate_share": round(duplicated / total, 6) if total else 0.0,
                  "max_partition_share": max((v["share"] for v in per_partition.values()), default=0.0),
                  "learned_share": learned if learned is not None else -1.0},
        threshold={"max_share": limit, "configured_max_share": settings.max_share,
                   "min_count": settings.min_count,
                   "source": "calibration" if learned is not None and learned > settings.max_share else "config"},
        hint=DUPLICATES.hint,
        ok_summary=f"{duplicated} duplicate rows in {total} ({duplicated / total if total else 0:.3%}), "
        f"no partition above {limit:.2%}",
        details={"partitions": per_partition, "keys": keys},
    )


DUPLICATES = Gate(
    name="duplicates", family=Family.DATA, stage="data", settings=DuplicatesGate,
    inputs=("ingested", "cfg"), check=check_duplicates,
    # Depth 2: a copied file or partition (partitions, depth 1) also repeats rows; name that first.
    cause=Cause(bucket="data", depth=2, meaning="rows were delivered more than once",
                rules_out="exact duplicate rows inside a partition or across partitions",
                next_check="Check the upstream job for retries or an at-least-once delivery, "
                "and joins that fan out, for the partitions named."),
    hint="Repeated rows come from a retried batch, an at-least-once consumer or a join that fans "
    "out: deduplicate upstream (or on the named keys) before retraining.",
    blocks_when="more than `max_share` (0.001) of a partition's rows repeat an earlier row exactly "
    "(inside it or in an earlier partition; row hashes), naming the partition and sample "
    "entity/timestamp keys; a calibration file's learned share wins when larger",
    faults=("duplicated_rows",),
)
GATES = [DUPLICATES]
