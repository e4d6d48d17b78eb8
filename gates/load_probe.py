"""Run in a fresh interpreter by the artifact gates: load the exported model and predict.

Usage: python -m gates.load_probe LOADER PATH GOLDEN TASK  -> one JSON line on stdout.
A fresh process is the only honest test that the files, not the flow's memory, hold the model.
"""

from __future__ import annotations

import json
import sys
import warnings


def main(loader: str, path: str, golden: str, task: str) -> dict:
    import numpy as np
    import pandas as pd

    report: dict = {"loader": loader, "warnings": [], "error": None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if loader == "joblib":
                import joblib

                model = joblib.load(path)
            else:
                import mlflow

                model = mlflow.sklearn.load_model(path) if loader == "mlflow-sklearn" else None
                pyfunc = mlflow.pyfunc.load_model(path) if loader == "mlflow-pyfunc" else None
            frame = pd.read_parquet(golden)
            X = frame.drop(columns=["__expected__"])
            if loader == "mlflow-pyfunc":
                if task == "classification":
                    raw = pyfunc.get_raw_model() if hasattr(pyfunc, "get_raw_model") else None
                    scores = raw.predict_proba(X)[:, 1] if raw is not None else pyfunc.predict(X)
                else:
                    scores = np.asarray(pyfunc.predict(X), dtype=float)
            elif task == "classification":
                scores = model.predict_proba(X)[:, 1]
            else:
                scores = np.asarray(model.predict(X), dtype=float)
            expected = frame["__expected__"].to_numpy()
            diff = np.abs(np.asarray(scores, dtype=float) - expected)
            report["max_abs_diff"] = float(np.nanmax(diff)) if len(diff) else 0.0
            report["nan_predictions"] = int(np.isnan(np.asarray(scores, dtype=float)).sum())
            report["rows"] = int(len(X))
        except Exception as exc:  # noqa: BLE001 - reported to the parent as the finding
            report["error"] = f"{type(exc).__name__}: {exc}"
    for w in caught:
        report["warnings"].append({"category": w.category.__name__, "message": str(w.message)[:500]})
    return report


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5])))
