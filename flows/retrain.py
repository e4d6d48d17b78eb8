"""The scheduled retraining flow: ingest → validate → train → evaluate → export → verify → promote.

Each stage runs only when every blocking gate before it passed. A blocked run ends the Prefect
flow run Failed with the one-sentence cause, tags the MLflow run `gates.verdict=blocked`, and
never moves the champion alias.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact, create_table_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402
from prefect.states import Completed, Failed  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

from gates import artifact_gates, data_gates, leakage_gates, model_gates, plots, report, tracking  # noqa: E402
from gates.config import ConfigError, PipelineConfig, import_object, load_config  # noqa: E402
from gates.context import RunContext  # noqa: E402
from gates.diagnosis import Diagnosis, changes_between, diagnose  # noqa: E402
from gates.evaluation import champion_deltas, evaluate, evaluate_champion  # noqa: E402
from gates.export import export_model, library_versions  # noqa: E402
from gates.ingest import ingest  # noqa: E402
from flows.runners import is_distributed, local_gates  # noqa: E402
from gates.pause import pause_point  # noqa: E402
from gates.preflight import preflight  # noqa: E402
from gates.promotion import Promotion, promote  # noqa: E402
from gates.results import GateReport, GateResult, GateSpec  # noqa: E402
from gates.split import split_data  # noqa: E402
from gates.training import build_baselines, build_pipeline, fit  # noqa: E402


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


@task(name="ingest", cache_policy=NO_CACHE)
def ingest_task(cfg: PipelineConfig, run_date: dt.date):
    return ingest(cfg, run_date)


@task(name="split", cache_policy=NO_CACHE)
def split_task(ctx: RunContext):
    return split_data(ctx.frame, ctx.cfg, ctx.run_date)


@task(name="train", cache_policy=NO_CACHE)
def train_task(ctx: RunContext):
    model = fit(build_pipeline(ctx.cfg), ctx.split.train, ctx.cfg)
    baselines = {name: fit(p, ctx.split.train, ctx.cfg) for name, p in build_baselines(ctx.cfg).items()}
    return model, baselines


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_task(ctx: RunContext) -> None:
    ctx.metrics, ctx.scores = evaluate(ctx.model, ctx.split.test, ctx.cfg)
    ctx.baseline_metrics = {n: evaluate(m, ctx.split.test, ctx.cfg)[0] for n, m in ctx.baselines.items()}
    evaluate_champion(ctx)


@task(name="export", cache_policy=NO_CACHE)
def export_task(ctx: RunContext):
    exported = export_model(ctx.model, ctx.split.test, ctx.cfg, ctx.run_id,
                            ctx.cfg.gates.artifact.golden_rows)
    pause_point("export")  # crash tests kill here: files written, nothing verified or registered
    return exported


@task(name="promote", cache_policy=NO_CACHE)
def promote_task(ctx: RunContext) -> Promotion:
    """Under the pipeline's promotion lock; refused if the champion moved since it was compared."""
    compared_with = ctx.champion.version if ctx.champion else None
    return promote(ctx.cfg, ctx.exported.model_uri, ctx.run_id, compared_with)


@task(name="contract-partitions", task_run_name="contract-{first}", cache_policy=NO_CACHE)
def contract_partitions_task(first: str, files: dict[str, list[str]], fmt: str, suite_path: str,
                             unexpected_samples: int):
    """A group of partitions validated where the task runs (a Dask worker): reads its own files."""
    return data_gates.validate_partition_files(files, fmt, suite_path, unexpected_samples)


def data_stage_specs(ctx: RunContext) -> list[GateSpec]:
    """The data gates; on Dask, the contract's validation is spread over the workers first."""
    specs = data_gates.plan(ctx)
    contract = next((s for s in specs if s.name == "contract"), None)
    if contract is None or not is_distributed():
        return specs
    cfg, settings = ctx.cfg, ctx.cfg.gates.contract
    try:
        days = data_gates.contract_days(ctx.ingested, cfg)
    except FileNotFoundError:
        return specs  # the in-process gate reports it
    size = cfg.runner.partitions_per_task
    futures = [
        contract_partitions_task.submit(
            group[0].isoformat(),
            {d.isoformat(): [str(p.resolve()) for p in ctx.ingested.files[d]] for d in group},
            cfg.data.format.value, str(Path(cfg.expectations).resolve()), settings.unexpected_samples)
        for group in (days[i:i + size] for i in range(0, len(days), size))
    ]
    contract.check = lambda: data_gates.check_contract_from([f.result() for f in futures], days,
                                                            cfg, settings)
    return specs


def run_hooks(paths: list[str], ctx: RunContext) -> None:
    for path in paths:
        import_object(path, field="hooks")(ctx)


