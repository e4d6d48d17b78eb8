"""Deepchecks and Evidently on parquet files the bench wrote: run in the peers' venv (numpy < 2).

A script, not part of the package: it imports neither `gates` nor `bench`, only what
bench/peers.lock installs. `python peer_runner.py JOB.json OUT.json`; JOB names the files and
columns, OUT gets seconds and verdicts per tool. A tool that fails to import or crashes is
recorded with its error, so the bench states it instead of crashing.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
import warnings
from typing import Any, Callable

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - started, 3)


def guarded(name: str, fn: Callable[[], dict]) -> dict:
    """One tool's part of the job; an exception becomes a recorded error (the bench reports it)."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - reported, never hidden
        return {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(limit=4)}


# --------------------------------------------------------------------------- data checks


def deepchecks_data(job: dict, train: pd.DataFrame, test: pd.DataFrame) -> dict:
    """The data_integrity suite (on train and test) and the train_test_validation suite."""
    (Dataset, suites), import_s = timed(_deepchecks_imports)
    label, cats = job["label"], job["categorical"]
    out: dict[str, Any] = {"import_seconds": import_s}
    (train_ds, test_ds), out["dataset_seconds"] = timed(lambda: (
        Dataset(train, label=label, cat_features=cats), Dataset(test, label=label, cat_features=cats)))
    for name, run in (("data_integrity", lambda: suites.data_integrity().run(train_ds, test_ds, with_display=False)),
                      ("train_test_validation", lambda: suites.train_test_validation().run(
                          train_dataset=train_ds, test_dataset=test_ds, with_display=False))):
        result, seconds = timed(run)
        failed = [c.get_header() for c in result.get_not_passed_checks(fail_if_warning=False)]
        out[name] = {"seconds": seconds, "passed": not failed, "not_passed": failed,
                     "not_run": [getattr(c, "header", str(c)) for c in result.get_not_ran_checks()]}
        if name == "train_test_validation":
            out[name]["feature_drift"] = _feature_drift_scores(result, job.get("shifted_feature"))
    return out


def _deepchecks_imports():
    from deepchecks.tabular import Dataset
    from deepchecks.tabular import suites

    return Dataset, suites


def _feature_drift_scores(result, feature: str | None) -> dict:
    """The Feature Drift check's score for the shifted feature, and its condition's verdict."""
    for check in result.results:
        if getattr(check, "get_header", lambda: "")() == "Feature Drift" and isinstance(check.value, dict):
            scores = {k: round(float(v.get("Drift score", np.nan)), 4) for k, v in check.value.items()}
            return {"shifted_feature_score": scores.get(feature) if feature else None,
                    "max_score": max(scores.values()) if scores else None,
                    "passed": bool(check.passed_conditions())}
    return {}


def evidently_data(job: dict, train: pd.DataFrame, test: pd.DataFrame) -> dict:
    """DataDriftPreset with its tests: train as reference, test as current."""
    (Report, DataDriftPreset), import_s = timed(_evidently_imports)
    snapshot, seconds = timed(lambda: Report([DataDriftPreset()], include_tests=True).run(
        current_data=test, reference_data=train))
    found = snapshot.dict()
    dataset_test = next((t for t in found["tests"] if "Share of Drifted Columns" in t["name"]), None)
    drifted = [t["name"].removeprefix("Value Drift for column ") for t in found["tests"]
               if t["name"].startswith("Value Drift") and t["status"] == "FAIL"]
    share = next((m["value"] for m in found["metrics"] if m["metric_name"].startswith("DriftedColumnsCount")), {})
    return {"import_seconds": import_s, "seconds": seconds,
            "dataset_drift_passed": dataset_test is not None and dataset_test["status"] == "SUCCESS",
            "dataset_drift_test": dataset_test["description"] if dataset_test else "no dataset drift test found",
            "drifted_share": share.get("share"), "drifted_columns": drifted}


