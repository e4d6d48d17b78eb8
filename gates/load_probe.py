"""Run in a fresh interpreter by the artifact gates: load the exported model and predict.

Usage: python -m gates.load_probe GOLDEN TASK LOADER=PATH [LOADER=PATH ...]
  -> one JSON line on stdout: a list with one report per export, in order.
   or: python -m gates.load_probe --serve [MODULE ...]
  -> imports the libraries (and MODULEs) at once, then waits for one request on stdin, a JSON
     line {"golden": ..., "task": ..., "jobs": ["LOADER=PATH", ...]}, answered as above; EOF
     (the flow is gone or closed it) exits without output.
A fresh process is the only honest test that the files, not the flow's memory, hold the model.
`--serve` is started by the flow before training, so the imports (70-80 % of a probe) overlap
the fit instead of following the export; the interpreter still shares nothing with the flow
and reads the model only from the files, after they are written.
Both exports (joblib, MLflow pyfunc) are probed in one interpreter, so scikit-learn, pandas and
MLflow are imported once (they were 70-80 % of a probe's time); each load still reads its own
files from disk, and a crash or timeout fails both (closed).
The report also carries this interpreter's library versions and every warning raised on load
(scikit-learn's InconsistentVersionWarning with both versions), for the library_versions gate.
"""

from __future__ import annotations

import json
import sys
import warnings
from importlib import metadata

LIBRARIES = ("scikit-learn", "numpy", "pandas", "scipy", "joblib", "cloudpickle", "mlflow")


def runtime_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _warning(w: warnings.WarningMessage) -> dict:
    entry = {"category": w.category.__name__, "message": str(w.message)[:500]}
    for attr in ("estimator_name", "original_sklearn_version", "current_sklearn_version"):
        if hasattr(w.message, attr):  # sklearn.exceptions.InconsistentVersionWarning
            entry[attr] = str(getattr(w.message, attr))
    return entry


def _load(loader: str, path: str):
    if loader == "joblib":
        import joblib

        return joblib.load(path), None
    import mlflow

    pyfunc = mlflow.pyfunc.load_model(path)
    return pyfunc.get_raw_model(), pyfunc


def main(loader: str, path: str, golden: str, task: str) -> dict:
    import numpy as np
    import pandas as pd

    report: dict = {"loader": loader, "path": path, "warnings": [], "error": None,
                    "error_stage": None, "versions": runtime_versions()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stage = "load"
        try:
            model, pyfunc = _load(loader, path)
            stage = "predict"
            frame = pd.read_parquet(golden)
            X = frame.drop(columns=["__expected__"])
            if pyfunc is not None:
                pyfunc.predict(X.head(20))  # through MLflow's signature enforcement, as serving calls it
            if task == "classification":
                scores = np.asarray(model.predict_proba(X), dtype=float)[:, 1]
            else:
                scores = np.asarray(model.predict(X), dtype=float)
            expected = frame["__expected__"].to_numpy(dtype=float)
            same_nan = np.isnan(scores) & np.isnan(expected)
            diff = np.where(same_nan, 0.0, np.abs(scores - expected))
            report["max_abs_diff"] = float(np.nanmax(np.where(np.isnan(diff), np.inf, diff))) if len(diff) else 0.0
            report["nan_predictions"] = int(np.isnan(scores).sum())
            report["rows"] = int(len(X))
        except Exception as exc:  # noqa: BLE001 - reported to the parent as the finding
            report["error"] = f"{type(exc).__name__}: {exc}"[:2000]
            report["error_type"] = type(exc).__name__
            report["error_stage"] = stage
    report["warnings"] = [_warning(w) for w in caught]
    return report


def main_many(golden: str, task: str, jobs: list[str]) -> list[dict]:
    return [main(loader, path, golden, task) for loader, _, path in (job.partition("=") for job in jobs)]


def preload(modules: list[str]) -> None:
    """What loading the exports imports anyway; a module that fails here fails in the load,
    where it is reported."""
    import importlib

    for name in ("numpy", "pandas", "joblib", "sklearn", *modules, "mlflow.pyfunc"):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the load reports it
            pass


def serve(modules: list[str]) -> int:
    preload(modules)
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    request = json.loads(line)
    print(json.dumps(main_many(request["golden"], request["task"], request["jobs"])), flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        sys.exit(serve(sys.argv[2:]))
    print(json.dumps(main_many(sys.argv[1], sys.argv[2], sys.argv[3:])))