def run_stage(stage: str, specs: list[GateSpec], gate_report: GateReport) -> bool:
    """Run a stage's gates in parallel; every future is resolved so no failure is lost."""
    with local_gates() as local:
        futures = [gate_task.submit(spec.name, spec) if local is None
                   else local.submit(gate_task, {"name": spec.name, "spec": spec}) for spec in specs]
        results = [f.result() for f in futures]
    gate_report.extend(results)
    mlflow.set_tag(f"gates.stage.{stage}", "blocked" if any(r.blocks for r in results) else "passed")
    return not any(r.blocks for r in results)


# --------------------------------------------------------------------------- flow

STAGES = ["ingest", "split", "train", "evaluate", "export", "promote"]
STAGE_FAMILY = {"ingest": "data", "split": "leakage", "train": "model", "evaluate": "model",
                "export": "artifact", "promote": "artifact"}


def _next_stage(done: list[str]) -> str:
    return next((s for s in STAGES if s not in done), "promote")



class _Timer:
    """Adds the seconds of a block to summary.stage_seconds[name]."""

    def __init__(self, summary: RunSummary) -> None:
        self.summary = summary

    @contextlib.contextmanager
    def __call__(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            secs = time.perf_counter() - started
            self.summary.stage_seconds[name] = round(self.summary.stage_seconds.get(name, 0.0) + secs, 4)


def _stages(ctx: RunContext, gates: GateReport, summary: RunSummary) -> None:
    """The pipeline proper; returns early at the first stage whose gates block."""
    cfg = ctx.cfg
    timed = _Timer(summary)
    with timed("ingest"):
        ctx.ingested = ingest_task(cfg, ctx.run_date)
    summary.stages_run.append("ingest")
    fingerprint = ctx.ingested.fingerprint()
    mlflow.log_dict(fingerprint, "data/fingerprint.json")
    mlflow.log_params({"data.window_start": fingerprint["window_start"],
                       "data.window_end": fingerprint["window_end"]})
    mlflow.log_metrics({"data.rows": fingerprint["rows"], "data.partitions": fingerprint["partitions"]})
    mlflow.set_tag("data.content_sha256", fingerprint["content_sha256"])
    ctx.frame = ctx.ingested.combined()
    mlflow.log_dict({c: str(t) for c, t in ctx.frame.dtypes.items()}, "data/schema.json")
    run_hooks(cfg.hooks.after_ingest, ctx)
    data_gates.prepare(ctx)  # logs this run's profile, loads the champion's as the reference

    with timed("gates.data"):
        ok = run_stage("data", data_stage_specs(ctx), gates)
    if not ok:
        return
    with timed("split"):
        ctx.split = split_task(ctx)
    summary.stages_run.append("split")
    mlflow.log_metrics({f"split.{k}": v for k, v in ctx.split.sizes.items()})
    with timed("gates.leakage"):
        ok = run_stage("leakage", [*data_gates.plan_after_split(ctx),
                                   *leakage_gates.plan_before_training(ctx)], gates)
    if not ok:
        return

    with timed("train"):
        ctx.model, ctx.baselines = train_task(ctx)
    summary.stages_run.append("train")
    with timed("evaluate"):
        evaluate_task(ctx)
    summary.stages_run.append("evaluate")
    mlflow.log_metrics({f"test.{k}": v for k, v in ctx.metrics.items()})
    for name, scores in ctx.baseline_metrics.items():
        mlflow.log_metrics({f"baseline.{name}.{k}": v for k, v in scores.items()})
    if ctx.champion_metrics:  # the champion scored on the same test rows, for MLflow's compare view
        mlflow.log_metrics({f"champion.{k}": v for k, v in ctx.champion_metrics.items()})
        mlflow.log_metrics(champion_deltas(ctx.metrics, ctx.champion_metrics))
    with timed("gates.model"):
        ok = run_stage("model", [*leakage_gates.plan_after_training(ctx), *model_gates.plan(ctx)], gates)
    if not ok:
        return

    run_hooks(cfg.hooks.before_export, ctx)
    with timed("export"):
        ctx.exported = export_task(ctx)
    run_hooks(cfg.hooks.after_export, ctx)
    summary.stages_run.append("export")
    mlflow.log_dict(ctx.exported.checksums, "model_checksums.json")
    summary.model_uri = ctx.exported.model_uri
    with timed("gates.artifact"):
        ok = run_stage("artifact", [*artifact_gates.plan(ctx), *leakage_gates.plan_after_export(ctx)],
                       gates)
    if not ok:
        return

    with timed("promote"):
        outcome = promote_task(ctx)
    summary.stages_run.append("promote")
    ctx.notes.extend(outcome.notes)
    for note in outcome.notes:
        get_run_logger().info(note)
    if outcome.refused:
        get_run_logger().warning("not promoted: %s", outcome.refused)
        gates.extend([GateResult(
            name="promotion_lock", family="artifact", status="fail", summary=outcome.refused,
            evidence=[outcome.lock], threshold={"wait_seconds": cfg.promotion.wait_seconds},
            hint="Runs of one pipeline promote one at a time; rerun to compare with the new champion.")])
        return
    summary.promoted_version = outcome.version


def _diagnose(ctx: RunContext, gates: GateReport, summary: RunSummary) -> Diagnosis:
    """Rank the causes, and say what changed since the last good (promoted) run."""
    changes, compared = [], None
    if summary.champion_run_id:
        try:
            before = tracking.run_snapshot(ctx.cfg, summary.champion_run_id)
            changes = changes_between(before, tracking.run_snapshot(ctx.cfg, ctx.run_id))
            compared = f"champion v{summary.champion_before} (run {summary.champion_run_id})"
        except Exception as exc:  # noqa: BLE001 - the diagnosis says it could not compare
            ctx.notes.append(f"could not compare with the champion's run: {exc}")
    return diagnose(gates, changes, compared)


def _publish(ctx: RunContext, gates: GateReport, summary: RunSummary) -> None:
    """Put the verdict where people look: MLflow tags and report, Prefect artifacts."""
    cfg = ctx.cfg
    summary.verdict = gates.verdict
    summary.diagnosis = _diagnose(ctx, gates, summary)
    summary.headline = summary.diagnosis.root_cause if gates.blocked else report.headline(gates)
    summary.report = gates
    summary.metrics = ctx.metrics
    summary.baseline_metrics = ctx.baseline_metrics
    summary.champion_metrics = ctx.champion_metrics
    summary.notes = ctx.notes
    context = {"pipeline": cfg.name, "run date": ctx.run_date.isoformat(),
               "MLflow run": ctx.run_id, "stages run": " → ".join(summary.stages_run),
               "champion before": summary.champion_before or "none (first run)",
               "promoted version": summary.promoted_version or "not promoted"}
    for note in ctx.notes:
        context.setdefault("notes", "")
        context["notes"] = (context["notes"] + "; " + note).lstrip("; ")
    summary.report_markdown = report.markdown(gates, context, summary.diagnosis)

    tracking.log_gate_results(gates.results)
    tracking.log_report(gates, summary.report_markdown)
    plots.log_drift_plots(gates)  # one figure per drifted feature, under plots/drift/
    plots.log_metrics_plot(ctx.metrics, ctx.baseline_metrics, ctx.champion_metrics,
                           cfg.model.primary_metric)
    mlflow.log_dict(summary.diagnosis.model_dump(mode="json"), "gates/diagnosis.json")
    mlflow.set_tags({"gates.verdict": gates.verdict, "gates.headline": summary.headline[:5000],
                     "gates.blocking": ",".join(r.name for r in gates.blocking)})
    if ctx.champion is not None:
        mlflow.set_tag("champion.run_id", ctx.champion.run_id or "")
        mlflow.set_tag("champion.version", ctx.champion.version)
    key = cfg.name.lower()
    create_markdown_artifact(markdown=summary.report_markdown, key=f"{key}-gate-report",
                             description=f"Retrain gates: {gates.verdict}")
    if gates.results:
        create_table_artifact(table=report.table_rows(gates), key=f"{key}-gate-results",
                              description="Every gate's verdict")


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
    gates = GateReport()
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{cfg.name}-{day.isoformat()}") as run:
        ctx = RunContext(cfg=cfg, run_date=day, run_id=run.info.run_id)
        summary.mlflow_run_id = run.info.run_id
        mlflow.set_tags({"pipeline": cfg.name, "run_date": day.isoformat(),
                         "code_version": tracking.code_version(),
                         "prefect.flow_run_id": str(flow_run.get_id() or ""),
                         "config_path": str(config_path)})
        mlflow.log_params(tracking.flat_params("", cfg.model_dump(mode="json")))
        mlflow.log_dict(library_versions(), "environment/library_versions.json")
        mlflow.set_tags({f"lib.{k}": v for k, v in library_versions().items()})
        ctx.champion = champ = tracking.champion(cfg)  # once: drift, evaluation, promotion agree
        summary.champion_before = champ.version if champ else None
        summary.champion_run_id = champ.run_id if champ else None
        try:
            _stages(ctx, gates, summary)
        except ConfigError:
            mlflow.set_tag("gates.verdict", "config_error")
            raise  # exit 2 in the CLI, not a block
        except Exception as exc:
            # A stage (not a gate) crashed: still publish what we know, then fail the run.
            failed = _next_stage(summary.stages_run)
            gates.extend([GateResult(name=f"stage_{failed}", family=STAGE_FAMILY[failed], status="error",
                                     summary=f"pipeline step crashed: {type(exc).__name__}: {exc}",
                                     hint="A crashed step blocks the run; nothing was promoted.")])
            logger.exception("pipeline step crashed")
        _publish(ctx, gates, summary)
    logger.info(summary.headline)
    if gates.blocked:
        return Failed(message=summary.headline, data=summary)
    return Completed(message=summary.headline, data=summary)