def _evidently_imports():
    from evidently import Report
    from evidently.presets import DataDriftPreset

    return Report, DataDriftPreset


# --------------------------------------------------------------------------- model checks


def deepchecks_model(job: dict) -> dict:
    """WeakSegmentsPerformance, CalibrationScore and PredictionDrift on the candidate's scores.

    The model is not loaded here: its probabilities (and the champion's) come in the parquet.
    PredictionDrift compares the champion's scores (as "train") with the candidate's on the
    same rows, as our prediction-distribution evidence does.
    """
    (Dataset, checks), import_s = timed(_deepchecks_model_imports)
    frame = pd.read_parquet(job["scored"])
    label, cats, features = job["label"], job["categorical"], job["features"]
    cand = frame[job["candidate_score"]].to_numpy(dtype=float)
    champ = frame[job["champion_score"]].to_numpy(dtype=float)
    proba = lambda p: np.column_stack([1 - p, p])  # noqa: E731
    ds = Dataset(frame[features + [label]], label=label, cat_features=cats)
    out: dict[str, Any] = {"import_seconds": import_s, "rows": len(frame)}

    weak, out_s = timed(lambda: checks.WeakSegmentsPerformance(n_samples=job.get("weak_samples", 10_000)).run(
        ds, y_proba=proba(cand), y_pred=(cand >= 0.5).astype(int), model_classes=[0, 1], with_display=False))
    segments = weak.value.get("weak_segments_list") if isinstance(weak.value, dict) else None
    top = segments.iloc[0].to_dict() if segments is not None and len(segments) else {}
    out["weak_segments"] = {"seconds": out_s, "avg_score": _num(weak.value.get("avg_score")),
                            "top": {k: _plain(v) for k, v in top.items() if not str(k).startswith("Samples")},
                            "segments_found": 0 if segments is None else len(segments)}

    calib, out_s = timed(lambda: checks.CalibrationScore().run(
        ds, y_proba=proba(cand), y_pred=(cand >= 0.5).astype(int), model_classes=[0, 1], with_display=False))
    out["calibration"] = {"seconds": out_s, "brier": {str(k): _num(v) for k, v in calib.value.items()}}

    drift, out_s = timed(lambda: checks.PredictionDrift().run(
        ds, ds, y_proba_train=proba(champ), y_proba_test=proba(cand),
        y_pred_train=(champ >= 0.5).astype(int), y_pred_test=(cand >= 0.5).astype(int),
        model_classes=[0, 1], with_display=False))
    value = drift.value if isinstance(drift.value, dict) else {}
    out["prediction_drift"] = {"seconds": out_s, "drift_score": _num(value.get("Drift score")),
                               "method": value.get("Method"), "passed": bool(drift.passed_conditions())}
    return out


def _deepchecks_model_imports():
    from deepchecks.tabular import Dataset
    from deepchecks.tabular import checks

    return Dataset, checks


def _num(v: Any) -> float | None:
    try:
        return round(float(v), 6)
    except (TypeError, ValueError):
        return None


def _plain(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return round(float(v), 6)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v if isinstance(v, (int, str, bool)) or v is None else str(v)


# --------------------------------------------------------------------------- main


def main(job_path: str, out_path: str) -> None:
    job = json.loads(open(job_path).read())
    out: dict[str, Any] = {"versions": _versions()}
    if job["kind"] == "data":
        (train, test), out["read_seconds"] = timed(lambda: (
            pd.read_parquet(job["train"], columns=job["columns"]), pd.read_parquet(job["test"], columns=job["columns"])))
        out["deepchecks"] = guarded("deepchecks", lambda: deepchecks_data(job, train, test))
        out["evidently"] = guarded("evidently", lambda: evidently_data(job, train, test))
    else:
        out["deepchecks"] = guarded("deepchecks", lambda: deepchecks_model(job))
    with open(out_path, "w") as f:
        json.dump(out, f, indent=2, default=str)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("deepchecks", "evidently", "numpy", "pandas", "scikit-learn"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
