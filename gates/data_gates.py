"""Data gates: partition completeness, the contract, drift against the champion, label shift,
and train-against-test drift within the run.

Importable without Prefect. Each gate takes what it needs and returns one GateResult.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from pydantic import Field

from gates import data_docs
from gates.config import MAX_ROWS, MAX_WINDOW_DAYS, Cadence, DataFormat, PipelineConfig
from gates.contract import WindowValidation, load_suite, merge_validations, validate_partitions
from gates.drift import FeatureDrift, compare_profiles, label_shift
from gates.ingest import Ingested, read_file
from gates.partition_rows import check_rows
from gates.registry import Cause, Gate
from gates.results import Family, GateResult, Severity, Status, judge
from gates.safety import plain
from gates.settings import GateSettings
from gates.split import Split



# --------------------------------------------------------------------------- settings


class ContractGate(GateSettings):
    """Great Expectations suite, validated per partition."""

    unexpected_samples: int = Field(5, ge=0, le=1000, description="Failing values shown per expectation.")
    data_docs: bool = Field(True, description="In a pipeline run, render the validation as GE Data "
                            "Docs (a static site logged to the MLflow run under gates/data_docs/, "
                            "linked from the report); never changes the verdict.")


class PartitionsGate(GateSettings):
    short_ratio: float = Field(
        0.5, gt=0, lt=1, description="A partition with fewer rows than this share of the "
        "trailing median is short."
    )
    max_lag_days: int = Field(
        1, ge=0, le=MAX_WINDOW_DAYS, description="The newest partition may be at most this many days before the run date."
    )
    min_rows: int = Field(1, ge=0, le=MAX_ROWS, description="A partition with fewer rows is empty.")
    trailing_partitions: int = Field(
        7, ge=1, le=MAX_WINDOW_DAYS,
        description="Partitions before a partition whose median row count it is judged by."
    )
    workers: int = Field(4, ge=1, le=64, description="Partitions read and validated in parallel.")
    period_tolerance_minutes: float = Field(
        0.0, ge=0, le=10_080, description="An event time may fall this far outside its partition's "
        "period (daily: the partition's day, weekly: the 7 days from it, UTC) and still count as "
        "inside; rows further out block, named by partition and count.")
    future_tolerance_minutes: float = Field(
        5.0, ge=0, le=10_080, description="An event time may lie this far after the run's "
        "reference instant (clock skew): the earlier of the wall clock and the run date's start "
        "(00:00 UTC, where the window ends); rows further in the future block, named by partition "
        "and count.")


class DriftGate(GateSettings):
    severity: Severity = Severity.BLOCK
    psi_warn: float = 0.1
    psi_block: float = 0.25
    ks_warn: float = 0.1
    ks_block: float = 0.3
    js_warn: float = 0.05
    js_block: float = 0.2
    null_rate_warn: float = 0.02
    null_rate_block: float = 0.1
    new_category_share_block: float = Field(
        0.01, description="Share of rows in categories the reference never saw."
    )
    bins: int = Field(10, ge=2, le=100)
    sample_rows: int = Field(200_000, ge=1000, le=MAX_ROWS, description="Rows sampled for KS statistics.")


class LabelShiftGate(GateSettings):
    warn: float = Field(0.02, description="Absolute change in the positive rate (or mean target).")
    block: float = Field(0.08, description="Absolute change that blocks.")


# --------------------------------------------------------------------------- partitions


def _content_digest(frame: pd.DataFrame) -> str:
    """Order-free digest of a partition's rows: equal for a copy of the same data."""
    if frame.empty:
        return "empty"
    hashes = np.sort(pd.util.hash_pandas_object(frame, index=False).to_numpy())
    return hashlib.sha256(hashes.tobytes()).hexdigest()


