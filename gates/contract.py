"""Great Expectations plumbing: load a suite from JSON, validate a frame, summarise failures.

Kept apart from the gates so the gate module reads as decisions, not GE set-up.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from gates.data_docs import GroupResults, for_docs, row_count_result  # noqa: E402

logging.getLogger("great_expectations").setLevel(logging.ERROR)

# GE fingerprints every in-memory frame under 1 GB with a full-row hash (a batch marker only,
# ~0.4 s per call on 1M rows). The run already records a content hash of its files (ingest),
# so the fingerprint is switched off here.
from great_expectations.execution_engine import pandas_execution_engine as _pandas_engine  # noqa: E402

_pandas_engine.HASH_THRESHOLD = 0


def load_suite(path: Path) -> gx.ExpectationSuite:
    """A suite JSON kept in the repo; the error names the file."""
    try:
        raw = json.loads(Path(path).read_text())
        return gx.ExpectationSuite(**raw)
    except FileNotFoundError:
        raise FileNotFoundError(f"expectation suite not found: {path}") from None
    except Exception as exc:
        raise ValueError(f"expectation suite {path} is not a valid GE suite: {exc}") from None


@dataclass
class ExpectationFailure:
    expectation: str
    column: str | None
    kwargs: dict[str, Any]
    observed: Any = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    unexpected_sample: list[Any] = field(default_factory=list)
    exception: str | None = None
    missing_columns: list[str] = field(default_factory=list)  # column-set checks, MISSING_COLUMN
    unexpected_columns: list[str] = field(default_factory=list)
    not_evaluated: int = 0  # MISSING_COLUMN: expectations skipped because their column is absent

    def describe(self) -> str:
        if self.expectation == MISSING_COLUMN:
            return (f"column(s) {_names(self.missing_columns)} missing: {self.not_evaluated} "
                    f"expectation(s) on them not evaluated")
        where = f"column {self.column!r}: " if self.column else ""
        what = self.expectation.removeprefix("expect_").replace("_", " ")
        parts = [f"{where}{what}"]
        if self.exception:
            parts.append(f"raised {self.exception}")
        if self.missing_columns or self.unexpected_columns:
            if self.missing_columns:
                parts.append(f"missing {_names(self.missing_columns)}")
            if self.unexpected_columns:
                parts.append(f"unexpected {_names(self.unexpected_columns)}")
            return ", ".join(parts)
        if self.unexpected_count:
            parts.append(f"{self.unexpected_count} unexpected ({self.unexpected_percent:.2f}%)")
        if self.unexpected_sample:
            parts.append(f"e.g. {self.unexpected_sample[:5]!r}")
        elif self.observed is not None and not self.unexpected_count:
            parts.append(f"observed {_short(self.observed)}")
        return ", ".join(parts)


# Not a GE expectation: the per-column expectations of a column the partition does not have,
# reported as one finding instead of GE's raw errors ("list index out of range").
MISSING_COLUMN = "missing_column"


def _short(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _names(columns: list[Any], limit: int = 30) -> str:
    """Column names in full (each a short repr), so a renamed or dropped column is named."""
    shown = [_short(str(c), 60) for c in columns[:limit]]
    more = f" (+{len(columns) - limit} more)" if len(columns) > limit else ""
    return "[" + ", ".join(shown) + "]" + more


_local = threading.local()


def _batch_definition() -> Any:
    """One ephemeral context per thread, reused: partitions validate in parallel threads."""
    if not hasattr(_local, "batch_definition"):
        for name in ("great_expectations", "great_expectations.data_context.types.base"):
            logging.getLogger(name).setLevel(logging.ERROR)
        context = gx.get_context(mode="ephemeral")
        try:
            context.variables.progress_bars = {"globally": False}
        except Exception:  # noqa: BLE001 - progress bars are cosmetic
            pass
        source = context.data_sources.add_pandas("frame_source")
        asset = source.add_dataframe_asset(name="frame")
        _local.batch_definition = asset.add_batch_definition_whole_dataframe("whole")
    return _local.batch_definition


def _failure(item: Any, unexpected_samples: int) -> ExpectationFailure:
    config = item.expectation_config
    res = item.result or {}
    info = item.exception_info or {}
    exc_message = info.get("exception_message") if isinstance(info, dict) else None
    mismatched = (res.get("details") or {}).get("mismatched") if isinstance(res, dict) else None
    if not isinstance(mismatched, dict):  # expect_table_columns_to_match_set's missing/unexpected
        mismatched = {}
    return ExpectationFailure(
        expectation=config.type,
        column=config.kwargs.get("column"),
        kwargs={k: v for k, v in config.kwargs.items() if k not in ("batch_id",)},
        observed=res.get("observed_value"),
        unexpected_count=res.get("unexpected_count"),
        unexpected_percent=res.get("unexpected_percent"),
        unexpected_sample=list(res.get("partial_unexpected_list") or [])[:unexpected_samples],
        exception=exc_message,
        missing_columns=[str(c) for c in mismatched.get("missing") or []],
        unexpected_columns=[str(c) for c in mismatched.get("unexpected") or []],
    )


# --------------------------------------------------------------------------- window validation
#
# GE costs ~0.1 s of fixed overhead per validation, so 30 partitions validated one by one cost
# seconds before a row is read. Instead the window is validated once per schema (partitions
# with the same columns and dtypes are concatenated), and failures are attributed to partitions:
# - schema expectations (column set, types) hold for every partition of a schema group;
# - row-count expectations are per partition by nature: GE checks a frame of row counts;
# - column-map expectations (not null, between, in set, ...) come back with COMPLETE results:
#   their unexpected row indices are mapped to partitions, so each partition gets its own
#   counts, samples and `mostly` verdict (a window that passes `mostly` can hide a bad day);
# - any other failing expectation is re-validated per partition (rare: only when it fails).

SCHEMA_TYPES = {"expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list",
                "expect_column_to_exist", "expect_table_column_count_to_equal",
                "expect_table_column_count_to_be_between", "expect_column_values_to_be_of_type",
                "expect_column_values_to_be_in_type_list"}
ROW_COUNT_TYPES = {"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"}


def _is_map(expectation: Any) -> bool:
    from great_expectations.expectations.expectation import ColumnMapExpectation

    return isinstance(expectation, ColumnMapExpectation) and expectation.expectation_type not in SCHEMA_TYPES


@dataclass
class WindowValidation:
    """Per-partition failures of one suite over a window, what it cost, and GE's results."""

    failures: dict[str, list[ExpectationFailure]]
    expectations_evaluated: int
    ge_calls: int
    ge_seconds: float
    groups: list[GroupResults] = field(default_factory=list)
    ge_reruns: int = 0  # of the calls: columns validated again to name their unexpected rows


