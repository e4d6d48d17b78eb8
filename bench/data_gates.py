"""The data gates on 1M rows (30 partitions x 20 columns) and on 10M rows: seconds, rows/s, GE share.

The data is the demo churn data widened to 20 columns with 9 extra numeric features; its suite is
inferred with `gates suite init` (65+ expectations). The champion's reference profile is the
same window's, so drift is measured in full. Reading the partitions (ingest) is reported apart:
it is not a gate.
"""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.workload import EXTRA, RUN_DATE, demo_raw_config, write_config, write_wide

DAYS = 30


def _config(work: Path, rows_per_day: int):
    from gates.config import load_config
    from gates.suite_init import infer_suite, write_suite

    data = work / "data"
    write_wide(data, rows_per_day, DAYS)
    raw = demo_raw_config(work, data, window_days=DAYS, serving_features=None)
    raw["data"]["features"]["numeric"] += EXTRA
    raw["expectations"] = str(work / "suite.json")
    (work / "suite.json").write_text("{}")
    path = write_config(raw, work / "pipeline.yaml")
    cfg = load_config(path)
    write_suite(infer_suite(cfg, RUN_DATE - dt.timedelta(days=DAYS), RUN_DATE - dt.timedelta(days=1)),
                work / "suite.json")
    return cfg


def single_pass(cfg) -> float:
    """The least any gate can cost: read every partition file of the window once (pyarrow, in
    parallel threads) and reduce every column once (min and max, or distinct values for text)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = sorted(Path(cfg.data.path).rglob("*.parquet"))
    started = time.perf_counter()

    def one(path: Path) -> None:
        table = pq.read_table(path)
        for column in table.columns:
            if column.type == "string" or str(column.type).startswith("large_string"):
                pc.count_distinct(column)
            else:
                pc.min_max(column)

    with ThreadPoolExecutor(max_workers=cfg.gates.partitions.workers) as pool:
        list(pool.map(one, files))
    return time.perf_counter() - started


def _timed(fn, *args):
    started = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - started


def run(work: Path) -> list[dict]:
    from gates import registry
    from gates.context import RunContext
    from gates.ingest import ingest
    from gates.profile import profile_run_frame
    from gates.results import Status

    rows = []
    for case, per_day in (("1M rows, 30 partitions x 20 columns", 33_400),
                          ("10M rows, 30 partitions x 20 columns", 334_000)):
        case_dir = work / str(per_day)
        case_dir.mkdir(parents=True)
        cfg = _config(case_dir, per_day)
        ctx = RunContext(cfg=cfg, run_date=RUN_DATE)
        ctx.ingested, ingest_s = _timed(ingest, cfg, RUN_DATE)
        ctx.frame = ctx.ingested.combined()
        n = len(ctx.frame)
        g = cfg.gates
        ctx.reference = profile_run_frame(ctx.frame, cfg, g.drift)  # the champion's, not timed
        started = time.perf_counter()
        ctx.profile, profile_s = _timed(profile_run_frame, ctx.frame, cfg, g.drift, ctx.reference)
        specs = registry.plan("data", cfg, ctx.values())
        # As the flow runs them: the stage's gates in parallel threads (2 cores).
        with ThreadPoolExecutor(max_workers=len(specs)) as pool:
            futures = {spec.name: pool.submit(_timed, spec.run) for spec in specs}
            results = {name: f.result() for name, f in futures.items()}
        total = time.perf_counter() - started
        one_pass = min(single_pass(cfg) for _ in range(2))  # the second read is from the page cache, as ingest's
        contract = results["contract"][0]
        ge = float(contract.measured.get("ge_seconds", 0.0))
        row = {"section": "data_gates", "case": case, "rows": n, "columns": ctx.frame.shape[1],
               "seconds": round(total, 3), "rows_per_second": round(n / total, 1),
               "ge_share": round(ge / total, 3), "ge_seconds": round(ge, 3),
               "ge_calls": int(contract.measured.get("ge_calls", 0)),
               "expectations": int(contract.measured.get("expectations_evaluated", 0)),
               "s.profile": round(profile_s, 3),
               **{f"s.{name}": round(secs, 3) for name, (_, secs) in results.items()},
               "s.ingest (not a gate)": round(ingest_s, 3),
               # the gates (profile included) against one read-and-reduce pass over the same files
               "single_pass_seconds": round(one_pass, 3),
               "gates_over_single_pass": round(total / one_pass, 2),
               "all_pass": all(r.status in (Status.PASS, Status.WARN) for r, _ in results.values())}
        rows.append(row)
        del ctx
    return rows
