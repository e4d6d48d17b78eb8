"""Issue #13's "done when", read off one `make bench` run's rows: each goal, the figure, met or not.

A goal whose section did not run (`python -m bench.run flow`) is left out, never counted as met.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from bench.peers import OURS

# (goal, section, which row, the row's figure, how the figure is shown, the test it must pass)
Goal = tuple[str, str, Callable[[str], bool], str, str, Callable[[Any], bool]]

GOALS: list[Goal] = [
    ("all gates < 15 % of the run (1.1M rows, training on one thread)", "flow",
     lambda case: case.startswith("1M rows"), "gate_share", "{:.1%}", lambda v: v < 0.15),
    ("artifact gates < 4 s (1.1M rows)", "flow",
     lambda case: case.startswith("1M rows"), "s.gates.artifact", "{:.2f} s", lambda v: v < 4),
    ("fixed per-run overhead < 10 s (imports while the ephemeral API starts, and its stop)", "fixed_cost",
     lambda case: case.startswith("imports while the API starts"), "with_stop", "{:.2f} s", lambda v: v < 10),
    ("peak memory <= 2x the frame (10M rows)", "memory",
     lambda case: case.startswith("10M rows"), "peak_over_frame", "{:.2f}x", lambda v: v <= 2),
    ("model-free data gates within 5x of one pass (1.1M rows)", "data_gates",
     lambda case: case.startswith("1M rows"), "gates_over_single_pass", "{:.2f}x", lambda v: v <= 5),
    ("model-free data gates within 5x of one pass (10M rows)", "data_gates",
     lambda case: case.startswith("10M rows"), "gates_over_single_pass", "{:.2f}x", lambda v: v <= 5),
] + [
    (f">= {floor}x faster than {peer} (1.1M rows, {label})", "peers",
     lambda c, start=start, peer=peer: c.startswith(start) and c.endswith(f": {peer}"), "peer_over_ours",
     "{:.1f}x", lambda v, floor=floor: v >= floor)
    for label, start in (("clean", "1.1M clean:"), ("x0 shifted 0.3 SD", "1.1M x0 "))
    for peer, floor in (("deepchecks data_integrity", 20), ("deepchecks train_test_validation", 20),
                        ("evidently DataDriftPreset", 5))
] + [  # the speed is not bought with the verdicts: clean passes, the 0.3-SD shift is flagged
    ("ours passes the clean data (1.1M rows)", "peers", lambda c: c == f"1.1M clean: {OURS}",
     "verdict", "{}", lambda v: v == "pass"),
    ("ours flags the x0 0.3-SD shift (1.1M rows)", "peers",
     lambda c: c.startswith("1.1M x0 ") and c.endswith(f": {OURS}"), "verdict", "{}",
     lambda v: v in ("warn", "block")),
]


def judged(rows: list[dict]) -> Iterator[dict]:
    """One row per goal whose figure this run measured."""
    for goal, section, which, key, shown, test in GOALS:
        for row in rows:
            value = row.get(key)
            if row.get("section") == section and which(str(row.get("case", ""))) and value not in (None, "", "-"):
                yield {"section": "goals", "case": goal, "figure": shown.format(value),
                       "met": "yes" if test(value) else "NO"}
                break
