"""Scale-out: the data stage's gates (they read every partition) on a Dask LocalCluster of 1 and
2 worker processes, through prefect-dask's DaskTaskRunner, on 1M and 10M rows; Prefect's thread
runner in one process as the reference.

Timed: the gates only (submitted, resolved), not writing or reading the partitions, nor starting
the cluster. Each gate is one Dask task that receives the window's frame, so a worker's share is
whole gates, not partitions: with 3-4 gates, 2 workers can at best halve the slowest pair.

Measured here (2 cores): each gate task ships the whole run context (window frame and its
partitions) to a worker, so Dask costs more than it saves on one machine: at 1M rows the thread
runner is ~10x faster. At 10M rows the driver holds ~10 GB and each worker ~5 GB, so the 10M case
runs the thread runner only by default; GATES_BENCH_SCALE_10M_WORKERS=0,1,2 adds the Dask cases
(needs ~25 GB of RAM). GATES_BENCH_SCALE_ROWS=1000000 skips the 10M case.
"""

from __future__ import annotations

import datetime as dt
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
    return write_config(demo_raw_config(work, data, window_days=WINDOW_DAYS), work / "pipeline.yaml")


@flow(name="bench-data-gates", log_prints=False)
def data_stage(config_path: str) -> dict:
    """Ingest in the flow's process, then run the data gates on the flow's task runner."""
    from flows.retrain import gate_task
    from gates import data_gates, tracking
    from gates.config import load_config
    from gates.context import RunContext
    from gates.ingest import ingest

    cfg = load_config(config_path)
    tracking.configure(cfg)
    ctx = RunContext(cfg=cfg, run_date=RUN_DATE)
    ctx.ingested = ingest(cfg, RUN_DATE)
    ctx.frame = ctx.ingested.combined()
    if hasattr(data_gates, "prepare"):
        data_gates.prepare(ctx)
    specs = data_gates.plan(ctx)
    started = time.perf_counter()
    results = [f.result() for f in [gate_task.submit(s.name, s) for s in specs]]
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": len(ctx.frame), "gates": len(results),
            "verdicts": ",".join(f"{r.name}={r.status.value}" for r in results)}


def _runner(workers: int):
    if workers == 0:
        return None
    from prefect_dask import DaskTaskRunner

    return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                          cluster_kwargs={"n_workers": workers, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None})


def _workers(size: int) -> list[int]:
    if size < 10_000_000:
        return [0, 1, 2]
    return [int(w) for w in os.environ.get("GATES_BENCH_SCALE_10M_WORKERS", "0").split(",") if w.strip()]


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
                         "seconds": round(out["seconds"], 3), "rows": out["rows"],
                         "rows_per_second": round(out["rows"] / out["seconds"]), "gates": out["gates"],
                         "verdicts": out["verdicts"]})
    return rows