def _suite(expectations: list[Any], name: str = "part") -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name=name, expectations=[e.copy() if hasattr(e, "copy") else e
                                                        for e in expectations])


def _validate(frame: pd.DataFrame, expectations: list[Any], result_format: dict) -> list[Any]:
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
    _local.configurations = {}
    try:
        return list(batch.validate(_suite(expectations), result_format=result_format).results)
    finally:
        _local.configurations = None


def _memoise_expectation_configuration() -> None:
    """GE rebuilds an expectation's configuration (a pydantic dump) some 90 times while it
    validates it: a quarter of the contract's time at 1M rows. Inside `_validate` the suite's
    expectations are fresh copies that nothing mutates, so there each builds it once; anywhere
    else (no memo on the thread) GE's property runs as written."""
    from great_expectations.expectations.expectation import Expectation

    built = Expectation.__dict__["configuration"]
    if getattr(built.fget, "memoised", False):
        return

    def configuration(self: Any) -> Any:
        memo = getattr(_local, "configurations", None)
        if memo is None:
            return built.fget(self)
        hit = memo.get(id(self))
        if hit is None or hit[0] is not self:  # the pair holds `self`, so its id is not reused
            hit = memo[id(self)] = (self, built.fget(self))
        return hit[1]

    configuration.memoised = True  # type: ignore[attr-defined]
    Expectation.configuration = property(configuration, doc=built.__doc__)


_memoise_expectation_configuration()


def _schema_key(frame: pd.DataFrame) -> tuple:
    return tuple((str(c), str(t)) for c, t in frame.dtypes.items())


def merge_validations(parts: list[WindowValidation]) -> WindowValidation:
    """One window's validation from the validations of its disjoint groups of partitions."""
    failures: dict[str, list[ExpectationFailure]] = {}
    for part in parts:
        failures.update(part.failures)
    return WindowValidation(failures, sum(p.expectations_evaluated for p in parts),
                            sum(p.ge_calls for p in parts), sum(p.ge_seconds for p in parts),
                            [g for p in parts for g in p.groups], sum(p.ge_reruns for p in parts))