def _overlapping_files(ingested: Ingested, day: dt.date) -> list[str]:
    """Files of one partition that share rows with an earlier file of the same partition."""
    frames = ingested.frames.get(day, [])
    paths = [p for p in ingested.files.get(day, []) if p not in ingested.errors]
    seen: set[int] = set()
    overlapping = []
    for path, frame in zip(paths, frames):
        rows = set(pd.util.hash_pandas_object(frame, index=False).tolist())
        shared = len(rows & seen)
        if shared:
            overlapping.append(f"{path.name} ({shared} rows also in another file)")
        seen |= rows
    return overlapping


def check_partitions(ingested: Ingested, settings: PartitionsGate,
                     cadence: Cadence = Cadence.DAILY, cfg: PipelineConfig | None = None) -> GateResult:
    """Every expected partition present, readable, non-empty, unique, of usual size and fresh;
    with `cfg`, its rows too (event times in the partition's period, labels, finite numbers:
    gates.partition_rows)."""
    failures: list[str] = []
    expected = ingested.expected
    missing = [d for d in expected if d not in ingested.files]
    if missing:
        failures.append(f"missing partitions: {_dates(missing)}")
    for path, reason in sorted(ingested.bad_entries.items()):
        failures.append(f"bad partition folder {path}: {reason}")
    for path, error in sorted(ingested.errors.items()):
        failures.append(f"unreadable file {path}: {error}")
    # A folder with no data files (a writer that created it and died) is empty, not present.
    no_files = [d for d in expected if d in ingested.files and not ingested.files[d]]
    if no_files:
        others = {d.isoformat(): ingested.ignored[d] for d in no_files if ingested.ignored.get(d)}
        failures.append(f"empty partitions (a folder without data files): {_dates(no_files)}"
                        + (f"; other files there: {others}" if others else ""))
    readable = [d for d in expected if ingested.frames.get(d)]
    rows = {d: ingested.rows(d) for d in readable}
    empty = [d for d in readable if rows[d] < settings.min_rows]
    if empty:
        failures.append(f"empty partitions (< {settings.min_rows} rows): {_dates(empty)}")

    # Duplicated: two files of one partition sharing rows, or a partition equal to another date's.
    overlaps = {d.isoformat(): found for d in readable if len(ingested.frames[d]) > 1
                for found in [_overlapping_files(ingested, d)] if found}
    for day, found in overlaps.items():
        failures.append(f"duplicated rows in partition {day}: {', '.join(found)}")
    # Only partitions with equal row counts can be copies: hash those alone (cheap when clean).
    by_rows: dict[int, list[dt.date]] = {}
    for d in readable:
        if d not in empty:
            by_rows.setdefault(rows[d], []).append(d)
    digests: dict[str, list[str]] = {}
    for same in (days for days in by_rows.values() if len(days) > 1):
        for d in same:
            digests.setdefault(_content_digest(ingested.partition_frame(d)), []).append(d.isoformat())
    copies = [days for days in digests.values() if len(days) > 1]
    for days in copies:
        failures.append(f"duplicated partitions with identical content: {', '.join(days)}")

    # Short: far fewer rows than the trailing median (weekends are ~25% quieter, not 50%).
    short, short_detail = [], {}
    usable = [d for d in readable if d not in empty]
    for i, d in enumerate(usable):
        trailing = [rows[x] for x in usable[max(0, i - settings.trailing_partitions):i]]
        if len(trailing) < 3:
            trailing = [rows[x] for x in usable if x != d]
        if not trailing:
            continue
        median = float(np.median(trailing))
        if rows[d] < settings.short_ratio * median:
            short.append(d)
            short_detail[d.isoformat()] = {"rows": rows[d], "trailing_median": median}
    if short:
        failures.append("short partitions (< {:.0%} of the trailing median): {}".format(
            settings.short_ratio,
            ", ".join(f"{k} ({v['rows']} rows vs median {v['trailing_median']:.0f})"
                      for k, v in list(short_detail.items())[:6])))

    # Stale: the newest usable partition is older than the allowed lag before the run date.
    # Judged at the cadence: the newest expected partition (yesterday, a week ago, last month's
    # first day) is on time; max_lag_days more are tolerated.
    newest = max(usable) if usable else None
    lag = (ingested.run_date - newest).days if newest else None
    on_time = (ingested.run_date - expected[-1]).days if expected else 1
    allowed = settings.max_lag_days + on_time - 1
    if newest is None:
        failures.append("stale data: no usable partition in the window")
    elif lag > allowed:
        failures.append(f"stale data: newest partition {newest.isoformat()} is {lag} days before the "
                        f"run date {ingested.run_date.isoformat()} (allowed: {allowed})")
    total = sum(rows.values())
    try:
        in_rows = check_rows(ingested, cfg, settings) if cfg is not None else None
    except Exception as exc:  # noqa: BLE001 - fail closed, but keep the findings above
        in_rows = None
        failures.append(f"row checks crashed: {type(exc).__name__}: {exc}")
    if in_rows is not None:
        failures += in_rows.failures
    return judge(
        "partitions",
        Family.DATA,
        failures=failures,
        measured={
            "expected": len(expected),
            "present": len(expected) - len(missing),
            "missing": len(missing),
            "empty": len(empty) + len(no_files),
            "bad_partition_folders": len(ingested.bad_entries),
            "unreadable_files": len(ingested.errors),
            "duplicated": len(overlaps) + sum(len(c) for c in copies),
            "short": len(short),
            "lag_days": lag if lag is not None else -1,
            "rows": total,
            **(in_rows.measured if in_rows is not None else {}),
        },
        threshold={"min_rows": settings.min_rows, "short_ratio": settings.short_ratio,
                   "trailing_partitions": settings.trailing_partitions,
                   "max_lag_days": settings.max_lag_days,
                   "period_tolerance_minutes": settings.period_tolerance_minutes,
                   "future_tolerance_minutes": settings.future_tolerance_minutes},
        hint=PARTITIONS.hint,
        ok_summary=f"{len(expected)} partitions present, {total} rows, newest {lag} day(s) old",
        details={"missing": [d.isoformat() for d in missing],
                 "empty": [d.isoformat() for d in [*no_files, *empty]],
                 "bad_partition_folders": {str(p): r for p, r in ingested.bad_entries.items()},
                 "rows": in_rows.details if in_rows is not None else {},
                 "unreadable": {str(p): e for p, e in ingested.errors.items()},
                 "duplicated": {"overlapping_files": overlaps, "identical_partitions": copies},
                 "short": short_detail,
                 "newest": newest.isoformat() if newest else None},
    )


