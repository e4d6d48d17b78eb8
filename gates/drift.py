"""Drift statistics between two profiles (gates.profile): per feature, with warn/block levels.

Numeric: PSI on the reference's quantile bins, and a KS statistic read from the two 101-point
quantile sketches (resolution 0.01), plus the null-rate change. Categorical: PSI and
Jensen-Shannon distance (scipy, base 2) on category shares, new and vanished categories, and
the null-rate change. The label: the change in the positive rate (or the standardised mean).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

EPS = 1e-4  # floor on a bin share so an empty bin gives a large, finite PSI


def psi(reference_counts: list[int] | np.ndarray, current_counts: list[int] | np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins."""
    p = np.asarray(reference_counts, dtype="float64")
    q = np.asarray(current_counts, dtype="float64")
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    p = np.clip(p / p.sum(), EPS, None)
    q = np.clip(q / q.sum(), EPS, None)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_from_sketches(reference: list[float], current: list[float]) -> float:
    """KS statistic of two distributions given by their quantiles at the same levels.

    Each CDF is piecewise linear through its quantiles; the largest gap is read on the union of
    both sets of quantiles, so the result is exact up to the sketch's resolution (0.01).
    """
    if not reference or not current:
        return float("nan")
    levels = np.linspace(0.0, 1.0, len(reference))
    ref, cur = np.asarray(reference), np.asarray(current)
    grid = np.union1d(ref, cur)
    f_ref = np.interp(grid, ref, levels, left=0.0, right=1.0)
    f_cur = np.interp(grid, cur, np.linspace(0.0, 1.0, len(cur)), left=0.0, right=1.0)
    return float(np.max(np.abs(f_ref - f_cur)))


def shares(counts: dict[str, int], keys: list[str]) -> np.ndarray:
    total = sum(counts.values())
    return np.array([counts.get(k, 0) / total if total else 0.0 for k in keys])


@dataclass
class FeatureDrift:
    """What changed in one feature, and the level it reaches (pass, warn or block)."""

    feature: str
    kind: str
    stats: dict[str, float | int | None] = field(default_factory=dict)
    block: list[str] = field(default_factory=list)
    warn: list[str] = field(default_factory=list)
    new_categories: list[str] = field(default_factory=list)
    vanished_categories: list[str] = field(default_factory=list)

    @property
    def level(self) -> str:
        return "block" if self.block else "warn" if self.warn else "pass"

    def describe(self) -> str:
        reasons = self.block or self.warn
        return f"feature {self.feature!r} ({self.kind}): " + ", ".join(reasons)


def _check(fd: FeatureDrift, name: str, value: float | None, warn: float, block: float,
           natural: float | None = None) -> None:
    """Warn past `warn`; block past `block`. With a natural envelope learned from history
    (gates.calibration) the envelope decides past `warn`: inside it only warns, outside it blocks
    (a step change diluted in a rolling window stays below `block` for weeks, but far outside
    what the history ever did), and both say so."""
    if value is None or not np.isfinite(value):
        return
    if value >= warn and natural is not None and value <= natural:
        fd.warn.append(f"{name} {value:.3f}, natural range up to {natural:.3f}")
    elif value >= warn and natural is not None:
        fd.block.append(f"{name} {value:.3f} >= {block if value >= block else warn}, "
                        f"natural range up to {natural:.3f}")
    elif value >= block:
        fd.block.append(f"{name} {value:.3f} >= {block}")
    elif value >= warn:
        fd.warn.append(f"{name} {value:.3f} >= {warn}")


def compare_numeric(feature: str, ref: dict[str, Any], cur: dict[str, Any], settings,
                    natural: dict[str, float] | None = None) -> FeatureDrift:
    fd, nat = FeatureDrift(feature, "numeric"), natural or {}
    counts = cur.get("counts_on_reference")
    value_psi = psi(ref["counts"], counts) if counts is not None else float("nan")
    value_ks = ks_from_sketches(ref.get("sketch", []), cur.get("sketch", []))
    null_change = abs(cur["null_rate"] - ref["null_rate"])
    std = ref.get("std") or 0.0
    mean_shift = ((cur["mean"] - ref["mean"]) / std
                  if std and cur.get("mean") is not None and ref.get("mean") is not None else None)
    fd.stats = {"psi": value_psi, "ks": value_ks, "null_rate_change": null_change,
                "null_rate": cur["null_rate"], "mean_shift_sd": mean_shift}
    _check(fd, "PSI", value_psi, settings.psi_warn, settings.psi_block, nat.get("psi"))
    _check(fd, "KS", value_ks, settings.ks_warn, settings.ks_block, nat.get("ks"))
    _check(fd, "null-rate change", null_change, settings.null_rate_warn, settings.null_rate_block,
           nat.get("null_rate_change"))
    return fd


