"""Config against data, before any work: does this config fit the data it points at?

Run by `gates validate-config FILE --data` and at the start of every `gates run` (in the CLI,
before the Prefect API starts, and again in the flow, for scheduled runs), before training. A
config that names a column the data does not have, or gives a column a role its type cannot play,
is a configuration error (exit 2, the field, the column and what exists), not a data fault
blamed on a gate ("label shift — gate crashed: ValueError").

Where the line is drawn: the expectation suite is the data's declared schema. A column the config
names that is missing from the newest partition but declared by the suite is the data breaking its
contract: the contract gate blocks it (exit 1), named by partition. A column neither the data nor
the suite has is a config error. Likewise a type: the suite's declared type is checked against the
column's role here; the data's type against the suite is the contract's job. Problems of the rows
(labels, event times, infinities) are the partition gate's.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gates.config import ConfigError, PipelineConfig, Task
from gates.ingest import discover, normalise_labels, read_file

PARTITIONS_TRIED = 5  # newest partitions tried until one reads (an unreadable one is the gate's)
NUMERIC_SUITE_TYPES = ("int", "uint", "float", "bool", "Int", "Float", "UInt", "boolean")


@dataclass
class SuiteSchema:
    """The columns and declared types of an expectation suite."""

    columns: set[str] = field(default_factory=set)
    types: dict[str, str] = field(default_factory=dict)


@dataclass
class PreflightResult:
    partition: str | None = None  # the partition whose schema was checked
    file: str | None = None
    columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def suite_schema(path: Path) -> SuiteSchema:
    raw = json.loads(Path(path).read_text())
    schema = SuiteSchema()
    for exp in raw.get("expectations", []):
        kwargs = exp.get("kwargs", {})
        for key in ("column_set", "column_list"):
            schema.columns.update(kwargs.get(key) or [])
        if kwargs.get("column"):
            schema.columns.add(kwargs["column"])
            if exp.get("type") == "expect_column_values_to_be_of_type" and kwargs.get("type_"):
                schema.types[kwargs["column"]] = str(kwargs["type_"])
    return schema


def newest_partition(cfg: PipelineConfig, run_date: dt.date | None) -> tuple[dt.date, Path, pd.DataFrame] | None:
    """The newest partition (before the run date) with a file that reads, or None."""
    found = discover(Path(cfg.data.path), cfg.data.partition_key, cfg.data.format)
    days = sorted((d for d in found if run_date is None or d < run_date), reverse=True)
    for day in days[:PARTITIONS_TRIED]:
        for path in found[day]:
            try:
                frame = read_file(path, cfg.data.format)
            except Exception:  # noqa: BLE001 - an unreadable file is the partition gate's finding
                continue
            return day, path, normalise_labels(frame, cfg.data.target, cfg.task)
    return None


def _roles(cfg: PipelineConfig) -> list[tuple[str, str, str]]:
    """(config field, column, role) for every column the config names."""
    data, gates = cfg.data, cfg.gates
    roles = [("data.timestamp", data.timestamp, "timestamp"), ("data.target", data.target, "target")]
    if data.entity_id:
        roles.append(("data.entity_id", data.entity_id, "any"))
    roles += [("data.features.numeric", c, "numeric") for c in data.features.numeric]
    roles += [("data.features.categorical", c, "any") for c in data.features.categorical]
    roles += [("data.slices", c, "any") for c in data.slices]
    roles += [("data.serving_features", c, "any") for c in data.serving_features or []]
    roles += [("gates.serving_availability.feature_timestamps", c, "timestamp")
              for c in gates.serving_availability.feature_timestamps.values()]
    roles += [("gates.row_overlap.ignore_columns", c, "any") for c in gates.row_overlap.ignore_columns or []]
    return roles


def _dtype_problem(series: pd.Series, role: str, task: Task) -> str | None:
    dtype = series.dtype
    if role == "numeric" and not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
        return f"has type {dtype}, a numeric feature needs numbers (list it under categorical?)"
    if role == "timestamp" and not pd.api.types.is_datetime64_any_dtype(dtype):
        if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            return f"has type {dtype}, an event time needs timestamps"
        sample = series.dropna().head(1000)
        parsed = pd.to_datetime(sample, errors="coerce", utc=True, format="ISO8601")
        if len(sample) and parsed.isna().mean() > 0.5:
            return f"has type {dtype} and its values are not ISO timestamps (e.g. {sample.iloc[0]!r:.40})"
    if role == "target":
        if task is Task.REGRESSION and not pd.api.types.is_numeric_dtype(dtype):
            return f"has type {dtype}, a regression target needs numbers"
        if task is Task.CLASSIFICATION and not (pd.api.types.is_integer_dtype(dtype)
                                                or pd.api.types.is_bool_dtype(dtype)) \
                and series.notna().any():
            values = ", ".join(repr(v) for v in series.dropna().unique()[:3])
            return (f"has type {dtype} ({values}, …); a classification target needs integer labels "
                    "0/1 (or booleans)")
    return None


def _declared_problem(declared: str, role: str, task: Task) -> str | None:
    numeric = declared.startswith(NUMERIC_SUITE_TYPES)
    if role == "numeric" and not numeric:
        return f"is declared {declared!r} by the contract, a numeric feature needs numbers"
    if role == "timestamp" and not declared.startswith(("datetime", "Timestamp", "str")):
        return f"is declared {declared!r} by the contract, an event time needs timestamps"
    if role == "target" and task is Task.REGRESSION and not numeric:
        return f"is declared {declared!r} by the contract, a regression target needs numbers"
    return None


def check_run_date(cfg: PipelineConfig, run_date: dt.date) -> None:
    try:
        run_date - dt.timedelta(days=cfg.data.window_days + cfg.split.gap_days)
    except OverflowError:
        raise ConfigError(f"run date {run_date}: too early for a window of {cfg.data.window_days} "
                          "days") from None


def preflight(cfg: PipelineConfig, run_date: dt.date | None = None, source: str = "<config>",
              require_data: bool = False) -> PreflightResult:
    """Check the config against the suite and the newest partition; raise ConfigError listing
    every problem (field, column, what exists). With `require_data`, a window with no readable
    partition is an error too (validate-config --data); a run leaves that to the partition gate."""
    result = PreflightResult()
    if run_date is not None:
        check_run_date(cfg, run_date)
    problems: list[str] = []
    root = Path(cfg.data.path)
    if not root.is_dir():
        raise ConfigError(f"{source}: config does not fit the data\n  data.path: {root} is not a folder")
    try:
        schema = suite_schema(cfg.expectations)
    except FileNotFoundError:
        raise ConfigError(f"{source}: config does not fit the data\n  expectations: "
                          f"{cfg.expectations} not found") from None
    except (ValueError, OSError, AttributeError) as exc:
        raise ConfigError(f"{source}: config does not fit the data\n  expectations: "
                          f"{cfg.expectations} is not a suite JSON ({exc})") from None
    newest = newest_partition(cfg, run_date)
    if newest is None:
        where = f"under {root} (key {cfg.data.partition_key!r}, format {cfg.data.format.value})"
        if require_data:
            raise ConfigError(f"{source}: config does not fit the data\n  data.path: no readable "
                              f"partition {where} to check the config against")
        result.notes.append(f"no readable partition {where}: columns not checked")
        return result
    day, path, frame = newest
    result.partition, result.file, result.columns = day.isoformat(), str(path), list(frame.columns)
    where = f"partition {cfg.data.partition_key}={day.isoformat()} ({path.name})"
    for name, column, role in _roles(cfg):
        declared = schema.types.get(column)
        if column not in frame.columns:
            if column in schema.columns:
                continue  # declared by the contract: its absence is the contract gate's finding
            problems.append(f"{name}: column {column!r} is neither in the newest {where} nor in "
                            f"the contract {Path(cfg.expectations).name}; columns there: "
                            f"{', '.join(map(str, frame.columns))}")
            continue
        problem = (_declared_problem(declared, role, cfg.task) if declared
                   else _dtype_problem(frame[column], role, cfg.task))
        if problem is None and declared and role == "timestamp" and not declared.startswith("datetime"):
            problem = _dtype_problem(frame[column], role, cfg.task)  # declared text: are they times?
        if problem:
            problems.append(f"{name}: column {column!r} {problem} (newest {where})")
    if problems:
        raise ConfigError("\n  ".join([f"{source}: config does not fit the data", *problems]))
    return result