# --------------------------------------------------------------------------- contract


def check_contract(ingested: Ingested, cfg: PipelineConfig, settings: ContractGate,
                   contract_validations: Callable[[], list[WindowValidation]] | None = None,
                   workdir: str | Path | None = None) -> GateResult:
    """The Great Expectations suite, judged per partition so failures name the partition.

    Empty partitions are left to the partition gate. The window is validated with a few GE calls
    (see gates.contract.validate_partitions), not one call per partition; or, when the run spread
    that work over Dask workers (`contract_validations`), their validations are merged here.
    In a pipeline run (`workdir`, the run's folder) GE's Data Docs of the validation are built
    there (`settings.data_docs`), after the verdict and without changing it.
    """
    days = contract_days(ingested, cfg)
    if contract_validations is not None:
        outcome = merge_validations(contract_validations())
    else:
        outcome = validate_partitions(load_suite(cfg.expectations),
                                      {d.isoformat(): ingested.partition_frame(d) for d in days},
                                      settings.unexpected_samples, concatenated=window_of(ingested, days))
    result = contract_result(outcome, days, cfg, settings)
    if settings.data_docs and workdir is not None:
        add_data_docs(result, outcome, Path(workdir) / "data_docs", cfg.name)
    return result


def add_data_docs(result: GateResult, outcome: WindowValidation, folder: Path, run_name: str) -> None:
    """GE's Data Docs of `outcome` in `folder`: `details["data_docs"]` names their index.html, or
    `details["data_docs_error"]` says why they could not be built; the status is not touched."""
    started = time.perf_counter()
    try:
        result.details["data_docs"] = str(data_docs.build(outcome.groups, folder, run_name))
    except Exception as exc:  # noqa: BLE001 - the docs show the verdict, they never make it
        result.details["data_docs_error"] = plain(f"{type(exc).__name__}: {exc}", 500)
    result.measured["data_docs_seconds"] = round(time.perf_counter() - started, 4)