def compare_categorical(feature: str, ref: dict[str, Any], cur: dict[str, Any], settings,
                        natural: dict[str, float] | None = None) -> FeatureDrift:
    fd, nat = FeatureDrift(feature, "categorical"), natural or {}
    keys = sorted(set(ref["counts"]) | set(cur["counts"]))
    p, q = shares(ref["counts"], keys), shares(cur["counts"], keys)
    value_js = float(jensenshannon(p, q, base=2)) if p.sum() and q.sum() else float("nan")
    value_psi = psi(p, q)
    new = [k for k in keys if k not in ref["counts"] and cur["counts"].get(k, 0) > 0]
    vanished = [k for k in keys if ref["counts"].get(k, 0) > 0 and cur["counts"].get(k, 0) == 0]
    new_share = float(sum(q[keys.index(k)] for k in new))
    vanished_share = float(sum(p[keys.index(k)] for k in vanished))
    null_change = abs(cur["null_rate"] - ref["null_rate"])
    fd.stats = {"psi": value_psi, "js": value_js, "new_category_share": new_share,
                "vanished_category_share": vanished_share, "null_rate_change": null_change,
                "null_rate": cur["null_rate"]}
    fd.new_categories, fd.vanished_categories = new, vanished
    _check(fd, "PSI", value_psi, settings.psi_warn, settings.psi_block, nat.get("psi"))
    _check(fd, "JS", value_js, settings.js_warn, settings.js_block, nat.get("js"))
    _check(fd, "null-rate change", null_change, settings.null_rate_warn, settings.null_rate_block,
           nat.get("null_rate_change"))
    for label, cats, share in (("new", new, new_share), ("vanished", vanished, vanished_share)):
        if not cats:
            continue
        text = f"{label} categories {cats[:5]!r} ({share:.1%} of rows)"
        (fd.block if share >= settings.new_category_share_block else fd.warn).append(text)
    return fd


def compare_profiles(reference: dict[str, Any], current: dict[str, Any], settings,
                     calibration: dict[str, Any] | None = None) -> list[FeatureDrift]:
    """Every feature the reference knows, compared with the current profile (and, calibrated,
    with the feature's natural envelope: gates.calibration)."""
    out: list[FeatureDrift] = []
    for kind, compare in (("numeric", compare_numeric), ("categorical", compare_categorical)):
        for feature, ref in reference.get(kind, {}).items():
            cur = current.get(kind, {}).get(feature)
            if cur is None:
                fd = FeatureDrift(feature, kind)
                fd.block.append("column missing from the current data")
                out.append(fd)
            elif not ref.get("rows") or not cur.get("rows"):
                fd = FeatureDrift(feature, kind)
                fd.block.append("no rows to compare")
                out.append(fd)
            else:
                natural = {stat: entry["envelope"] for stat, entry in
                           ((calibration or {}).get("features", {}).get(feature) or {}).items()}
                out.append(compare(feature, ref, cur, settings, natural or None))
    return out


@dataclass
class LabelShift:
    measure: str
    reference: float | None
    current: float | None
    change: float | None
    note: str = ""


def label_shift(reference: dict[str, Any] | None, current: dict[str, Any] | None) -> LabelShift:
    """Change of the positive rate (classification; total variation for multi-class) or of the
    mean target in reference standard deviations (regression)."""
    if not reference or not current:
        raise ValueError("the label is missing from the reference or the current data")
    if reference.get("kind") == "regression":
        std = reference.get("std") or 1.0
        change = abs((current["mean"] - reference["mean"]) / std)
        return LabelShift("mean_target_sd", reference["mean"], current["mean"], change)
    keys = sorted(set(reference["counts"]) | set(current["counts"]))
    p, q = shares(reference["counts"], keys), shares(current["counts"], keys)
    if len(keys) <= 2:
        positive = "1" if "1" in keys else "True" if "True" in keys else keys[-1]
        i = keys.index(positive)
        return LabelShift(f"positive_rate[{positive}]", float(p[i]), float(q[i]), float(abs(q[i] - p[i])))
    tv = float(0.5 * np.abs(p - q).sum())
    return LabelShift("total_variation", None, None, tv, note="multi-class: total variation distance")
