"""Seconds per stage of the whole flow, and the gates' share of it, on the demo and on 1M rows."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from bench.workload import RUN_DATE, demo_raw_config, write_config
from gates.demo_data import write_demo_data



def _config(work: Path, rows_per_day: int) -> Path:
    data = work / "data"
    write_demo_data(data, RUN_DATE - dt.timedelta(days=1), days=60, rows_per_day=rows_per_day)
    return write_config(demo_raw_config(work, data), work / "pipeline.yaml")


def run(work: Path) -> list[dict]:
    from flows.retrain import retrain

    rows = []
    for case, per_day in (("demo (2k rows/day x 60 days)", 2000), ("1M rows (60 partitions)", 16_700)):
        case_dir = work / str(per_day)
        case_dir.mkdir(parents=True)
        config = _config(case_dir, per_day)
        started = time.perf_counter()
        state = retrain(str(config), RUN_DATE.isoformat(), return_state=True)
        wall = time.perf_counter() - started
        summary = state.result(raise_on_failure=False)
        stages = summary.stage_seconds
        total = sum(stages.values())
        gate_secs = sum(v for k, v in stages.items() if k.startswith("gates."))
        n = int(summary.report.by_name("partitions").measured.get("rows", 0))
        row = {"section": "flow", "case": case, "verdict": summary.verdict, "rows": n,
               "seconds": round(total, 2), "rows_per_second": round(n / total, 1) if total else 0.0,
               "gate_share": round(gate_secs / total, 3) if total else 0.0,
               # the model evidence (#14) inside this run: collect + its MLflow logging and plots,
               # against the flow run's wall time (Prefect and publishing included)
               "flow_wall_seconds": round(wall, 2),
               "evidence_seconds": round(sum(summary.evidence_seconds.values()), 2),
               "evidence_share_of_run": round(sum(summary.evidence_seconds.values()) / wall, 3)}
        row.update({f"s.{k}": round(v, 2) for k, v in stages.items()})
        rows.append(row)
    return rows