def window_of(ingested: Ingested, days: list[dt.date]) -> pd.DataFrame | None:
    """Ingest's one window frame when it is exactly `days`' partitions in order (the days left
    out hold no rows), so the contract validates it without concatenating a copy."""
    window = ingested.window
    if window is None or not ingested.views or sum(ingested.rows(d) for d in days) != len(window):
        return None
    return window


def contract_days(ingested: Ingested, cfg: PipelineConfig) -> list[dt.date]:
    """The partitions the contract judges: readable and non-empty (empty ones are the partition
    gate's finding)."""
    min_rows = max(1, cfg.gates.partitions.min_rows)
    days = [d for d in ingested.expected if ingested.frames.get(d) and ingested.rows(d) >= min_rows]
    if not days:
        raise FileNotFoundError(f"no readable partitions under {cfg.data.path} to validate")
    return days


def validate_partition_files(files: dict[str, list[str]], fmt: str, suite_path: str,
                             unexpected_samples: int) -> WindowValidation:
    """Read a group of partitions from their files and validate them: a Dask worker's share of
    the contract, so only file paths travel to the worker, never frames."""
    frames = {}
    for day, paths in files.items():
        parts = [read_file(Path(p), DataFormat(fmt)) for p in paths]
        frames[day] = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    return validate_partitions(load_suite(Path(suite_path)), frames, unexpected_samples)


def contract_result(outcome: WindowValidation, days: list[dt.date], cfg: PipelineConfig,
                    settings: ContractGate) -> GateResult:
    """Judge a window's validation: group identical problems, name the partitions."""
    broken = {day: [f.describe() for f in found] for day, found in sorted(outcome.failures.items())}
    failures: list[str] = []
    # Group identical problems across partitions so a schema change reads as one finding.
    by_problem: dict[str, list[str]] = {}
    for day, problems in broken.items():
        for problem in problems:
            key = problem.split(", e.g.")[0].split(", observed")[0].split(", raised")[0]
            key = key.split(", ")[0] if " unexpected (" in key else key
            by_problem.setdefault(key, []).append(day)
    for problem, problem_days in by_problem.items():
        example = next(p for p in broken[problem_days[0]] if p.startswith(problem))
        failures.append(f"{example} in {len(problem_days)} partition(s): {_shorten(problem_days)}")
    return judge(
        "contract",
        Family.DATA,
        failures=failures,
        measured={"partitions_validated": len(days), "partitions_failed": len(broken),
                  "expectations_evaluated": outcome.expectations_evaluated,
                  "ge_calls": outcome.ge_calls, "ge_reruns": outcome.ge_reruns, "ge_seconds": round(outcome.ge_seconds, 4)},
        threshold={"suite": str(cfg.expectations)},
        hint=CONTRACT.hint,
        ok_summary=f"suite {cfg.expectations.name}: {len(days)} partitions conform",
        details={"failures_by_partition": broken},
    )


# --------------------------------------------------------------------------- drift


