"""`make bench`: figures you can quote, written to bench/results/ and printed.

Each section is a module in bench/ with `run(workdir) -> list[dict]`; a row has at least
`section`, `case`, `seconds`, and where it applies `rows` and `rows_per_second`.
Run one section: `python -m bench.run flow`.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from bench.goals import judged

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

SECTIONS = ["fixed_cost", "flow", "data_gates", "memory", "leakage_gates", "scale", "model_evidence", "peers"]
RESULTS = Path(__file__).parent / "results"


def main(argv: list[str]) -> None:
    chosen = argv or [s for s in SECTIONS if (Path(__file__).parent / f"{s}.py").exists()]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="gates-bench-") as tmp:
        for name in chosen:
            module = importlib.import_module(f"bench.{name}")
            section_rows = module.run(Path(tmp) / name)
            for row in section_rows:
                print(_line(row), flush=True)
            rows.extend(section_rows)
    goals = list(judged(rows))  # issue #13's done-when, from this run's figures
    for row in goals:
        print(_line(row), flush=True)
    rows = goals + rows
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"when": dt.datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
            "python": platform.python_version(), "machine": platform.machine(),
            # `uptime`'s load average at the end: other workers share the machine
            "load_average": " ".join(f"{v:.2f}" for v in os.getloadavg())}
    stamp = "-".join(chosen) if argv else "all"
    out = RESULTS / f"bench-{stamp}.json"
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (RESULTS / f"bench-{stamp}.md").write_text(_markdown(meta, rows))
    print(f"\nwritten: {out} and {out.with_suffix('.md')}")


def _line(row: dict) -> str:
    extra = ", ".join(f"{k}={_fmt(v)}" for k, v in row.items() if k not in ("section", "case"))
    return f"[{row['section']}] {row['case']}: {extra}"


def _fmt(v) -> str:
    return f"{v:,.3f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)


def _markdown(meta: dict, rows: list[dict]) -> str:
    lines = [f"# Benchmarks ({meta['when']}, {meta['cpus']} CPUs, Python {meta['python']}, "
             f"load average {meta.get('load_average', '?')})", ""]
    for section in dict.fromkeys(r["section"] for r in rows):
        sub = [r for r in rows if r["section"] == section]
        keys = list(dict.fromkeys(k for r in sub for k in r if k != "section"))
        lines += [f"## {section}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(_fmt(r.get(k, "")) for k in keys) + " |" for r in sub]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
