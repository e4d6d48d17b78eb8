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


def calibrate(cfg: PipelineConfig, profiles: dict[dt.date, dict[str, Any]], every: str,
              quantile: float = 0.95, margin: float = 0.25, profile_of=None) -> dict[str, Any]:
    """The envelope from window profiles keyed by run date (profile_of(ref, date) re-profiles a
    window on a reference's bins: PSI needs the reference's edges)."""
    dates = sorted(profiles)
    pairs: list[tuple[dt.date, dt.date, str]] = [(a, b, "consecutive") for a, b in zip(dates, dates[1:])]
    by_date = set(dates)
    for b in dates:
        a = next((d for d in dates if abs((b - d).days - CYCLE_DAYS) <= 16), None)
        if a is not None and a in by_date:
            pairs.append((a, b, "one cycle earlier"))
    collected: dict[str, dict[str, list[float]]] = {}
    labels: list[float] = []
    for a, b, _kind in pairs:
        stats = pair_stats(profiles[a], profile_of(profiles[a], b), cfg)
        for feature, values in stats["features"].items():
            for stat, value in values.items():
                collected.setdefault(feature, {}).setdefault(stat, []).append(value)
        labels.append(stats["label_change"])
    features = {f: {s: e for s, vals in per.items() if (e := envelope(vals, quantile, margin))}
                for f, per in collected.items()}
    return {
        "version": CALIBRATION_VERSION,
        "pipeline": cfg.name,
        "suite": str(cfg.expectations),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "history": [dates[0].isoformat(), dates[-1].isoformat()] if dates else None,
        "every": every,
        "window_days": cfg.data.window_days,
        "windows": len(dates),
        "pairs": {"consecutive": sum(1 for p in pairs if p[2] == "consecutive"),
                  "one_cycle_earlier": sum(1 for p in pairs if p[2] != "consecutive")},
        "quantile": quantile,
        "margin": margin,
        "rule": f"envelope = {quantile:.0%} quantile of the historical drift x (1 + {margin})",
        "features": features,
        "label": {"change": envelope(labels, quantile, margin)},
    }


def calibrate_history(cfg: PipelineConfig, cache, start: dt.date, end: dt.date, every: str,
                      quantile: float = 0.95, margin: float = 0.25) -> dict[str, Any]:
    """Calibrate on the windows of run dates start..end, read from a partition cache."""
    from gates.profile import profile_run_frame

    windows = {}
    for day in run_dates(start, end, every):
        frame = cache.window_frame(day)
        if len(frame):
            windows[day] = frame
    if len(windows) < 2:
        raise ValueError(f"calibration needs at least two windows with data between {start} and {end} "
                         f"(every {every}, window {cfg.data.window_days} days); found {len(windows)}")
    settings = cfg.gates.drift
    profiles = {d: profile_run_frame(f, cfg, settings) for d, f in windows.items()}
    return calibrate(cfg, profiles, every, quantile, margin,
                     profile_of=lambda ref, d: profile_run_frame(windows[d], cfg, settings, reference=ref))


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
