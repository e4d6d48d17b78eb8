"""Data gates: partition completeness, the contract, drift against the champion, label shift,
and train-against-test drift within the run.

Importable without Prefect. Each gate takes what it needs and returns one GateResult.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gates.config import (Cadence, ContractGate, DataFormat, DriftGate, LabelShiftGate, PartitionsGate,
                          PipelineConfig)
from gates.contract import WindowValidation, load_suite, merge_validations, validate_partitions
from gates.drift import FeatureDrift, compare_profiles, label_shift
from gates.ingest import Ingested, read_file
from gates.partition_rows import check_rows
from gates.results import Family, GateResult, judge

REFERENCE_ARTIFACT = "profile/reference.json"


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
    step = 7 if cadence is Cadence.WEEKLY else 1
    newest = max(usable) if usable else None
    lag = (ingested.run_date - newest).days if newest else None
    allowed = settings.max_lag_days + step - 1
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
        hint="Check the upstream job that writes these partitions (did it run, did it finish, "
        "did it write once, to the right path?) before retraining.",
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


def check_contract(ingested: Ingested, cfg: PipelineConfig, settings: ContractGate) -> GateResult:
    """The Great Expectations suite, judged per partition so failures name the partition.

    Empty partitions are left to the partition gate. The window is validated with a few GE calls
    (see gates.contract.validate_partitions), not one call per partition.
    """
    days = contract_days(ingested, cfg)
    outcome = validate_partitions(load_suite(cfg.expectations),
                                  {d.isoformat(): ingested.partition_frame(d) for d in days},
                                  settings.unexpected_samples)
    return contract_result(outcome, days, cfg, settings)


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


def check_contract_from(outcomes: list[WindowValidation], days: list[dt.date], cfg: PipelineConfig,
                        settings: ContractGate) -> GateResult:
    """The contract gate from validations done elsewhere (one per group of partitions)."""
    return contract_result(merge_validations(outcomes), days, cfg, settings)


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
                  "ge_calls": outcome.ge_calls, "ge_seconds": round(outcome.ge_seconds, 4)},
        threshold={"suite": str(cfg.expectations)},
        hint="Compare the failing columns with the upstream schema; if the change is intended, "
        "update the suite in expectations/ (gates suite init) and commit it with the code.",
        ok_summary=f"suite {cfg.expectations.name}: {len(days)} partitions conform",
        details={"failures_by_partition": broken},
    )


# --------------------------------------------------------------------------- drift


def prepare(ctx) -> None:
    """Profile this run's window, log it with the run, and load the champion's profile.

    Never raises: a problem is kept in ctx.reference_error and the drift gates report it.
    """
    from gates import profile as profiles

    cfg = ctx.cfg
    try:
        ctx.reference = _load_reference(ctx)
    except Exception as exc:  # noqa: BLE001 - reported by the drift gate (fail closed)
        ctx.reference, ctx.reference_error = None, f"{type(exc).__name__}: {exc}"
    try:
        window = (ctx.ingested.expected[0].isoformat(), ctx.ingested.expected[-1].isoformat()) \
            if ctx.ingested is not None and ctx.ingested.expected else None
        ctx.profile = profiles.profile_run_frame(ctx.frame, cfg, cfg.gates.drift, ctx.reference, window)
    except Exception as exc:  # noqa: BLE001
        ctx.profile = None
        ctx.reference_error = (ctx.reference_error or "") + f" profile failed: {type(exc).__name__}: {exc}"
        return
    try:
        import mlflow

        if mlflow.active_run() is not None:
            mlflow.log_dict(profiles.for_logging(ctx.profile), REFERENCE_ARTIFACT)
    except Exception as exc:  # noqa: BLE001 - the next run states it has no reference
        ctx.notes.append(f"could not log the data profile: {type(exc).__name__}: {exc}")


def _load_reference(ctx) -> dict[str, Any] | None:
    from gates import tracking

    champ = ctx.champion  # resolved once at the start of the run
    if champ is None:
        ctx.notes.append("drift: first run (no champion yet), nothing to compare with; this run's "
                         "profile becomes the reference once it is promoted")
        return None
    if not champ.run_id:
        raise LookupError(f"champion version {champ.version} has no MLflow run to read its profile from")
    import mlflow

    folder, _, _ = REFERENCE_ARTIFACT.rpartition("/")
    stored = [a.path for a in tracking.client(ctx.cfg).list_artifacts(champ.run_id, folder)]
    if REFERENCE_ARTIFACT not in stored:
        # A champion promoted before profiles were logged: stated, like a first run.
        ctx.notes.append(f"drift: champion version {champ.version} (run {champ.run_id}) has no "
                         f"{REFERENCE_ARTIFACT}, nothing to compare with; this run's profile becomes "
                         "the reference once it is promoted")
        return None
    return mlflow.artifacts.load_dict(f"runs:/{champ.run_id}/{REFERENCE_ARTIFACT}")


def _drift_result(name: str, drifts: list[FeatureDrift], settings: DriftGate, compared: str,
                  extra_measures: dict | None = None, current: dict | None = None,
                  reference: dict | None = None) -> GateResult:
    failures = [fd.describe() for fd in drifts if fd.level == "block"]
    warnings = [fd.describe() for fd in drifts if fd.level == "warn"]
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
        hint="Look at the drifted features' plots (MLflow plots/drift/): an upstream change (units, "
        "encoding, a new source) is a bug to fix; a real shift in the population may need the "
        "thresholds or the window revisited before the model is retrained on it.",
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


def _reference_note(ctx) -> str:
    stated = [n.removeprefix("drift: ") for n in ctx.notes if n.startswith("drift: ")]
    return (stated[-1] if stated else "first run: no champion profile to compare with") + \
        " (not measured: the stated first-run rule)"


def _no_profile(ctx) -> None:
    if ctx.profile is None:
        raise RuntimeError(f"no profile of this run's data: {ctx.reference_error or 'not computed'}")
    if ctx.reference is None and ctx.reference_error:
        raise RuntimeError(f"the champion's reference profile could not be loaded: {ctx.reference_error}"
                           " (disable gates.drift for one run to re-baseline)")


def check_drift(ctx, settings: DriftGate) -> GateResult:
    """Each feature of this window against the champion run's reference profile."""
    _no_profile(ctx)
    if ctx.reference is None:
        return _first_run("drift", _reference_note(ctx))
    from gates.calibration import for_run, load as load_calibration

    window = ctx.reference.get("window") or ["?", "?"]
    calibration = for_run(load_calibration(ctx.cfg), ctx.run_date)  # broken file: error (fail closed)
    drifts = compare_profiles(ctx.reference, ctx.profile, settings, calibration)
    result = _drift_result("drift", drifts, settings, f"champion profile of {window[0]}..{window[1]}",
                           current=ctx.profile, reference=ctx.reference)
    return _state_calibration(result, calibration, ctx.cfg)


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
    return result


