"""The demo pipeline as a benchmark workload: its config pointed at scratch storage."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from gates.scenarios import scratch_config

REPO = Path(__file__).resolve().parents[1]
RUN_DATE = dt.date(2026, 6, 30)


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
