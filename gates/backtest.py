"""Replay the gates over past run dates on the pipeline's own partitions (`gates backtest`).

Each date meets the previous passing date's model (and data profile) as its champion, as a
scheduled pipeline would; a blocked date leaves the champion where it was, so a false block shows
up as the streak it causes in production. Everything goes to an isolated MLflow store under the
output folder (never the pipeline's registry). Partitions are read once and reused across dates;
the artifact probes (export, fresh-process load, serving skew) run only with `probes=True`.

No stage glue of its own: each date runs flows/stages.py `run_until`, the flow's own steps and
gate plans, in process without Prefect.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gates import data_gates, registry
from gates.config import PipelineConfig, parse_config
from gates.context import RunContext
from gates.ingest import Ingested, expected_partitions, ingest
from gates.results import GateReport, GateResult, Status
from gates.tracking import Champion


class PartitionCache:
    """Every partition between two dates, read once (with ingest's own reader) and reused."""

    def __init__(self, cfg: PipelineConfig, first_run: dt.date, last_run: dt.date) -> None:
        self.cfg = cfg
        span = (last_run - first_run).days + cfg.data.window_days
        wide = cfg.model_copy(deep=True)
        wide.data.window_days = span
        self.all = ingest(wide, last_run)

    def ingested(self, run_date: dt.date) -> Ingested:
        expected = expected_partitions(run_date, self.cfg.data.window_days, self.cfg.data.cadence)
        files = {d: self.all.files[d] for d in expected if d in self.all.files}
        paths = {p for ps in files.values() for p in ps}
        return Ingested(run_date=run_date, expected=expected, files=files,
                        frames={d: self.all.frames[d] for d in expected if d in self.all.frames},
                        errors={p: e for p, e in self.all.errors.items() if p in paths},
                        hashes={p: h for p, h in self.all.hashes.items() if p in paths},
                        all_dirs=self.all.all_dirs)

    def window_frame(self, run_date: dt.date) -> pd.DataFrame:
        return self.ingested(run_date).combined()


class ContractMemo:
    """Each partition is validated against the suite once: consecutive windows share most days."""

    def __init__(self) -> None:
        self.failures: dict[str, list] = {}

    def check(self, ingested: Ingested, cfg: PipelineConfig) -> GateResult:
        from gates.contract import WindowValidation, load_suite, validate_partitions

        settings = cfg.gates.contract
        days = data_gates.contract_days(ingested, cfg)
        new = {d.isoformat(): ingested.partition_frame(d) for d in days if d.isoformat() not in self.failures}
        done = (validate_partitions(load_suite(cfg.expectations), new, settings.unexpected_samples)
                if new else WindowValidation({}, 0, 0, 0.0))
        for day in new:
            self.failures[day] = done.failures.get(day, [])
        window = {d.isoformat(): self.failures[d.isoformat()] for d in days if self.failures[d.isoformat()]}
        outcome = WindowValidation(window, done.expectations_evaluated, done.ge_calls, done.ge_seconds,
                                   ge_reruns=done.ge_reruns)
        return data_gates.contract_result(outcome, days, cfg, settings)


@dataclass
class BacktestChampion:
    """The last passing date's model, its window profile, and its run (for the report)."""

    date: dt.date
    model: Any
    profile: dict[str, Any]
    run_id: str = ""


@dataclass
class DateOutcome:
    run_date: dt.date
    verdict: str
    champion_date: dt.date | None
    results: list[GateResult] = field(default_factory=list)
    seconds: float = 0.0


def isolated_config(raw: dict[str, Any], out: Path) -> PipelineConfig:
    """The pipeline's config, with MLflow and the export redirected into `out`."""
    raw = copy.deepcopy(raw)
    raw["mlflow"] = {**raw["mlflow"], "tracking_uri": f"sqlite:///{(out / 'mlflow.db').resolve()}",
                     "artifact_root": str((out / "mlartifacts").resolve()),
                     "experiment": f"{raw['name']}-backtest",
                     "registered_model": f"{raw['name']}-backtest"}
    raw["export"] = {**raw.get("export", {}), "dir": str((out / "models").resolve())}
    return parse_config(raw, "backtest")


def replay_date(cfg: PipelineConfig, run_date: dt.date, cache: PartitionCache,
                champion: BacktestChampion | None, probes: bool = False,
                run_id: str = "", contract: ContractMemo | None = None) -> tuple[DateOutcome, RunContext]:
    """One scheduled run on `run_date`: the pipeline's own stages (flows/stages.py `run_until`)
    up to evaluate (export with `probes`), stopping at the first blocking stage. The partitions
    come from the cache, the champion's model and profile from memory, the contract's
    per-partition verdicts from the memo; nothing is promoted."""
    from flows.stages import Progress, run_until

    started = time.perf_counter()
    report = GateReport()
    ctx = RunContext(cfg=cfg, run_date=run_date, run_id=run_id or run_date.isoformat())
    if champion is not None:
        ctx.champion = Champion(version=champion.date.isoformat(), run_id=champion.run_id,
                                model_uri=f"backtest:{champion.date.isoformat()}")
        ctx.reference, ctx.champion_model = champion.profile, champion.model
    ctx.ingested = cache.ingested(run_date)

    def run_gates(stage: str, c: RunContext) -> list[GateResult]:
        specs = registry.plan(stage, c.cfg, c.values())
        for spec in specs:
            if spec.name == "contract" and contract is not None:
                spec.check = lambda: contract.check(c.ingested, c.cfg)
        return [spec.run() for spec in specs]

    progress = Progress()
    try:
        run_until(ctx, "export" if probes else "evaluate", report=report, progress=progress,
                  run_gates=run_gates)
    except Exception as exc:  # noqa: BLE001 - a crashed step blocks, as in the flow
        name = f"stage_{progress.current}"
        report.extend([GateResult(name=name, family=registry.family_of(name), status=Status.ERROR,
                                  summary=f"pipeline step {progress.current} crashed: "
                                  f"{type(exc).__name__}: {exc}")])
    outcome = DateOutcome(run_date, report.verdict, champion.date if champion else None, report.results,
                          round(time.perf_counter() - started, 2))
    return outcome, ctx


# --------------------------------------------------------------------------- the table

KEY_MEASURE = {"label_shift": "change", "contract": "partitions_failed", "partitions": "missing",
               "champion": "change", "split_drift": "features_warning"}


def key_value(result: GateResult) -> float | None:
    """One number per gate for the table: the largest drift statistic, the metric, the change."""
    m = result.numeric_measures()
    if result.name == "drift":
        psis = [v for k, v in m.items() if k.endswith(".psi") and math.isfinite(v)]
        return max(psis) if psis else None
    if result.name == "perfect_metric":
        return next((v for k, v in m.items() if k.startswith("candidate_")), None)
    if result.name == "target_leakage":
        return next((v for k, v in m.items() if k.startswith("max_single_feature_")), None)
    if result.name == "baseline":
        gains = [v for k, v in m.items() if k.startswith("gain_over_")]
        return min(gains) if gains else None
    key = KEY_MEASURE.get(result.name)
    return m.get(key) if key else None


def _level(result: GateResult) -> str:
    return "block" if result.blocks else "warn" if result.status in ("warn", "fail") else "pass"


@dataclass
class Backtest:
    pipeline: str
    every: str
    calibrated: bool
    outcomes: list[DateOutcome]

    @property
    def gates(self) -> list[str]:
        names: list[str] = []
        for o in self.outcomes:
            for r in o.results:
                if r.name not in names:
                    names.append(r.name)
        return names

    def block_rates(self) -> dict[str, dict[str, float | int]]:
        out = {}
        for gate in self.gates:
            ran = [r for o in self.outcomes for r in o.results if r.name == gate]
            blocks = sum(r.blocks for r in ran)
            warns = sum(_level(r) == "warn" for r in ran)
            out[gate] = {"runs": len(ran), "blocks": blocks, "warns": warns,
                         "block_rate": round(blocks / len(ran), 4) if ran else 0.0}
        return out

    @property
    def blocked_dates(self) -> list[dt.date]:
        return [o.run_date for o in self.outcomes if o.verdict == "blocked"]

    def rows(self) -> list[dict[str, Any]]:
        """Long format: one row per date and gate."""
        rows = []
        for o in self.outcomes:
            for r in o.results:
                value = key_value(r)
                rows.append({"date": o.run_date.isoformat(), "champion": o.champion_date.isoformat()
                             if o.champion_date else "", "verdict": o.verdict, "gate": r.name,
                             "level": _level(r), "value": "" if value is None else round(value, 4),
                             "summary": r.summary[:300]})
        return rows

    def markdown(self) -> str:
        gates = self.gates
        n = len(self.outcomes)
        lines = [f"# Backtest of {self.pipeline}: {n} runs every {self.every} "
                 f"({'calibrated' if self.calibrated else 'uncalibrated'})", "",
                 f"Blocked runs: {len(self.blocked_dates)} of {n}"
                 + (f" ({', '.join(d.isoformat() for d in self.blocked_dates)})" if self.blocked_dates else ""),
                 "", "## Block rate per gate", "", "| gate | runs | blocks | warns | block rate |",
                 "|---|---|---|---|---|"]
        for gate, s in self.block_rates().items():
            lines.append(f"| {gate} | {s['runs']} | {s['blocks']} | {s['warns']} | {s['block_rate']:.0%} |")
        lines += ["", "## Date × gate (level and key value)", "",
                  "| date | champion | verdict | " + " | ".join(gates) + " |",
                  "|---|---|---|" + "---|" * len(gates)]
        for o in self.outcomes:
            by = {r.name: r for r in o.results}
            cells = []
            for g in gates:
                r = by.get(g)
                if r is None:
                    cells.append("–")
                    continue
                v = key_value(r)
                cells.append(_level(r) + (f" {v:.3g}" if v is not None and math.isfinite(v) else ""))
            lines.append(f"| {o.run_date} | {o.champion_date or '-'} | {o.verdict} | " + " | ".join(cells) + " |")
        warned = [(o.run_date, r) for o in self.outcomes for r in o.results if _level(r) != "pass"]
        if warned:
            lines += ["", "## Warnings and blocks", ""]
            lines += [f"- {d} `{r.name}` {_level(r)}: {r.summary[:400]}" for d, r in warned]
        return "\n".join(lines) + "\n"

    def write(self, stem: Path) -> tuple[Path, Path]:
        stem.parent.mkdir(parents=True, exist_ok=True)
        csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
        rows = self.rows()
        with open(csv_path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["date"])
            writer.writeheader()
            writer.writerows(rows)
        md_path.write_text(self.markdown())
        return csv_path, md_path


def run_backtest(raw: dict[str, Any], start: dt.date, end: dt.date, every: str, out: Path, *,
                 calibrate: bool = False, probes: bool = False, log_mlflow: bool = True,
                 progress=None) -> tuple[Backtest, dict[str, Any] | None]:
    """Replay every run date from start to end; with `calibrate`, first learn the natural drift
    from the history before `start` (as a user does before the first scheduled run)."""
    import mlflow

    from gates import calibration as calib
    from gates import tracking

    out.mkdir(parents=True, exist_ok=True)
    cfg = isolated_config(raw, out)
    dates = calib.run_dates(start, end, every)
    history_first = None
    calibration = None
    if calibrate:
        found = sorted(data_gates_discover(cfg))
        if not found:
            raise FileNotFoundError(f"no partitions under {cfg.data.path}")
        history_first = found[0] + dt.timedelta(days=cfg.data.window_days)
        history_last = start - dt.timedelta(days=1)
        cache = PartitionCache(cfg, min(history_first, start), dates[-1])
        calibration = calib.calibrate_history(cfg, cache, history_first, history_last, every)
        path = calib.write(calibration, out / f"{cfg.name}.calibration.json")
        cfg = cfg.model_copy(update={"calibration": path})
    else:
        cache = PartitionCache(cfg, start, dates[-1])
    experiment_id = tracking.configure(cfg) if log_mlflow else None
    outcomes: list[DateOutcome] = []
    champion: BacktestChampion | None = None
    contract = ContractMemo()
    parent = mlflow.start_run(experiment_id=experiment_id, run_name=f"backtest-{start}-{end}") \
        if log_mlflow else None
    try:
        for day in dates:
            child = (mlflow.start_run(experiment_id=experiment_id, run_name=f"{cfg.name}-{day}", nested=True)
                     if log_mlflow else None)
            try:
                outcome, ctx = replay_date(cfg, day, cache, champion, probes,
                                           child.info.run_id if child else "", contract)
                if child:
                    tracking.log_gate_results(outcome.results)
                    mlflow.set_tags({"gates.verdict": outcome.verdict, "run_date": day.isoformat(),
                                     "champion_date": str(outcome.champion_date or "")})
            finally:
                if child:
                    mlflow.end_run()
            outcomes.append(outcome)
            if outcome.verdict == "passed" and ctx.model is not None:
                champion = BacktestChampion(day, ctx.model, ctx.profile, child.info.run_id if child else "")
            if progress:
                progress(outcome)
            Backtest(cfg.name, every, calibration is not None, outcomes).write(out / f"backtest-{cfg.name}")
        result = Backtest(cfg.name, every, calibration is not None, outcomes)
        stem = out / f"backtest-{cfg.name}"
        csv_path, md_path = result.write(stem)
        if log_mlflow:
            mlflow.log_artifact(str(csv_path), "backtest")
            mlflow.log_artifact(str(md_path), "backtest")
            if calibration:
                mlflow.log_dict(calibration, "backtest/calibration.json")
            mlflow.log_metrics({f"block_rate.{g}": s["block_rate"] for g, s in result.block_rates().items()})
            mlflow.log_metric("blocked_runs", len(result.blocked_dates))
    finally:
        if parent:
            mlflow.end_run()
    return result, calibration


def data_gates_discover(cfg: PipelineConfig) -> dict[dt.date, list[Path]]:
    from gates.ingest import discover

    return discover(Path(cfg.data.path), cfg.data.partition_key, cfg.data.format)
