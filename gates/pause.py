"""Deterministic pause points, so a test can kill a run with a real signal at an exact step.

Set `GATES_PAUSE_AT=<point>` (`export` or `promote`) and `GATES_PAUSE_MARKER=<file>`: when the
run reaches that point it writes the marker (its pid) and sleeps `GATES_PAUSE_SECONDS`
(default 120), long enough for the test to send SIGKILL. Unset, a pause point costs nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

POINTS = ("export", "promote")


def pause_point(point: str) -> None:
    if point not in POINTS:
        raise ValueError(f"pause point {point!r}: known points are {', '.join(POINTS)}")
    if os.environ.get("GATES_PAUSE_AT") != point:
        return
    marker = os.environ.get("GATES_PAUSE_MARKER")
    if marker:
        Path(marker).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("GATES_PAUSE_SECONDS", "120")))