def _drift_result(name: str, drifts: list[FeatureDrift], settings: DriftGate, compared: str,
                  extra_measures: dict | None = None, current: dict | None = None,
                  reference: dict | None = None, leading_warnings: list[str] = ()) -> GateResult:
    failures = [fd.describe() for fd in drifts if fd.level == "block"]
    warnings = [*leading_warnings, *(fd.describe() for fd in drifts if fd.level == "warn")]
    measured: dict[str, Any] = {"features": len(drifts),
                                "features_blocking": len(failures), "features_warning": len(warnings)}
    for fd in drifts:
        for stat, value in fd.stats.items():
            if stat in ("psi", "ks", "js", "null_rate_change", "new_category_share") and value is not None \
                    and np.isfinite(value):
                measured[f"{fd.feature}.{stat}"] = round(float(value), 5)
    measured.update(extra_measures or {})
    drifted = {fd.feature: _plot_data(fd, reference, current)
               for fd in drifts if fd.level != "pass" and reference and current}
    return judge(
        name,
        Family.DATA,
        failures=failures,
        warnings=warnings,
        measured=measured,
        threshold={k: getattr(settings, k) for k in (
            "psi_warn", "psi_block", "ks_warn", "ks_block", "js_warn", "js_block", "null_rate_warn",
            "null_rate_block", "new_category_share_block", "bins", "sample_rows")},
        hint=DRIFT.hint,
        ok_summary=f"{len(drifts)} features within the drift thresholds ({compared})",
        details={"compared": compared,
                 "features": {fd.feature: {"kind": fd.kind, "level": fd.level, "stats": fd.stats,
                                           "reasons": fd.block + fd.warn,
                                           "new_categories": fd.new_categories,
                                           "vanished_categories": fd.vanished_categories}
                              for fd in drifts},
                 "plots": drifted},
    )


def _plot_data(fd: FeatureDrift, reference: dict, current: dict) -> dict[str, Any]:
    """What a reference-against-current plot of one feature needs (small: bins or categories)."""
    ref = reference.get(fd.kind, {}).get(fd.feature) or {}
    cur = current.get(fd.kind, {}).get(fd.feature) or {}
    if fd.kind == "numeric":
        return {"kind": "numeric", "edges": ref.get("edges", []), "reference": ref.get("counts", []),
                "current": cur.get("counts_on_reference", [])}
    keys = sorted(set(ref.get("counts", {})) | set(cur.get("counts", {})))
    return {"kind": "categorical", "categories": keys,
            "reference": [ref.get("counts", {}).get(k, 0) for k in keys],
            "current": [cur.get("counts", {}).get(k, 0) for k in keys]}


def _first_run(name: str, note: str) -> GateResult:
    return GateResult(name=name, family=Family.DATA, status="pass", summary=note,
                      details={"first_run": True})


def _reference_note(notes: list[str]) -> str:
    stated = [n.removeprefix("drift: ") for n in notes if n.startswith("drift: ")]
    return (stated[-1] if stated else "first run: no champion profile to compare with") + \
        " (not measured: the stated first-run rule)"


def _no_profile(profile: dict | None, reference: dict | None, reference_error: str | None) -> None:
    if profile is None:
        raise RuntimeError(f"no profile of this run's data: {reference_error or 'not computed'}")
    if reference is None and reference_error:
        raise RuntimeError(f"the champion's reference profile could not be loaded: {reference_error}"
                           " (disable gates.drift for one run to re-baseline)")


def check_drift(profile: dict | None, reference: dict | None, settings: DriftGate,
                reference_error: str | None = None, notes: list[str] = (),
                cfg: PipelineConfig | None = None, run_date: dt.date | None = None) -> GateResult:
    """Each feature of this window (`profile`) against the champion run's profile (`reference`);
    `notes` say why there is no reference (a first run), `reference_error` why it failed to load.
    With `cfg.calibration`, a statistic inside its natural envelope for `run_date` only warns."""
    _no_profile(profile, reference, reference_error)
    if reference is None:
        return _first_run("drift", _reference_note(notes))
    calibration = _calibration(cfg, run_date, reference, profile)  # a broken file raises: error (fail closed)
    window = reference.get("window") or ["?", "?"]
    drifts = compare_profiles(reference, profile, settings, calibration)
    result = _drift_result("drift", drifts, settings, f"champion profile of {window[0]}..{window[1]}",
                           current=profile, reference=reference)
    return _state_calibration(result, calibration, cfg)


