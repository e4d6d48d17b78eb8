"""The scheduled retraining flow: ingest → validate → train → evaluate → export → verify → promote.

Each stage runs only when every blocking gate before it passed. A blocked run ends the Prefect
flow run Failed with the one-sentence cause, tags the MLflow run `gates.verdict=blocked`, and
never moves the champion alias. The stages are data (flows/stages.py); this module runs them as
Prefect tasks, their gates as parallel gate tasks, and hands every record to the publisher
(flows/publisher.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import tempfile
import textwrap
import traceback
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
from flows.stages import STAGE_NAMES, STAGES, Progress, Stage, run_until  # noqa: E402
from flows.visibility import run_name  # noqa: E402
from gates import data_gates, evidence_report, registry, report, review, tracking, visibility_mlflow  # noqa: E402
from gates.config import ConfigError, load_config  # noqa: E402
from gates.context import RunContext  # noqa: E402
from gates.diagnosis import Diagnosis, changes_between, diagnose  # noqa: E402
from gates.interrupts import held, interruption_types, signal_name  # noqa: E402
from gates.pause import pause_point  # noqa: E402
from gates.preflight import preflight  # noqa: E402
from gates.results import Family, GateReport, GateResult, GateSpec  # noqa: E402
from gates.safety import plain, redact  # noqa: E402


class RunSummary(BaseModel):
    """What a run did, returned by the flow and printed by the CLI."""

    pipeline: str
    run_date: str
    verdict: str
    headline: str
    stages_run: list[str] = Field(default_factory=list)
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    evidence_seconds: dict[str, float] = Field(default_factory=dict)  # the model evidence's parts
    mlflow_run_id: str = ""
    mlflow_run_url: str = ""  # the tracking server's page for the run (file store: its report)
    report_url: str = ""
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
    step: str = ""  # the step or gate stage under way (where an interrupted run stopped)
    publish_failures: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------- tasks


class _NoEmptyTraceback(logging.Filter):
    """Prefect logs a task that returned a Failed state (a blocked gate) with exc_info=True, and
    there is no exception: the log read "NoneType: None" under the block. Drop that empty part."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is None:
            record.exc_info = None
        return True


logging.getLogger("prefect.task_runs").addFilter(_NoEmptyTraceback())


@task(name="gate", task_run_name="gate-{name}", cache_policy=NO_CACHE, retries=0)
def gate_task(name: str, spec: GateSpec) -> GateResult:
    """A blocking gate's task ends in a Failed state named Blocked (red in Prefect's UI), with
    its result as the state's data, so the flow still reads it and publishes the report."""
    result = spec.run()
    if result.blocks:
        return Failed(name="Blocked", message=textwrap.shorten(f"{name}: {result.summary}", 500,
                                                                placeholder=" …"), data=result)
    return result


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
        results = [f.result(raise_on_failure=False) for f in futures]  # Blocked: Failed, with data
    crashed = next((r for r in results if isinstance(r, BaseException)), None)
    if crashed is not None:
        raise crashed
    return results


