"""The scheduled retraining flow: ingest → validate → train → evaluate → export → verify → promote.

Each stage runs only when every blocking gate before it passed. A blocked run ends the Prefect
flow run Failed with the one-sentence cause, tags the MLflow run `gates.verdict=blocked`, and
never moves the champion alias. The stages are data (flows/stages.py); this module runs them as
Prefect tasks, their gates as parallel gate tasks, and hands every record to the publisher
(flows/publisher.py).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.states import Completed, Failed  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

from flows.publisher import MlflowPublisher  # noqa: E402
from flows.runners import is_distributed, local_gates  # noqa: E402
from flows.stages import STAGES, Progress, Stage, run_until  # noqa: E402
from gates import data_gates, registry, report, tracking  # noqa: E402
from gates.config import ConfigError, load_config  # noqa: E402
from gates.context import RunContext  # noqa: E402
from gates.diagnosis import Diagnosis, changes_between, diagnose  # noqa: E402
from gates.preflight import preflight  # noqa: E402
from gates.results import GateReport, GateResult, GateSpec  # noqa: E402


class RunSummary(BaseModel):
    """What a run did, returned by the flow and printed by the CLI."""

    pipeline: str
    run_date: str
    verdict: str
    headline: str
    stages_run: list[str] = Field(default_factory=list)
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    mlflow_run_id: str = ""
    experiment_id: str = ""
    tracking_uri: str = ""
    primary_metric: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)
    baseline_metrics: dict[str, dict[str, float]] = Field(default_factory=dict)
    champion_before: str | None = None
    champion_metrics: dict[str, float] | None = None
    promoted_version: str | None = None
    model_uri: str | None = None
    notes: list[str] = Field(default_factory=list)
    champion_run_id: str | None = None
    report: GateReport = Field(default_factory=GateReport)
    diagnosis: Diagnosis | None = None
    report_markdown: str = ""


# --------------------------------------------------------------------------- tasks


@task(name="gate", task_run_name="gate-{name}", cache_policy=NO_CACHE, retries=0)
def gate_task(name: str, spec: GateSpec) -> GateResult:
    return spec.run()


# One Prefect task per step, named after it (ingest, split, train, evaluate, export, promote).
STEP_TASKS = {stage.name: task(stage.step, name=stage.name, cache_policy=NO_CACHE) for stage in STAGES}


def step_as_task(stage: Stage, ctx: RunContext) -> None:
    STEP_TASKS[stage.name](ctx)


@task(name="contract-partitions", task_run_name="contract-{first}", cache_policy=NO_CACHE)
def contract_partitions_task(first: str, files: dict[str, list[str]], fmt: str, suite_path: str,
                             unexpected_samples: int):
    """A group of partitions validated where the task runs (a Dask worker): reads its own files."""
    return data_gates.validate_partition_files(files, fmt, suite_path, unexpected_samples)


def spread_contract(ctx: RunContext):
    """On Dask, the contract's validation goes to the workers, a group of partitions per task; the
    contract gate merges their validations (its `contract_validations` input). None: in-process."""
    cfg, settings = ctx.cfg, ctx.cfg.gates.contract
    if not settings.enabled or not is_distributed():
        return None
    try:
        days = data_gates.contract_days(ctx.ingested, cfg)
    except FileNotFoundError:
        return None  # the in-process gate reports it
    size = cfg.runner.partitions_per_task
    futures = [
        contract_partitions_task.submit(
            group[0].isoformat(),
            {d.isoformat(): [str(p.resolve()) for p in ctx.ingested.files[d]] for d in group},
            cfg.data.format.value, str(Path(cfg.expectations).resolve()), settings.unexpected_samples)
        for group in (days[i:i + size] for i in range(0, len(days), size))
    ]
    return lambda: [f.result() for f in futures]


def run_gate_tasks(stage: str, ctx: RunContext) -> list[GateResult]:
    """Run a stage's gates in parallel (on threads in the flow's process); every future is
    resolved so no failure is lost."""
    if stage == "data":
        ctx.contract_validations = spread_contract(ctx)
    specs = registry.plan(stage, ctx.cfg, ctx.values())
    with local_gates() as local:
        futures = [gate_task.submit(spec.name, spec) if local is None
                   else local.submit(gate_task, {"name": spec.name, "spec": spec}) for spec in specs]
        return [f.result() for f in futures]


# --------------------------------------------------------------------------- flow


def _diagnose(ctx: RunContext, gates: GateReport, summary: RunSummary, publisher: MlflowPublisher) -> Diagnosis:
    """Rank the causes, and say what changed since the last good (promoted) run."""
    changes, compared = [], None
    if summary.champion_run_id:
        try:
            changes = changes_between(*publisher.snapshots(ctx, summary.champion_run_id))
            compared = f"champion v{summary.champion_before} (run {summary.champion_run_id})"
        except Exception as exc:  # noqa: BLE001 - the diagnosis says it could not compare
            ctx.notes.append(f"could not compare with the champion's run: {exc}")
    return diagnose(gates, changes, compared)


def _publish(ctx: RunContext, gates: GateReport, summary: RunSummary, progress: Progress,
             publisher: MlflowPublisher) -> None:
    """Fill in the summary, render the report, and hand the verdict to the publisher."""
    summary.stages_run, summary.stage_seconds = list(progress.stages_run), dict(progress.seconds)
    if ctx.exported is not None:
        summary.model_uri = ctx.exported.model_uri
    if ctx.promotion is not None and not ctx.promotion.refused:
        summary.promoted_version = ctx.promotion.version
    summary.verdict = gates.verdict
    summary.diagnosis = _diagnose(ctx, gates, summary, publisher)
    summary.headline = summary.diagnosis.root_cause if gates.blocked else report.headline(gates)
    summary.report = gates
    summary.metrics = ctx.metrics
    summary.baseline_metrics = ctx.baseline_metrics
    summary.champion_metrics = ctx.champion_metrics
    summary.notes = ctx.notes
    context = {"pipeline": ctx.cfg.name, "run date": ctx.run_date.isoformat(),
               "MLflow run": ctx.run_id, "stages run": " → ".join(summary.stages_run),
               "champion before": summary.champion_before or "none (first run)",
               "promoted version": summary.promoted_version or "not promoted"}
    for note in ctx.notes:
        context.setdefault("notes", "")
        context["notes"] = (context["notes"] + "; " + note).lstrip("; ")
    summary.report_markdown = report.markdown(gates, context, summary.diagnosis)
    publisher.verdict(ctx, gates, summary.diagnosis, summary.headline, summary.report_markdown)


@flow(name="retrain", log_prints=True)
def retrain(config_path: str, run_date: str | None = None) -> Any:
    """Retrain one pipeline for `run_date` (default: today), behind its gates."""
    logger = get_run_logger()
    cfg = load_config(config_path)
    day = dt.date.fromisoformat(run_date) if run_date else dt.date.today()
    preflight(cfg, day, config_path)  # a config that does not fit the data: ConfigError, no run
    experiment_id = tracking.configure(cfg)
    summary = RunSummary(pipeline=cfg.name, run_date=day.isoformat(), verdict="blocked", headline="",
                         primary_metric=cfg.model.primary_metric, experiment_id=experiment_id,
                         tracking_uri=tracking.tracking_uri(cfg))
    gates, progress, publisher = GateReport(), Progress(), MlflowPublisher()
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{cfg.name}-{day.isoformat()}") as run:
        ctx = RunContext(cfg=cfg, run_date=day, run_id=run.info.run_id)
        summary.mlflow_run_id = run.info.run_id
        publisher.start(ctx, config_path)
        ctx.champion = champ = tracking.champion(cfg)  # once: drift, evaluation, promotion agree
        summary.champion_before = champ.version if champ else None
        summary.champion_run_id = champ.run_id if champ else None
        try:
            run_until(ctx, "promote", report=gates, progress=progress, publisher=publisher,
                      call=step_as_task, run_gates=run_gate_tasks)
        except ConfigError:
            mlflow.set_tag("gates.verdict", "config_error")
            raise  # exit 2 in the CLI, not a block
        except Exception as exc:
            # A step (not a gate) crashed: still publish what we know, then fail the run.
            failed = progress.current
            gates.extend([GateResult(name=f"stage_{failed}", family=registry.family_of(f"stage_{failed}"),
                                     status="error",
                                     summary=f"pipeline step crashed: {type(exc).__name__}: {exc}",
                                     hint="A crashed step blocks the run; nothing was promoted.")])
            logger.exception("pipeline step crashed")
        _publish(ctx, gates, summary, progress, publisher)
    logger.info(summary.headline)
    if gates.blocked:
        return Failed(message=summary.headline, data=summary)
    return Completed(message=summary.headline, data=summary)