def _calibration(cfg: PipelineConfig | None, run_date: dt.date | None, reference: dict | None = None,
                 profile: dict | None = None) -> dict | None:
    """The natural envelope (gates.calibration) that applies on this run date, if configured, for
    a champion whose window is as many retraining steps older than this run's as measured."""
    if cfg is None or run_date is None:
        return None
    from gates.calibration import for_run, lag_steps, load as load_calibration

    loaded = load_calibration(cfg)
    if not loaded:
        return None
    ends = [((p or {}).get("window") or [None, None])[1] for p in (reference, profile)]
    return for_run(loaded, run_date, lag_steps(ends[0], ends[1], loaded.get("every", "")))


def _state_calibration(result: GateResult, calibration: dict | None, cfg) -> GateResult:
    """Say whether the natural envelope from history applied (and which file), or not."""
    result.measured["calibrated"] = calibration is not None
    if calibration is None:
        result.threshold["calibration"] = "none (uncalibrated: the fixed thresholds apply)"
        result.summary += " [uncalibrated]"
    else:
        result.threshold["calibration"] = (f"{cfg.calibration}: {calibration['rule']}, history "
                                           f"{calibration['history'][0]}..{calibration['history'][1]} "
                                           f"every {calibration['every']}")
        lag = calibration.get("lag")
        if lag:
            result.measured["champion_age_steps"] = lag["steps"]
            said = (f"champion window {lag['steps']} steps older: natural ranges of drift up to "
                    f"{min(lag['steps'], lag['calibrated_up_to'])} steps apart")
            result.threshold["calibration"] += f"; {said}"
            if result.status is not Status.PASS:
                result.summary += f" [{said}]"
    return result


def check_label_shift(profile: dict | None, reference: dict | None, cfg: PipelineConfig,
                      settings: LabelShiftGate, reference_error: str | None = None,
                      notes: list[str] = (), run_date: dt.date | None = None) -> GateResult:
    """The label's distribution against the champion's: positive rate (or standardised mean);
    with `cfg.calibration`, a change inside the natural envelope for `run_date` only warns."""
    _no_profile(profile, reference, reference_error)
    if reference is None:
        return _first_run("label_shift", _reference_note(notes))
    calibration = _calibration(cfg, run_date, reference, profile)
    shift = label_shift(reference.get("label"), profile.get("label"))
    text = (f"{shift.measure} changed by {shift.change:.4f}"
            + (f" ({shift.reference:.4f} -> {shift.current:.4f})" if shift.reference is not None else ""))
    target = cfg.data.target
    natural = ((calibration or {}).get("label") or {}).get("change") or {}
    limit = max(settings.block, natural.get("envelope", 0.0))
    nat_text = f", natural range up to {natural['envelope']:.4f}" if natural else ""
    warnings = []
    if settings.warn <= shift.change < limit:
        warnings.append(f"label {target!r}: {text} >= {settings.warn}{nat_text}")
    result = judge(
        "label_shift",
        Family.DATA,
        failures=[f"label {target!r}: {text} >= {limit}{nat_text}"] if shift.change >= limit else [],
        warnings=warnings,
        measured={"change": round(shift.change, 6), "reference": shift.reference, "current": shift.current},
        threshold={"warn": settings.warn, "block": settings.block, "measure": shift.measure,
                   "natural_envelope": natural.get("envelope")},
        hint=LABEL_SHIFT.hint,
        ok_summary=f"label {target!r}: {text}",
    )
    return _state_calibration(result, calibration, cfg)