def reviewer(publisher: MlflowPublisher):
    """With `review.enabled`: a gate stage whose blocking gates are all reviewable pauses the flow
    run for a person's decision (gates/review.py); the publisher records the wait and the decision."""

    def hold(stage: str, ctx: RunContext, results: list[GateResult]) -> None:
        blocking = [r for r in results if r.blocks]
        if not review.reviewable(blocking, ctx.cfg):
            return
        publisher.review_waiting(stage, blocking)
        publisher.review_decided(review.hold(ctx, stage, blocking))

    return hold


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
             publisher: MlflowPublisher, verdict: str | None = None) -> None:
    """Fill in the summary, render the report, and hand the verdict to the publisher.

    The verdict tag is written first; every later step is guarded on its own (a failed one is
    named in the report and in `gates.publish_failures`): a run that started always ends with
    `gates.verdict` and a report, even when the diagnosis, rendering or plotting fails.
    """
    summary.stages_run, summary.stage_seconds = list(progress.stages_run), dict(progress.seconds)
    summary.evidence_seconds = dict(ctx.evidence.seconds) if ctx.evidence is not None else {}
    summary.step = progress.step
    if ctx.exported is not None:
        summary.model_uri = ctx.exported.model_uri
    if ctx.promotion is not None and not ctx.promotion.refused:
        summary.promoted_version = ctx.promotion.version
    summary.verdict = verdict or gates.verdict
    summary.report = gates
    summary.metrics = ctx.metrics
    summary.baseline_metrics = ctx.baseline_metrics
    summary.champion_metrics = ctx.champion_metrics
    summary.notes = ctx.notes
    summary.headline = report.headline(gates)
    summary.diagnosis = publisher.guarded("diagnosis", lambda: _diagnose(ctx, gates, summary, publisher))
    if summary.diagnosis is not None and gates.blocked:
        summary.headline = summary.diagnosis.root_cause
    summary.headline = plain(summary.headline, 2000)
    publisher.verdict_tag(summary.verdict, summary.headline, gates)
    pause_point("publish")  # crash tests: the verdict is written, the report not yet

    summary.mlflow_run_url, summary.report_url = publisher.guarded(
        "links", lambda: publisher.links(ctx, summary.experiment_id)) or ("", "")
    context = {"pipeline": ctx.cfg.name, "run date": ctx.run_date.isoformat(),
               "MLflow run": report.Link(ctx.run_id, summary.mlflow_run_url),
               "stages run": " → ".join(summary.stages_run),
               "champion before": summary.champion_before or "none (first run)",
               "promoted version": summary.promoted_version or "not promoted"}
    failed = len(publisher.failures)
    docs = publisher.guarded("Data Docs", lambda: publisher.data_docs(ctx, gates, summary.experiment_id))
    if docs is None and len(publisher.failures) > failed:
        docs = "built, but could not be logged to MLflow (see Publishing problems)"
    if docs is not None:
        context["contract Data Docs"] = docs
    if ctx.notes:
        context["notes"] = "; ".join(ctx.notes)
    markdown = publisher.guarded("report rendering", lambda: report.markdown(
        gates, context, summary.diagnosis, verdict=summary.verdict)) or (
        f"# Retrain gates: {summary.verdict.upper()}\n\n{plain(summary.headline)}\n\n"
        "(the full report could not be rendered; see gates.publish_failures)\n")
    markdown += "\n" + (publisher.guarded("evidence section", lambda: evidence_report.markdown(ctx.evidence))
                        or "")  # "Model evidence"
    summary.report_markdown = publisher.verdict(ctx, gates, summary.diagnosis, summary.verdict, markdown)
    if summary.promoted_version:
        publisher.guarded("version tags", lambda: publisher.promoted(
            ctx, gates, summary.promoted_version, summary.report_url))
    publisher.description(gates, summary.headline, summary.report_url)
    summary.publish_failures = list(publisher.failures)


def _family_of_step(step: str) -> Family:
    """The family an interruption during a step or gate stage is reported under."""
    if step.startswith("gates."):
        return Family(step.removeprefix("gates."))
    if step in STAGE_NAMES:
        return registry.family_of(f"stage_{step}")
    return Family.DATA if step == "start" else Family.ARTIFACT


def _interrupted(ctx: RunContext, gates: GateReport, summary: RunSummary, progress: Progress,
                 exc: BaseException) -> str:
    """Record where a signal stopped the run; returns the verdict (`interrupted`, or `passed` if
    the signal came after the alias moved to this run's model)."""
    where, name = progress.step, signal_name(exc)
    with contextlib.suppress(Exception):
        now = tracking.champion(ctx.cfg)
        if now is not None and now.run_id == ctx.run_id and now.version != summary.champion_before:
            summary.promoted_version = now.version
            ctx.notes.append(f"{name} arrived after the champion moved to version {now.version}; "
                             "the promotion is complete")
            return "passed"
    gates.extend([GateResult(
        name="interrupted", family=_family_of_step(where), status="error",
        summary=f"run interrupted by {name} during {where} (stages done: "
                f"{', '.join(progress.stages_run) or 'none'}); nothing was promoted",
        measured={"stopped_at": where, "signal": name},
        hint="Rerun; an interrupted run never moves the champion.")])
    return "interrupted"


