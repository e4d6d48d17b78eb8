"""Peak memory of a run's model-free part at 10M rows (30 partitions x 20 columns), against the
frame it works on: ingest, the data gates (in parallel threads, as the flow runs them), the split
and the leakage gates. Training is left out: its memory is the estimator's, not the gates'.

Measured in a fresh child process (`python -m bench.memory CONFIG`), so the peak (the kernel's
VmHWM, which starts anew at exec where ru_maxrss keeps the forking parent's) is this work's
alone; the libraries' own footprint after import is reported apart.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROWS_PER_DAY = 334_000  # x 30 days: 10M rows, as bench/data_gates.py


def _status_bytes(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024  # kB
    return 0


def _rss_bytes() -> int:
    return _status_bytes("VmRSS")


def _peak_bytes() -> int:
    return _status_bytes("VmHWM")


def measure(config: str) -> dict:
    """In the child: run up to the leakage gates; the peak RSS against the frame's bytes."""
    from bench.workload import RUN_DATE
    from flows.stages import run_until
    from gates import registry
    from gates.config import load_config
    from gates.context import RunContext

    def threaded(stage: str, ctx: RunContext):
        specs = registry.plan(stage, ctx.cfg, ctx.values())
        with ThreadPoolExecutor(max_workers=max(1, len(specs))) as pool:
            return list(pool.map(lambda spec: spec.run(), specs))

    after_imports = _rss_bytes()
    ctx = RunContext(cfg=load_config(config), run_date=RUN_DATE)
    passed = run_until(ctx, "split", run_gates=threaded)
    frame = int(ctx.frame.memory_usage(deep=True).sum())
    return {"rows": len(ctx.frame), "frame_bytes": frame, "after_imports_bytes": after_imports,
            "peak_bytes": _peak_bytes(), "gates_passed": passed}


def run(work: Path) -> list[dict]:
    from bench.data_gates import _config

    work.mkdir(parents=True, exist_ok=True)
    cfg = _config(work, ROWS_PER_DAY)
    config = work / "pipeline.yaml"
    done = subprocess.run([sys.executable, "-m", "bench.memory", str(config)], capture_output=True,
                          text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    got = json.loads(done.stdout.strip().splitlines()[-1])
    gib = 1024 ** 3
    work_peak = got["peak_bytes"] - got["after_imports_bytes"]
    return [{"section": "memory", "case": f"10M rows, {cfg.data.window_days} partitions x 20 columns: "
             "ingest + data gates + split + leakage gates", "rows": got["rows"],
             "frame_gib": round(got["frame_bytes"] / gib, 2),
             "libraries_gib": round(got["after_imports_bytes"] / gib, 2),
             "peak_gib": round(got["peak_bytes"] / gib, 2),
             "peak_over_frame": round(got["peak_bytes"] / got["frame_bytes"], 2),
             "work_peak_over_frame": round(work_peak / got["frame_bytes"], 2),
             "gates_passed": got["gates_passed"]}]


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