def season_coverage(split: Split, cfg: PipelineConfig, min_share: float = 0.05) -> tuple[list[str], dict]:
    """Calendar features (month, weekday, day of year, hour...) whose test values the training
    split never held: a tree extrapolates there from the nearest season it saw, so a window
    shorter than the cycle makes clean retrains worse than the champion for a reason that is the
    pipeline's, not the data's. Only a share of test rows above `min_share` is named."""
    from gates.suite_init import cyclic_domain

    warnings, measured = [], {}
    for col in cfg.data.features.numeric:
        train, test = split.train[col], split.test[col]
        if len(test) == 0 or cyclic_domain(col, train, test) is None:
            continue
        unseen_mask = ~test.isin(pd.unique(train.dropna()))
        share = float(unseen_mask.mean())
        measured[f"{col}.unseen_in_training"] = round(share, 4)
        if share > min_share:
            values = sorted(int(v) for v in pd.unique(test[unseen_mask].dropna()))
            span = (split.train[cfg.data.timestamp].max() - split.train[cfg.data.timestamp].min()).days + 1 \
                if len(split.train) else 0
            warnings.append(f"feature {col!r}: {share:.0%} of the test rows have values the training split "
                            f"never held ({_shorten([str(v) for v in values])}): the model extrapolates "
                            f"there; the training rows span {span} days, less than this column's cycle "
                            f"(widen data.window_days to a cycle plus the test days)")
    return warnings, measured


def check_split_drift(split: Split, cfg: PipelineConfig, settings: DriftGate) -> GateResult:
    """Train split against test split of this run, from their profiles alone: PSI on the train
    split's quantile bins and KS read from the two 101-point quantile sketches (resolution 0.01,
    quantiles from at most `settings.sample_rows` rows per side), as the drift gate compares a run
    with the champion. One vectorised pass per split; no exact two-sample test on top (it sorted
    both samples per feature, cost more than the profiles, and differs from the sketch's KS by
    about the sketch's resolution: a verdict moves only for a KS within ~0.01 of a threshold)."""
    from gates import profile as profiles

    train = profiles.profile_run_frame(split.train, cfg, settings)
    test = profiles.profile_run_frame(split.test, cfg, settings, reference=train)
    drifts = compare_profiles(train, test, settings)
    uncovered, coverage = season_coverage(split, cfg)
    result = _drift_result("split_drift", drifts, settings, "train split against test split",
                           extra_measures={"ks_sample_rows": settings.sample_rows,
                                           "ks_resolution": 0.01, **coverage},
                           current=test, reference=train, leading_warnings=uncovered)
    if uncovered and result.status is Status.FAIL:  # the cause of the calendar columns' drift: said first
        result.summary = f"{uncovered[0]}; {result.summary}"
    return result


# --------------------------------------------------------------------------- plans


def _dates(days: list[dt.date]) -> str:
    return _shorten([d.isoformat() for d in days])


