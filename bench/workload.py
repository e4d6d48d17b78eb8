"""The demo pipeline as a benchmark workload: its config pointed at scratch storage."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from gates.scenarios import scratch_config

REPO = Path(__file__).resolve().parents[1]
RUN_DATE = dt.date(2026, 6, 30)
EXTRA = [f"x{i}" for i in range(9)]  # numeric features that widen the demo data to 20 columns


def write_wide(root: Path, rows_per_day: int, days: int) -> None:
    """The demo churn partitions for the `days` before RUN_DATE, widened to 20 columns with the
    seeded gamma features EXTRA (as bench/data_gates.py writes them)."""
    import numpy as np

    from gates.demo_data import Customers, generate_day, partition_path, write_frame

    customers = Customers.make(7)
    for k in range(days, 0, -1):
        day = RUN_DATE - dt.timedelta(days=k)
        frame = generate_day(day, rows_per_day, 7, customers)
        rng = np.random.default_rng([7, day.toordinal(), 9])
        for i, col in enumerate(EXTRA):
            frame[col] = rng.gamma(2.0 + i, 10.0, size=len(frame)).round(3)
        write_frame(frame, partition_path(root, day))


def demo_raw_config(work: Path, data: Path, **data_fields: Any) -> dict[str, Any]:
    """configs/demo.yaml reading `data`, with MLflow and exports under `work`."""
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw["expectations"] = str(REPO / "expectations" / "churn.json")
    raw = scratch_config(raw, work, data)
    raw["data"].update(data_fields)
    return raw


def write_config(raw: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
