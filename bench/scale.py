"""Scale-out: the data stage on a Dask LocalCluster of 1 and 2 worker processes, through
prefect-dask's DaskTaskRunner, on 1M and 10M rows; Prefect's thread runner in one process as the
reference.

On Dask, the contract's GE validation (the per-partition work) runs as tasks of
`runner.partitions_per_task` partitions that read their own files on the worker; the gates then
judge in the flow's process. Timed: the data gates (submitted, resolved) on their second pass,
with warm workers (`cold_seconds` is the first, with the workers' imports); not writing the
partitions, the flow's own ingest, nor starting the cluster. Workers re-read their partitions, so
on one 2-core machine Dask also pays for a second read. GATES_BENCH_SCALE_ROWS=1000000 skips
the 10M case; GATES_BENCH_SCALE_WORKERS=0,2 picks the runners (0 = threads).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

from prefect import flow

from bench.workload import RUN_DATE, demo_raw_config, write_config
from gates.demo_data import write_demo_data

WINDOW_DAYS = 30


def _config(work: Path, rows: int) -> Path:
    data = work / "data"
    write_demo_data(data, RUN_DATE - dt.timedelta(days=1), days=WINDOW_DAYS, rows_per_day=rows // WINDOW_DAYS)
    raw = demo_raw_config(work, data, window_days=WINDOW_DAYS)
    suite = json.loads(Path(raw["expectations"]).read_text())
    for exp in suite["expectations"]:  # the demo caps a day at 50k rows; these days are bigger
        if exp["type"] == "expect_table_row_count_to_be_between":
            exp["kwargs"]["max_value"] = None
    raw["expectations"] = str(work / "suite.json")
    (work / "suite.json").write_text(json.dumps(suite))
    return write_config(raw, work / "pipeline.yaml")


@flow(name="bench-data-gates", log_prints=False)
def data_stage(config_path: str) -> dict:
    """Ingest in the flow's process, then the data gates as the retrain flow runs them: on Dask,
    groups of partitions are validated on the workers, which read their own files."""
    from flows.retrain import run_gate_tasks
    from flows.stages import no_gates, run_until
    from gates import tracking
    from gates.config import load_config
    from gates.context import RunContext

    cfg = load_config(config_path)
    tracking.configure(cfg)
    ctx = RunContext(cfg=cfg, run_date=RUN_DATE)
    run_until(ctx, "ingest", run_gates=no_gates)
    timings = []
    for _ in range(2):  # the first pass warms the workers (imports, GE contexts): a cold start
        started = time.perf_counter()
        results = run_gate_tasks("data", ctx)
        timings.append(time.perf_counter() - started)
    return {"seconds": timings[1], "cold_seconds": timings[0], "rows": len(ctx.frame),
            "gates": len(results), "verdicts": ",".join(f"{r.name}={r.status.value}" for r in results)}


def _runner(workers: int):
    if workers == 0:
        return None
    from prefect_dask import DaskTaskRunner

    return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                          cluster_kwargs={"n_workers": workers, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None})


def _workers(size: int) -> list[int]:
    return [int(w) for w in os.environ.get("GATES_BENCH_SCALE_WORKERS", "0,1,2").split(",") if w.strip()]


def run(work: Path) -> list[dict]:
    sizes = [1_000_000, 10_000_000]
    cap = int(os.environ.get("GATES_BENCH_SCALE_ROWS", "0") or 0)
    if cap:
        sizes = [n for n in sizes if n <= cap]
    rows = []
    for size in sizes:
        case_dir = work / str(size)
        case_dir.mkdir(parents=True)
        config = _config(case_dir, size)
        for workers in _workers(size):
            runner = _runner(workers)
            bench_flow = data_stage.with_options(task_runner=runner) if runner else data_stage
            out = bench_flow(str(config))
            label = "threads, one process" if workers == 0 else f"Dask LocalCluster, {workers} worker(s)"
            rows.append({"section": "scale", "case": f"{size / 1e6:g}M rows, {label}",
                         "seconds": round(out["seconds"], 3), "cold_seconds": round(out["cold_seconds"], 3),
                         "rows": out["rows"],
                         "rows_per_second": round(out["rows"] / out["seconds"]), "gates": out["gates"],
                         "verdicts": out["verdicts"]})
    return rows