def _shorten(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


# --------------------------------------------------------------------------- declarations


PARTITIONS = Gate(
    name="partitions", family=Family.DATA, stage="data", settings=PartitionsGate,
    inputs=("ingested", "cadence", "cfg"), check=check_partitions,
    cause=Cause(bucket="data", depth=1, meaning="upstream data delivery is incomplete",
                rules_out="missing, empty, stale, duplicated or unreadable partitions",
                next_check="Check the upstream job that writes the partitions for the dates named."),
    hint="Check the upstream job that writes these partitions (did it run, did it finish, "
    "did it write once, to the right path?) before retraining.",
    blocks_when="a partition of the window is missing, empty (no rows, or a folder without data "
    "files), duplicated (files overlap, or a copy of another date), short (rows < `short_ratio` × "
    "trailing median), stale (newest older than `max_lag_days`), badly named (`date=2026-02-30`, a "
    "symlink loop), or unreadable (names the file and why: zero bytes, not parquet, a CSV cut "
    "mid-line or with a short row, not UTF-8, duplicated columns); or its rows are wrong: event "
    "times outside the partition's period or in the future (beyond `period_tolerance_minutes` / "
    "`future_tolerance_minutes`), a single or a third label class, all-null labels, infinite or "
    "non-numeric values in a numeric feature (named by partition and count)",
    faults=("missing_partition", "empty_partition", "stale_data", "duplicated_partition",
            "short_partition", "unreadable_file"),
)

CONTRACT = Gate(
    name="contract", family=Family.DATA, stage="data", settings=ContractGate,
    inputs=("ingested", "cfg", "contract_validations", "workdir"), check=check_contract,
    cause=Cause(bucket="data", depth=2, meaning="the data no longer matches its contract (schema or values)",
                rules_out="schema changes, type changes, null bursts, out-of-range values and unknown categories",
                next_check="Diff the upstream schema and the failing columns against expectations/; "
                "ask the producer whether the change was intended."),
    hint="Compare the failing columns with the upstream schema; if the change is intended, "
    "update the suite in expectations/ (gates suite init) and commit it with the code.",
    blocks_when="the Great Expectations suite fails on a partition: renamed/dropped columns, dtype "
    "changes, null bursts, out-of-range values, unknown or re-cased categories, booleans as strings; "
    "names partition, column and sample values",
    faults=("renamed_column", "dropped_column", "dtype_change", "null_burst", "out_of_range",
            "new_category", "bool_as_string"),
)

DRIFT = Gate(
    name="drift", family=Family.DATA, stage="data", settings=DriftGate,
    inputs=("profile", "reference", "reference_error", "notes", "cfg", "run_date"), check=check_drift,
    cause=Cause(bucket="data", depth=3, meaning="feature distributions drifted from the last promoted run",
                rules_out="covariate drift beyond the block thresholds",
                next_check="Look at the drift plots; decide whether the change is real-world (retrain and "
                "accept) or an upstream bug (fix the source)."),
    hint="Look at the drifted features' plots (MLflow plots/drift/): an upstream change (units, "
    "encoding, a new source) is a bug to fix; a real shift in the population may need the "
    "thresholds or the window revisited before the model is retrained on it.",
    blocks_when="a feature drifted from the champion's stored profile (PSI and KS for numbers, "
    "PSI/Jensen-Shannon and new categories for categories, null rates) past the block thresholds; "
    "the warn thresholds only warn; with `calibration:`, a statistic inside its natural envelope from "
    "history only warns",
    faults=("covariate_drift",),
)

LABEL_SHIFT = Gate(
    name="label_shift", family=Family.DATA, stage="data", settings=LabelShiftGate,
    inputs=("profile", "reference", "cfg", "reference_error", "notes", "run_date"), check=check_label_shift,
    cause=Cause(bucket="data", depth=3, meaning="the label's distribution shifted",
                rules_out="a shift in the label's base rate",
                next_check="Check how labels are produced (definition, delay, join) for the new window."),
    hint="A changed label rate means a changed population or a changed labelling job: check the "
    "labelling pipeline before retraining on it.",
    blocks_when="the label's positive rate (or mean) moved past `block` (or, with `calibration:`, "
    "past its natural envelope from history if that is wider)",
    faults=("label_shift",),
)

SPLIT_DRIFT = Gate(
    name="split_drift", family=Family.DATA, stage="leakage", settings=DriftGate,
    inputs=("split", "cfg"), check=check_split_drift,
    default=lambda: DriftGate(severity=Severity.WARN),
    description="Train split against test split within the run (warns by default).",
    cause=Cause(bucket="data", depth=4, meaning="train and test windows differ strongly",
                rules_out="a sharp break between the train and test periods",
                next_check="Look for a change in the data around the split date."),
    hint=DRIFT.hint,
    blocks_when="train and test splits differ strongly (warn by default)",
)

GATES = [PARTITIONS, CONTRACT, DRIFT, LABEL_SHIFT, SPLIT_DRIFT]