@flow(name="retrain", log_prints=True, flow_run_name=run_name)
def retrain(config_path: str, run_date: str | None = None) -> Any:
    """Retrain one pipeline for `run_date` (default: today), behind its gates.

    Whatever stops it once the MLflow run is open (a gate, a crashed step, SIGINT or SIGTERM),
    the run ends with `gates.verdict` and a report; an interrupted run is tagged `interrupted`,
    its MLflow run KILLED, and the signal is raised again once published.
    """
    logger = get_run_logger()
    cfg = load_config(config_path)
    day = dt.date.fromisoformat(run_date) if run_date else dt.date.today()
    preflight(cfg, day, config_path)  # a config that does not fit the data: ConfigError, no run
    experiment_id = tracking.configure(cfg)  # InfrastructureError (exit 3) if the store is unreachable
    summary = RunSummary(pipeline=cfg.name, run_date=day.isoformat(), verdict="blocked", headline="",
                         primary_metric=cfg.model.primary_metric, experiment_id=experiment_id,
                         tracking_uri=redact(tracking.tracking_uri(cfg)))
    gates, progress, publisher = GateReport(), Progress(), MlflowPublisher()
    publisher.tag_flow_run(f"pipeline:{cfg.name}")
    abandoned = publisher.guarded(  # earlier runs whose process is gone
        "zombie check", lambda: publisher.mark_zombies(cfg, experiment_id)) or []
    for note in abandoned:
        logger.warning(plain(note, 1000))
    run = mlflow.start_run(experiment_id=experiment_id, run_name=f"{cfg.name}-{day.isoformat()}")
    ctx = RunContext(cfg=cfg, run_date=day, run_id=run.info.run_id,
                     workdir=tempfile.mkdtemp(prefix="gates-run-"))  # the champion's verified copy
    ctx.notes.extend(abandoned)
    summary.mlflow_run_id = run.info.run_id
    status, interruption, verdict = "FAILED", None, None
    try:
        try:
            publisher.start(ctx, config_path)
            ctx.champion = champ = tracking.champion(cfg)  # once: drift, evaluation, promotion agree
            summary.champion_before = champ.version if champ else None
            summary.champion_run_id = champ.run_id if champ else None
            pause_point("start")
            run_until(ctx, "promote", report=gates, progress=progress, publisher=publisher,
                      call=step_as_task, run_gates=run_gate_tasks, review=reviewer(publisher))
        except interruption_types() as exc:
            interruption = exc
            logger.warning(plain(f"run interrupted by {signal_name(exc)} during {progress.step}; "
                                 "publishing the verdict", 500))
        except ConfigError:
            mlflow.set_tag("gates.verdict", "config_error")
            raise  # exit 2 in the CLI, not a block
        except Exception as exc:
            # A step (not a gate) crashed: still publish what we know, then fail the run.
            failed = progress.current
            gates.extend([GateResult(name=f"stage_{failed}", family=registry.family_of(f"stage_{failed}"),
                                     status="error",
                                     summary=plain(f"pipeline step crashed: {type(exc).__name__}: {exc}", 2000),
                                     hint="A crashed step blocks the run; nothing was promoted.")])
            logger.error("pipeline step crashed:\n%s", redact("".join(traceback.format_exception(exc))))
        with held():  # a (second) Ctrl-C waits until the verdict and the report are out
            if interruption is not None:
                verdict = _interrupted(ctx, gates, summary, progress, interruption)
            _publish(ctx, gates, summary, progress, publisher, verdict)
        status = visibility_mlflow.end_status(gates, interruption is not None)
    finally:
        with contextlib.suppress(Exception):
            mlflow.end_run(status)
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    logger.info(plain(summary.headline, 2000))
    publisher.tag_flow_run(f"verdict:{summary.verdict}")
    if interruption is not None:
        raise interruption
    if gates.blocked:
        publisher.notify_blocked(cfg.name, gates, summary.headline, summary.mlflow_run_url,
                                 summary.report_url)
        return Failed(message=summary.headline, data=summary)
    return Completed(message=summary.headline, data=summary)
