"""The natural drift of a pipeline, learned from its own history (`gates calibrate`).

A fixed PSI threshold cannot tell a season from a fault: on seasonal data, next month's window
always differs from last month's. So we measure, per feature and for the label, the drift between
windows one retraining step apart over the history (and, when the history covers a cycle, against
the same window one cycle earlier), and keep a high quantile plus a stated margin as the feature's
*envelope*. `drift` and `label_shift` then block only outside the envelope and say so ("PSI 0.61,
natural range up to 0.9"). The file is versioned JSON beside the suite, reviewed like the suite.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from gates.config import PipelineConfig
from gates.drift import compare_profiles, label_shift

CALIBRATION_VERSION = 1
STATS = ("psi", "ks", "js", "null_rate_change")
CYCLE_DAYS = 364  # 52 weeks: the same weekdays one year earlier
STEP_DAYS = {"day": 1, "week": 7, "month": 30}
SEASON_DAYS = 10  # "the same time of year": within this many days of the run date
# A blocked run leaves the champion in place, so the next run compares with a window several
# steps older. Drift over k steps is measured up to these lags (a year of a monthly schedule).
MAX_LAG = {"day": 14, "week": 8, "month": 12}


def run_dates(start: dt.date, end: dt.date, every: str) -> list[dt.date]:
    """Run dates from start to end: daily, weekly, or the same day of each month."""
    if every not in STEP_DAYS:
        raise ValueError(f"--every: {every!r}; allowed: {', '.join(STEP_DAYS)}")
    dates, day, k = [], start, 0
    while day <= end:
        dates.append(day)
        k += 1
        if every == "month":
            month = start.month - 1 + k
            year, month = start.year + month // 12, month % 12 + 1
            day = dt.date(year, month, min(start.day, 28))
        else:
            day = start + dt.timedelta(days=STEP_DAYS[every] * k)
    return dates


def default_path(cfg: PipelineConfig) -> Path:
    return Path(cfg.calibration) if cfg.calibration else Path(cfg.expectations).with_suffix(".calibration.json")


def pair_stats(reference: dict[str, Any], current: dict[str, Any], cfg: PipelineConfig) -> dict[str, Any]:
    """Every drift statistic of `current` against `reference`, per feature, and the label's change."""
    drifts = compare_profiles(reference, current, cfg.gates.drift)
    out: dict[str, Any] = {"features": {fd.feature: {k: fd.stats.get(k) for k in STATS} for fd in drifts}}
    try:
        out["label_change"] = label_shift(reference.get("label"), current.get("label")).change
    except ValueError:
        out["label_change"] = None
    return out


def envelope(values: list[float], quantile: float, margin: float) -> dict[str, float] | None:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    if not finite:
        return None
    q = float(np.quantile(finite, quantile))
    return {"quantile": round(q, 6), "max": round(float(max(finite)), 6),
            "envelope": round(q * (1 + margin), 6), "pairs": len(finite)}


def lag_steps(reference_end: dt.date | str | None, current_end: dt.date | str | None, every: str) -> int:
    """How many retraining steps apart two windows end (at least 1): the champion's age."""
    if not reference_end or not current_end or every not in STEP_DAYS:
        return 1
    ref, cur = (d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)[:10])
                for d in (reference_end, current_end))
    return max(1, round((cur - ref).days / STEP_DAYS[every]))