def check_label_shift(ctx, settings: LabelShiftGate) -> GateResult:
    """The label's distribution against the champion's: positive rate (or standardised mean)."""
    _no_profile(ctx)
    if ctx.reference is None:
        return _first_run("label_shift", _reference_note(ctx))
    from gates.calibration import for_run, load as load_calibration

    calibration = for_run(load_calibration(ctx.cfg), ctx.run_date)
    shift = label_shift(ctx.reference.get("label"), ctx.profile.get("label"))
    text = (f"{shift.measure} changed by {shift.change:.4f}"
            + (f" ({shift.reference:.4f} -> {shift.current:.4f})" if shift.reference is not None else ""))
    target = ctx.cfg.data.target
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
        hint="A changed label rate means a changed population or a changed labelling job: check the "
        "labelling pipeline before retraining on it.",
        ok_summary=f"label {target!r}: {text}",
    )
    return _state_calibration(result, calibration, ctx.cfg)


def check_split_drift(ctx, settings: DriftGate) -> GateResult:
    """Train split against test split of this run: profiles, plus an exact two-sample KS test
    (scipy) on samples of at most `settings.sample_rows` rows per side."""
    from scipy.stats import ks_2samp

    from gates import profile as profiles

    split = ctx.split
    cfg = ctx.cfg
    train = profiles.profile_run_frame(split.train, cfg, settings)
    test = profiles.profile_run_frame(split.test, cfg, settings, reference=train)
    drifts = compare_profiles(train, test, settings)
    rng = np.random.default_rng(0)
    n = settings.sample_rows

    def sample(frame: pd.DataFrame, col: str) -> np.ndarray:
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        values = values[~np.isnan(values)]
        return rng.choice(values, size=n, replace=False) if len(values) > n else values

    for fd in drifts:
        if fd.kind == "numeric" and fd.feature in split.train and fd.feature in split.test:
            a, b = sample(split.train, fd.feature), sample(split.test, fd.feature)
            if len(a) and len(b):
                test_result = ks_2samp(a, b)
                fd.stats["ks"] = float(test_result.statistic)
                fd.stats["ks_pvalue"] = float(test_result.pvalue)
                fd.block = [r for r in fd.block if not r.startswith("KS")]
                fd.warn = [r for r in fd.warn if not r.startswith("KS")]
                value = fd.stats["ks"]
                if value >= settings.ks_block:
                    fd.block.append(f"KS {value:.3f} >= {settings.ks_block}")
                elif value >= settings.ks_warn:
                    fd.warn.append(f"KS {value:.3f} >= {settings.ks_warn}")
    return _drift_result("split_drift", drifts, settings, "train split against test split",
                         extra_measures={"ks_sample_rows": n}, current=test, reference=train)


# --------------------------------------------------------------------------- plans


def _dates(days: list[dt.date]) -> str:
    return _shorten([d.isoformat() for d in days])


def _shorten(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def plan(ctx) -> list:
    """The data gates for this run, in the order they are reported."""
    from gates.results import plan_gate

    g = ctx.cfg.gates
    return [
        *plan_gate("partitions", Family.DATA, g.partitions, check_partitions, ctx.ingested, g.partitions,
                   ctx.cfg.data.cadence, ctx.cfg),
        *plan_gate("contract", Family.DATA, g.contract, check_contract, ctx.ingested, ctx.cfg, g.contract),
        *plan_gate("drift", Family.DATA, g.drift, check_drift, ctx, g.drift),
        *plan_gate("label_shift", Family.DATA, g.label_shift, check_label_shift, ctx, g.label_shift),
    ]


def plan_after_split(ctx) -> list:
    """Data gates that need the split (train against test drift)."""
    from gates.results import plan_gate

    g = ctx.cfg.gates
    return [*plan_gate("split_drift", Family.DATA, g.split_drift, check_split_drift, ctx, g.split_drift)]
