"""Deterministic pause points, so a test can kill a run with a real signal at an exact step.

Set `GATES_PAUSE_AT=<point>` and `GATES_PAUSE_MARKER=<file>`: when the run reaches that point it
writes the marker (its pid) and sleeps `GATES_PAUSE_SECONDS` (default 120), long enough for the
test to send SIGKILL, SIGINT or SIGTERM. Unset, a pause point costs nothing. Every point is in
the flow's main thread, where Python delivers signals.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

POINTS = (
    "start",           # MLflow run open, tags set, nothing read
    "ingest",          # partitions read, no gate run
    "gates.data",      # data gates judged
    "split",           # train/test split made
    "gates.leakage",   # leakage gates judged
    "train",           # candidate and baselines fitted
    "evaluate",        # candidate, baselines and champion scored
    "gates.model",     # model gates judged
    "export",          # files written, nothing verified or registered
    "gates.artifact",  # exported files verified, nothing registered
    "promote",         # version registered (pending), alias not moved
    "promoted",        # alias moved, report not yet published
    "publish",         # verdict tag written, report not yet
)


def pause_point(point: str) -> None:
    if point not in POINTS:
        raise ValueError(f"pause point {point!r}: known points are {', '.join(POINTS)}")
    if os.environ.get("GATES_PAUSE_AT") != point:
        return
    marker = os.environ.get("GATES_PAUSE_MARKER")
    if marker:  # written whole, then renamed: a waiter never reads a half-written marker
        tmp = Path(f"{marker}.{os.getpid()}.tmp")
        tmp.write_text(str(os.getpid()))
        os.replace(tmp, marker)
    time.sleep(float(os.environ.get("GATES_PAUSE_SECONDS", "120")))
