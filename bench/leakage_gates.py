"""Seconds per leakage gate on ~1M rows, against the time to train the demo model on the same rows.

Each gate is called the way the flow plans it, on the demo pipeline (60 daily partitions of
16,700 rows). `sample_rows` says how many rows a sampled gate looked at; the others read all rows.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import joblib

from bench.workload import RUN_DATE, demo_raw_config
from flows.stages import no_gates, run_until
from gates import registry
from gates.config import parse_config
from gates.context import RunContext
from gates.demo_data import write_demo_data
from gates.evaluation import evaluate
from gates.export import Exported
from gates.results import Family
from gates.training import build_pipeline, fit

ROWS_PER_DAY, DAYS = 16_700, 60


def _context(work: Path) -> RunContext:
    data = work / "data"
    write_demo_data(data, RUN_DATE - dt.timedelta(days=1), days=DAYS, rows_per_day=ROWS_PER_DAY)
    cfg = parse_config(demo_raw_config(work, data, window_days=DAYS))
    ctx = RunContext(cfg=cfg, run_date=RUN_DATE)
    run_until(ctx, "split", run_gates=no_gates)
    return ctx


def _timed(specs, rows: int, training: float) -> list[dict]:
    out = []
    for spec in specs:
        result = spec.run()
        sampled = result.measured.get("sample_rows")
        out.append({"section": "leakage_gates", "case": spec.name, "status": result.status.value,
                    "seconds": result.seconds, "rows": rows,
                    "sample_rows": int(sampled) if sampled is not None else "all",
                    "share_of_training": round(result.seconds / training, 4)})
    return out


def run(work: Path) -> list[dict]:
    work.mkdir(parents=True, exist_ok=True)
    ctx = _context(work)
    rows = len(ctx.frame)
    started = time.perf_counter()
    ctx.model = fit(build_pipeline(ctx.cfg), ctx.split.train, ctx.cfg)
    training = time.perf_counter() - started
    ctx.metrics, ctx.scores = evaluate(ctx.model, ctx.split.test, ctx.cfg)
    path = work / "model.joblib"
    joblib.dump(ctx.model, path)
    ctx.exported = Exported(dir=work, joblib_path=path, mlflow_model_dir=work, model_uri="",
                            golden_path=work / "golden.parquet")
    out = [{"section": "leakage_gates", "case": "train demo model (reference)", "status": "-",
            "seconds": round(training, 3), "rows": len(ctx.split.train), "sample_rows": "all",
            "share_of_training": 1.0}]
    # The leakage family, and split_drift (a data gate judged at the leakage stage, on the split).
    leakage = [g for g in registry.gates() if g.family is Family.LEAKAGE or g.stage == "leakage"]
    out += _timed(registry.specs(leakage, ctx.cfg, ctx.values()), rows, training)
    total = sum(r["seconds"] for r in out[1:])
    out.append({"section": "leakage_gates", "case": "all leakage gates", "status": "-",
                "seconds": round(total, 3), "rows": rows, "sample_rows": "-",
                "share_of_training": round(total / training, 4)})
    return out