def _later(day: dt.date, steps: int, every: str) -> dt.date:
    if every == "month" and day.day == 1:
        month = day.month - 1 + steps
        return dt.date(day.year + month // 12, month % 12 + 1, 1)
    return day + dt.timedelta(days=STEP_DAYS[every] * steps)


def calibration_pairs(start: dt.date, end: dt.date, every: str, sample_days: int = 7,
                      max_lag: int | None = None) -> list[tuple[dt.date, dt.date, str]]:
    """Pairs of run dates one retraining step apart (and one cycle apart) across the history,
    and `k steps` apart for k = 2..max_lag (what a run meets after blocked runs kept an older
    champion).

    The pairs start every `sample_days`, not only on the schedule's own dates, so that every phase
    of the calendar is seen (a window crossing New Year drifts differently from one in June).
    """
    max_lag = MAX_LAG.get(every, 1) if max_lag is None else max_lag
    step = STEP_DAYS[every]
    starts, day = set(), start
    while day <= end:
        starts.add(day)
        day += dt.timedelta(days=max(1, min(sample_days, step)))
    if every == "month":  # monthly schedules run on the first: whole months enter and leave the window
        first = dt.date(start.year, start.month, 1)
        starts |= {d for d in run_dates(first, end, "month") if d >= start}
    pairs = []
    for day in sorted(starts):
        after = (run_dates(day, end, "month")[1:2] if every == "month" and day.day == 1
                 else [day + dt.timedelta(days=step)])
        if after and after[0] <= end:
            pairs.append((day, after[0], "one step"))
        if day + dt.timedelta(days=CYCLE_DAYS) <= end:
            pairs.append((day, day + dt.timedelta(days=CYCLE_DAYS), "one cycle"))
        for k in range(2, max_lag + 1):
            later = _later(day, k, every)
            if later > end:
                break
            pairs.append((day, later, f"{k} steps"))
    return pairs


def calibrate(cfg: PipelineConfig, pairs: list[tuple[dt.date, dt.date, str]], every: str,
              profile_of, quantile: float = 0.99, margin: float = 0.25) -> dict[str, Any]:
    """The envelope from pairs of windows; profile_of(date, reference) profiles a window (on a
    reference's bins when given: PSI compares like with like)."""
    collected: dict[str, dict[str, list[float]]] = {}
    labels: list[float] = []
    seasonal: dict[str, dict[str, list[list[float]]]] = {}  # per feature and stat: [day of year, value]
    references: dict[dt.date, dict[str, Any]] = {}
    by_lag: dict[str, dict[str, Any]] = {}
    for a, b, kind in pairs:
        if a not in references:
            references[a] = profile_of(a, None)
        stats = pair_stats(references[a], profile_of(b, references[a]), cfg)
        doy = b.timetuple().tm_yday
        if kind.endswith(" steps"):  # k steps apart: its own envelope, used when the champion is that old
            lag = by_lag.setdefault(kind.split()[0], {"features": {}, "label": []})
            for feature, values in stats["features"].items():
                for stat, value in values.items():
                    lag["features"].setdefault(feature, {}).setdefault(stat, []).append(value)
            lag["label"].append(stats["label_change"])
            continue
        for feature, values in stats["features"].items():
            for stat, value in values.items():
                collected.setdefault(feature, {}).setdefault(stat, []).append(value)
                if kind == "one step" and value is not None and np.isfinite(value):
                    seasonal.setdefault(feature, {}).setdefault(stat, []).append([doy, round(value, 5)])
        labels.append(stats["label_change"])
        if kind == "one step" and stats["label_change"] is not None:
            seasonal.setdefault("__label__", {}).setdefault("change", []).append(
                [doy, round(stats["label_change"], 6)])
    def envelopes(per_feature: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, dict]]:
        return {f: {s: e for s, vals in per.items() if (e := envelope(vals, quantile, margin))}
                for f, per in per_feature.items()}

    features = envelopes(collected)
    lags = {k: {"features": envelopes(lag["features"]), "label": {"change": envelope(lag["label"], quantile, margin)}}
            for k, lag in sorted(by_lag.items(), key=lambda item: int(item[0]))}
    dates = sorted({d for a, b, _ in pairs for d in (a, b)})
    return {
        "version": CALIBRATION_VERSION,
        "pipeline": cfg.name,
        "suite": str(cfg.expectations),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "history": [dates[0].isoformat(), dates[-1].isoformat()] if dates else None,
        "every": every,
        "window_days": cfg.data.window_days,
        "windows": len(dates),
        "pairs": {"one_step": sum(1 for p in pairs if p[2] == "one step"),
                  "one_cycle": sum(1 for p in pairs if p[2] == "one cycle"),
                  "k_steps": sum(1 for p in pairs if p[2].endswith(" steps"))},
        "quantile": quantile,
        "margin": margin,
        "rule": f"envelope = {quantile:.0%} quantile of the historical drift x (1 + {margin})",
        "features": features,
        "label": {"change": envelope(labels, quantile, margin)},
        # The same step at the same time of year: a window crossing New Year drifts more than one in
        # June, every year. A run's envelope is the larger of the overall one and the largest drift
        # seen within `season_days` of its date in an earlier cycle, times (1 + margin).
        "season_days": SEASON_DAYS,
        "seasonal": seasonal,
        # Drift k steps apart (k = 2..): a run whose champion is k steps old is judged against the
        # largest envelope of lags 1..k (past the largest lag calibrated, the largest of all).
        "by_lag": lags,
    }