def validate_partitions(suite: gx.ExpectationSuite, partitions: dict[str, pd.DataFrame],
                        unexpected_samples: int = 5, concatenated: pd.DataFrame | None = None) -> WindowValidation:
    """Validate every partition against `suite` with a few GE calls; failures keyed by partition.

    `concatenated`: the partitions, in order, already as one frame (ingest's window): a single
    schema group is then validated on it instead of on a concatenated copy of the whole window."""
    import time

    started = time.perf_counter()
    calls = reruns = 0
    failures: dict[str, list[ExpectationFailure]] = {name: [] for name in partitions}
    expectations = list(suite.expectations)
    row_count = [e for e in expectations if e.expectation_type in ROW_COUNT_TYPES]
    rest = [e for e in expectations if e.expectation_type not in ROW_COUNT_TYPES]
    summary = {"result_format": "SUMMARY", "partial_unexpected_count": unexpected_samples}
    # BASIC counts unexpected rows; COMPLETE also lists their row indices (and at most 200 values),
    # what maps them to partitions. It costs a third more on clean rows, so it runs again only
    # for the column-map expectations that found unexpected rows.
    basic = {"result_format": "BASIC", "partial_unexpected_count": unexpected_samples}
    complete = {"result_format": "COMPLETE", "partial_unexpected_count": unexpected_samples,
                "return_unexpected_index_query": False}
    names = list(partitions)
    groups_seen: list[GroupResults] = []
    row_count_failed: list[tuple[Any, set[str]]] = []  # (expectation, partitions outside its range)

    # Row counts: one GE call on a frame with one row per partition.
    if row_count:
        counts = pd.DataFrame({"rows": [len(partitions[n]) for n in names]})
        for exp in row_count:
            kw = exp.configuration.kwargs if hasattr(exp, "configuration") else {}
            lo = getattr(exp, "min_value", None) if exp.expectation_type.endswith("between") else exp.value
            hi = getattr(exp, "max_value", None) if exp.expectation_type.endswith("between") else exp.value
            check = gx.expectations.ExpectColumnValuesToBeBetween(column="rows", min_value=lo, max_value=hi)
            (item,) = _validate(counts, [check], {"result_format": "COMPLETE"})
            calls += 1
            row_count_failed.append((exp, {names[int(i)] for i in
                                           (item.result or {}).get("unexpected_index_list") or []}))
            for i in (item.result or {}).get("unexpected_index_list") or []:
                failures[names[int(i)]].append(ExpectationFailure(
                    expectation=exp.expectation_type, column=None, kwargs=dict(kw),
                    observed=f"{len(partitions[names[int(i)]])} rows, expected {lo}..{hi}"))

    groups: dict[tuple, list[str]] = {}
    for name in names:
        groups.setdefault(_schema_key(partitions[name]), []).append(name)
    evaluated = len(row_count) * len(names)
    for members in groups.values():
        frames = [partitions[n] for n in members]
        if concatenated is not None and members == names and len(concatenated) == sum(map(len, frames)):
            window = concatenated.reset_index(drop=True)  # copy-on-write: no copy of the rows
        elif len(frames) == 1:
            window = frames[0].reset_index(drop=True)
        else:
            window = pd.concat(frames, ignore_index=True)
        offsets = np.cumsum([0] + [len(f) for f in frames])
        # A column the group does not have: its expectations (other than "column to exist") are
        # not run, where GE would raise; one finding names the missing columns instead.
        absent = [e for e in rest if e.expectation_type != "expect_column_to_exist"
                  and isinstance(getattr(e, "column", None), str) and e.column not in window.columns]
        skipped = {id(e) for e in absent}
        checks = [e for e in rest if id(e) not in skipped]
        if absent:
            missing = list(dict.fromkeys(e.column for e in absent))
            for name in members:
                failures[name].append(ExpectationFailure(
                    expectation=MISSING_COLUMN, column=None, kwargs={"columns": missing},
                    missing_columns=missing, not_evaluated=len(absent)))
        results, n_calls, n_reruns = _validate_by_column(window, checks, basic, complete)
        calls += n_calls
        reruns += n_reruns
        evaluated += len(checks) * len(members)
        groups_seen.append(GroupResults(
            suite.name, list(members),
            [row_count_result(exp, {n: len(partitions[n]) for n in members}, bad)
             for exp, bad in row_count_failed] + [for_docs(item) for item in results]))
        attribute, per_partition = [], []
        for item in results:  # GE does not keep the suite's order: read each result's own config
            exp = item.expectation_config.to_domain_obj()
            if exp.expectation_type in SCHEMA_TYPES or item.exception_info and _raised(item):
                if not item.success:
                    for name in members:
                        failures[name].append(_failure(item, unexpected_samples))
            elif _is_map(exp):
                if not item.success or (getattr(exp, "mostly", 1) or 1) < 1:
                    attribute.append((exp, item))
            elif not item.success:
                per_partition.append(exp)
        for exp, item in attribute:
            for name, failure in _attribute(exp, item, window, offsets, members,
                                            unexpected_samples).items():
                failures[name].append(failure)
        if per_partition:
            for name in members:
                for item in _validate(partitions[name], per_partition, summary):
                    if not item.success:
                        failures[name].append(_failure(item, unexpected_samples))
                calls += 1
    return WindowValidation({n: f for n, f in failures.items() if f}, evaluated, calls,
                            time.perf_counter() - started, groups_seen, reruns)


