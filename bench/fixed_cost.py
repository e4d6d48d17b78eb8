"""The fixed cost of a run before any row is read (issue 13.3): importing the flow's libraries and
starting (and stopping) Prefect's ephemeral API, one after the other as before and overlapped as
`gates run` does now (gates.ephemeral.import_while_starting_api). Each case is a fresh
interpreter; they share one PREFECT_HOME whose database was created by a first, unrecorded start
(a user's second run: no migrations). The median of `REPEATS` runs, with the load average.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPEATS = 3
MODULES = ["flows.retrain", "flows.runners", "gates.console_run", "gates.progress"]

_PROBE = r"""
import json, sys, time
started = time.perf_counter()
case, modules = sys.argv[1], json.loads(sys.argv[2])
from gates import ephemeral
out = {}
if case == "imports":
    import importlib
    for m in modules:
        importlib.import_module(m)
elif case == "api":
    ephemeral.start_ephemeral_api()
elif case == "sequential":
    import importlib
    for m in modules:
        importlib.import_module(m)
    ephemeral.start_ephemeral_api()
elif case == "overlapped":
    out.update(ephemeral.import_while_starting_api(modules))
elif case == "cli_help":
    import gates.cli  # what `gates --help` and validate-config import
out["ready"] = time.perf_counter() - started
if case in ("api", "sequential", "overlapped"):
    from prefect.server.api.server import SubprocessASGIServer
    stop = time.perf_counter()
    SubprocessASGIServer().stop()
    out["stop"] = time.perf_counter() - stop
print(json.dumps(out))
"""

CASES = {
    "cli_help": "import gates.cli (gates --help, validate-config, demo-data)",
    "imports": "import the flow's libraries only",
    "api": "start the ephemeral API only",
    "sequential": "imports, then the API (before)",
    "overlapped": "imports while the API starts (gates run now)",
}


def _once(case: str, home: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": home}
    done = subprocess.run([sys.executable, "-c", _PROBE, case, json.dumps(MODULES)], env=env,
                          capture_output=True, text=True, timeout=900, cwd=Path(__file__).parents[1])
    if done.returncode != 0:
        raise RuntimeError(f"fixed-cost probe {case} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(work: Path) -> list[dict]:
    rows = []
    home = tempfile.mkdtemp(prefix="gates-fixed-")
    first = _once("api", home)  # creates and migrates the database: a first run's extra cost
    rows.append({"section": "fixed_cost", "case": "first start of the API (creates its database)",
                 "seconds": round(first["ready"], 2), "repeats": 1, "load_1min": round(os.getloadavg()[0], 2)})
    for case, label in CASES.items():
        runs = [_once(case, home) for _ in range(REPEATS)]
        ready = statistics.median(r["ready"] for r in runs)
        row = {"section": "fixed_cost", "case": label, "seconds": round(ready, 2),
               "repeats": REPEATS, "load_1min": round(os.getloadavg()[0], 2)}
        if "stop" in runs[0]:
            row["stop_seconds"] = round(statistics.median(r["stop"] for r in runs), 2)
            row["with_stop"] = round(ready + row["stop_seconds"], 2)
        rows.append(row)
    before = next(r for r in rows if r["case"] == CASES["sequential"])
    after = next(r for r in rows if r["case"] == CASES["overlapped"])
    rows.append({"section": "fixed_cost", "case": "saved by overlapping",
                 "seconds": round(before["seconds"] - after["seconds"], 2),
                 "share_saved": round(1 - after["seconds"] / before["seconds"], 3) if before["seconds"] else 0.0})
    return rows