def calibrate_history(cfg: PipelineConfig, cache, start: dt.date, end: dt.date, every: str,
                      quantile: float = 0.99, margin: float = 0.25, sample_days: int = 7) -> dict[str, Any]:
    """Calibrate on the windows of run dates start..end, read from a partition cache."""
    from gates.profile import profile_run_frame

    pairs = [p for p in calibration_pairs(start, end, every, sample_days)
             if cache.ingested(p[0]).frames and cache.ingested(p[1]).frames]
    if not pairs:
        raise ValueError(f"calibration needs two windows one step ({every}) apart with data between "
                         f"{start} and {end} (window {cfg.data.window_days} days); found none")
    settings = cfg.gates.drift
    return calibrate(cfg, pairs, every,
                     lambda day, ref: profile_run_frame(cache.window_frame(day), cfg, settings, reference=ref),
                     quantile, margin)


def write(calibration: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(calibration, indent=2) + "\n")
    return path


def load(cfg: PipelineConfig) -> dict[str, Any] | None:
    """The config's calibration, or None (uncalibrated); a broken file raises naming it."""
    if not cfg.calibration:
        return None
    path = Path(cfg.calibration)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"calibration file {path}: {exc}") from None
    if data.get("version") != CALIBRATION_VERSION:
        raise ValueError(f"calibration file {path}: version {data.get('version')!r}, expected "
                         f"{CALIBRATION_VERSION} (recalibrate with `gates calibrate`)")
    return data


def natural_limit(calibration: dict[str, Any] | None, feature: str, stat: str) -> float | None:
    if not calibration:
        return None
    entry = (calibration.get("features", {}).get(feature) or {}).get(stat)
    return entry.get("envelope") if entry else None


def for_run(calibration: dict[str, Any] | None, run_date: dt.date, lag: int = 1) -> dict[str, Any] | None:
    """The envelopes that apply on `run_date`: overall, raised to the drift seen at the same time
    of year in the history (a seasonal step recurs every cycle; a quantile would drop it), and,
    when the champion's window is `lag` steps old, to the drift seen k <= lag steps apart."""
    if not calibration:
        return None
    out = _for_date(calibration, run_date)
    lags = calibration.get("by_lag") or {}
    usable = [k for k in lags if int(k) <= lag]
    if lag <= 1 or not usable:
        return out
    out["lag"] = {"steps": lag, "calibrated_up_to": max(int(k) for k in lags)}
    for k in usable:
        for feature, stats in lags[k].get("features", {}).items():
            for stat, entry in stats.items():
                current = out["features"].setdefault(feature, {}).get(stat)
                if current is None or entry["envelope"] > current["envelope"]:
                    out["features"][feature][stat] = {**entry, "lag": int(k)}
        label = (lags[k].get("label") or {}).get("change")
        current = out["label"].get("change")
        if label and (current is None or label["envelope"] > current["envelope"]):
            out["label"]["change"] = {**label, "lag": int(k)}
    return out


def _for_date(calibration: dict[str, Any], run_date: dt.date) -> dict[str, Any]:
    margin = calibration.get("margin", 0.0)
    window = calibration.get("season_days", SEASON_DAYS)
    doy = run_date.timetuple().tm_yday

    def near(points: list[list[float]]) -> float | None:
        close = [v for d, v in points if min(abs(d - doy), 366 - abs(d - doy)) <= window]
        return max(close) * (1 + margin) if close else None

    out = {**calibration, "features": {}, "label": dict(calibration.get("label") or {})}
    for feature, stats in calibration.get("features", {}).items():
        out["features"][feature] = {}
        for stat, entry in stats.items():
            seasonal = near(calibration.get("seasonal", {}).get(feature, {}).get(stat, []))
            env = max(entry["envelope"], seasonal) if seasonal is not None else entry["envelope"]
            out["features"][feature][stat] = {**entry, "envelope": round(env, 6)}
    label = out["label"].get("change")
    seasonal = near(calibration.get("seasonal", {}).get("__label__", {}).get("change", []))
    if label and seasonal is not None:
        out["label"]["change"] = {**label, "envelope": round(max(label["envelope"], seasonal), 6)}
    return out