def _validate_by_column(window: pd.DataFrame, expectations: list[Any], counts: dict, rows: dict,
                        workers: int = 2) -> tuple[list[Any], int, int]:
    """Validate column-map expectations on one-column frames, the rest on the whole window.

    GE filters the whole domain frame (every column) for each column-map expectation, so on a
    wide window the cost grows with columns x expectations; on one-column frames it grows with
    expectations. The per-column calls run in threads (each has its own GE context).
    A column is validated with the `counts` result format, and again with `rows` (the one that
    names the unexpected rows) only when one of its expectations found unexpected rows.
    """
    from concurrent.futures import ThreadPoolExecutor

    by_column: dict[str, list[Any]] = {}
    whole: list[Any] = []
    for exp in expectations:
        column = getattr(exp, "column", None)
        if _is_map(exp) and column in window.columns:
            by_column.setdefault(column, []).append(exp)
        else:
            whole.append(exp)
    jobs = [(window, whole, rows)] if whole else []
    jobs += [(window[[column]], exps, counts) for column, exps in by_column.items()]

    def run(job: tuple) -> tuple[list[Any], int]:
        frame, exps, result_format = job
        results = _validate(frame, exps, result_format)
        if result_format is rows or not any((item.result or {}).get("unexpected_count") for item in results):
            return results, 1
        return _validate(frame, exps, rows), 2

    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(run, jobs))
    return ([item for part, _ in parts for item in part], sum(calls for _, calls in parts),
            sum(calls - 1 for _, calls in parts))


def _raised(item: Any) -> bool:
    info = item.exception_info or {}
    if isinstance(info, dict) and "raised_exception" in info:
        return bool(info.get("raised_exception"))
    return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values()) \
        if isinstance(info, dict) else False


def _attribute(exp: Any, item: Any, window: pd.DataFrame, offsets: np.ndarray, members: list[str],
               samples: int) -> dict[str, ExpectationFailure]:
    """Map a column-map expectation's unexpected rows to partitions and judge each with `mostly`."""
    res = item.result or {}
    index = np.asarray(res.get("unexpected_index_list") or [], dtype="int64")
    values = list(res.get("unexpected_list") or [])
    if not len(index):
        return {}
    owner = np.searchsorted(offsets, index, side="right") - 1
    column = exp.column if hasattr(exp, "column") else None
    mostly = getattr(exp, "mostly", 1) or 1
    null_counts = None
    if column is not None and column in window and exp.expectation_type != "expect_column_values_to_not_be_null":
        null_counts = np.add.reduceat(window[column].isna().to_numpy(), offsets[:-1]) if len(window) else None
    out: dict[str, ExpectationFailure] = {}
    for k in np.unique(owner):
        name = members[int(k)]
        rows = int(offsets[k + 1] - offsets[k])
        denominator = rows - (int(null_counts[k]) if null_counts is not None else 0)
        count = int((owner == k).sum())
        share = count / denominator if denominator else 1.0
        if share <= 1 - mostly + 1e-12:
            continue
        positions = np.flatnonzero(owner == k)[:samples]
        sample = [values[p] for p in positions if p < len(values)]
        if not sample:
            sample = window[column].iloc[index[owner == k][:samples]].tolist() if column in window else []
        config = item.expectation_config
        out[name] = ExpectationFailure(
            expectation=config.type, column=column,
            kwargs={k2: v for k2, v in config.kwargs.items() if k2 != "batch_id"},
            unexpected_count=count, unexpected_percent=100.0 * share, unexpected_sample=sample)
    return out
