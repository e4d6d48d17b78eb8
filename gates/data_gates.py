"""Data gates: the contract, partition completeness (and, with gates.drift, drift).

Importable without Prefect. Each gate takes what it needs and returns one GateResult.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

from gates.config import ContractGate, PartitionsGate, PipelineConfig
from gates.contract import load_suite, validate_frame
from gates.ingest import Ingested
from gates.results import Family, GateResult, judge


def check_partitions(ingested: Ingested, settings: PartitionsGate) -> GateResult:
    """Every expected partition is present, readable and non-empty."""
    failures: list[str] = []
    missing = [d for d in ingested.expected if d not in ingested.files]
    if missing:
        failures.append(f"missing partitions: {_dates(missing)}")
    if ingested.errors:
        for path, error in sorted(ingested.errors.items()):
            failures.append(f"unreadable file {path}: {error}")
    empty = [
        d for d in ingested.expected
        if d in ingested.files and not any(p in ingested.errors for p in ingested.files[d])
        and ingested.rows(d) < settings.min_rows
    ]
    if empty:
        failures.append(f"empty partitions (< {settings.min_rows} rows): {_dates(empty)}")
    rows = [ingested.rows(d) for d in ingested.expected]
    return judge(
        "partitions",
        Family.DATA,
        failures=failures,
        measured={
            "expected": len(ingested.expected),
            "present": len(ingested.expected) - len(missing),
            "missing": len(missing),
            "empty": len(empty),
            "unreadable_files": len(ingested.errors),
            "rows": sum(rows),
        },
        threshold={"min_rows": settings.min_rows},
        hint="Check the upstream job that writes these partitions (did it run, did it finish, "
        "did it write to the right path?) before retraining.",
        ok_summary=f"{len(ingested.expected)} partitions present, {sum(rows)} rows",
        details={"missing": [d.isoformat() for d in missing], "empty": [d.isoformat() for d in empty],
                 "unreadable": {str(p): e for p, e in ingested.errors.items()}},
    )


def check_contract(ingested: Ingested, cfg: PipelineConfig, settings: ContractGate) -> GateResult:
    """The Great Expectations suite, validated per partition so failures name the partition."""
    suite = load_suite(cfg.expectations)
    days = [d for d in ingested.expected if ingested.frames.get(d)]
    if not days:
        raise FileNotFoundError(f"no readable partitions under {cfg.data.path} to validate")

    def validate(day: dt.date):
        return day, *validate_frame(suite, ingested.partition_frame(day), settings.unexpected_samples)

    failures: list[str] = []
    broken: dict[str, list[str]] = {}
    evaluated = 0
    with ThreadPoolExecutor(max_workers=cfg.gates.partitions.workers) as pool:
        for day, ok, problems, count in pool.map(validate, days):
            evaluated += count
            if not ok:
                broken[day.isoformat()] = [p.describe() for p in problems]
    # Group identical problems across partitions so a schema change reads as one finding.
    by_problem: dict[str, list[str]] = {}
    for day, problems in broken.items():
        for problem in problems:
            by_problem.setdefault(problem.split(", e.g.")[0].split(", observed")[0], []).append(day)
    for problem, problem_days in by_problem.items():
        example = next(p for p in broken[problem_days[0]] if p.startswith(problem))
        failures.append(f"{example} in {len(problem_days)} partition(s): {_shorten(problem_days)}")
    return judge(
        "contract",
        Family.DATA,
        failures=failures,
        measured={"partitions_validated": len(days), "partitions_failed": len(broken),
                  "expectations_evaluated": evaluated},
        threshold={"suite": str(cfg.expectations)},
        hint="Compare the failing columns with the upstream schema; if the change is intended, "
        "update the suite in expectations/ (gates suite init) and commit it with the code.",
        ok_summary=f"suite {cfg.expectations.name}: {len(days)} partitions conform",
        details={"failures_by_partition": broken},
    )


def _dates(days: list[dt.date]) -> str:
    return _shorten([d.isoformat() for d in days])


def _shorten(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def plan(ctx) -> list:
    """The data gates for this run, in the order they are reported."""
    from gates.results import plan_gate

    g = ctx.cfg.gates
    return [
        *plan_gate("partitions", Family.DATA, g.partitions, check_partitions, ctx.ingested, g.partitions),
        *plan_gate("contract", Family.DATA, g.contract, check_contract, ctx.ingested, ctx.cfg, g.contract),
    ]


def plan_after_split(ctx) -> list:
    """Data gates that need the split (train against test drift)."""
    return []
