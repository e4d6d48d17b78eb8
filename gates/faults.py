"""Fault injection: break a copy of a pipeline's data or config the way production breaks.

Each fault names the gate that must block it. The scenarios command and the tests run the real
flow on the broken copy, so a user can run the whole catalogue against their own config and data.

A fault is a function `(target: FaultTarget) -> None` registered with `@fault(...)`; it may
rewrite partition files under `target.data_path` and/or edit the raw config dict
`target.config` (for example to install a hook 'gates.faults:some_hook' or a pipeline factory).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gates.ingest import discover, expected_partitions, read_file
from gates.config import Cadence, DataFormat


@dataclass
class FaultTarget:
    """A private copy of the data plus the raw config dict that a fault may change."""

    data_path: Path
    config: dict[str, Any]
    run_date: dt.date
    seed: int = 0

    @property
    def fmt(self) -> DataFormat:
        return DataFormat(self.config["data"].get("format", "parquet"))

    def window(self) -> list[dt.date]:
        data = self.config["data"]
        return expected_partitions(self.run_date, int(data.get("window_days", 60)),
                                   Cadence(data.get("cadence", "daily")))

    def files(self, day: dt.date) -> list[Path]:
        key = self.config["data"].get("partition_key", "date")
        return discover(self.data_path, key, self.fmt).get(day, [])

    def window_files(self) -> list[Path]:
        return [p for d in self.window() for p in self.files(d)]

    def read(self, path: Path) -> pd.DataFrame:
        return read_file(path, self.fmt)

    def write(self, frame: pd.DataFrame, path: Path) -> None:
        from gates.demo_data import write_frame

        write_frame(frame, path, self.fmt.value)

    def rewrite(self, fn: Callable[[pd.DataFrame], pd.DataFrame], days: list[dt.date] | None = None) -> None:
        """Apply `fn` to every file of the given days (default: the whole window)."""
        for day in days if days is not None else self.window():
            for path in self.files(day):
                self.write(fn(self.read(path)), path)

    def add_hook(self, stage: str, path: str) -> None:
        self.config.setdefault("hooks", {}).setdefault(stage, []).append(path)


@dataclass
class Fault:
    name: str
    expected_gate: str
    description: str
    apply: Callable[[FaultTarget], None]
    tags: list[str] = field(default_factory=list)


FAULTS: dict[str, Fault] = {}


def fault(name: str, expected_gate: str, description: str) -> Callable:
    """Register a fault under `name`, with the gate that must block it."""

    def register(fn: Callable[[FaultTarget], None]) -> Callable[[FaultTarget], None]:
        FAULTS[name] = Fault(name, expected_gate, description, fn)
        return fn

    return register


# --------------------------------------------------------------------------- data faults
