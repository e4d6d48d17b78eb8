"""Every MLflow and Prefect record of a run, in one object: the flow's edge to the outside.

The stages (flows/stages.py) and the gates never log; they hand what they made to the publisher,
which puts it where people look: MLflow params, metrics, tags and artifacts of the run, and the
Prefect artifacts of the flow run.
"""

from __future__ import annotations

from typing import Any

import mlflow
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from flows.stages import Publisher
from gates import plots, report, tracking
from gates.context import RunContext
from gates.reference import REFERENCE_ARTIFACT
from gates.diagnosis import Diagnosis
from gates.evaluation import champion_deltas
from gates.export import library_versions
from gates.results import GateReport, GateResult


class MlflowPublisher(Publisher):
    """Logs to the active MLflow run; publishes the verdict to MLflow and Prefect."""

    def start(self, ctx: RunContext, config_path: str) -> None:
        cfg, day = ctx.cfg, ctx.run_date.isoformat()
        mlflow.set_tags({"pipeline": cfg.name, "run_date": day,
                         "code_version": tracking.code_version(),
                         "prefect.flow_run_id": str(flow_run.get_id() or ""),
                         "config_path": str(config_path)})
        mlflow.log_params(tracking.flat_params("", cfg.model_dump(mode="json")))
        versions = library_versions()
        mlflow.log_dict(versions, "environment/library_versions.json")
        mlflow.set_tags({f"lib.{k}": v for k, v in versions.items()})

    def after_step(self, stage: str, ctx: RunContext) -> None:
        getattr(self, f"_{stage}")(ctx)

    def _ingest(self, ctx: RunContext) -> None:
        fingerprint = ctx.ingested.fingerprint()
        mlflow.log_dict(fingerprint, "data/fingerprint.json")
        mlflow.log_params({"data.window_start": fingerprint["window_start"],
                           "data.window_end": fingerprint["window_end"]})
        mlflow.log_metrics({"data.rows": fingerprint["rows"], "data.partitions": fingerprint["partitions"]})
        mlflow.set_tag("data.content_sha256", fingerprint["content_sha256"])
        mlflow.log_dict(ctx.schema, "data/schema.json")
        if ctx.profile is None:
            return
        from gates import profile as profiles

        try:  # this run's profile: the next runs' drift reference once it is promoted
            mlflow.log_dict(profiles.for_logging(ctx.profile), REFERENCE_ARTIFACT)
        except Exception as exc:  # noqa: BLE001 - the next run states it has no reference
            ctx.notes.append(f"could not log the data profile: {type(exc).__name__}: {exc}")

    def _split(self, ctx: RunContext) -> None:
        mlflow.log_metrics({f"split.{k}": v for k, v in ctx.split.sizes.items()})

    def _train(self, ctx: RunContext) -> None:
        pass

    def _evaluate(self, ctx: RunContext) -> None:
        mlflow.log_metrics({f"test.{k}": v for k, v in ctx.metrics.items()})
        for name, scores in ctx.baseline_metrics.items():
            mlflow.log_metrics({f"baseline.{name}.{k}": v for k, v in scores.items()})
        if ctx.champion_metrics:  # the champion on the same test rows, for MLflow's compare view
            mlflow.log_metrics({f"champion.{k}": v for k, v in ctx.champion_metrics.items()})
            mlflow.log_metrics(champion_deltas(ctx.metrics, ctx.champion_metrics))

    def _export(self, ctx: RunContext) -> None:
        mlflow.log_dict(ctx.exported.checksums, "model_checksums.json")

    def _promote(self, ctx: RunContext) -> None:
        logger = get_run_logger()
        for note in ctx.promotion.notes:
            logger.info(note)
        if ctx.promotion.refused:
            logger.warning("not promoted: %s", ctx.promotion.refused)

    def gates_judged(self, stage: str, results: list[GateResult]) -> None:
        mlflow.set_tag(f"gates.stage.{stage}", "blocked" if any(r.blocks for r in results) else "passed")

    def verdict(self, ctx: RunContext, gates: GateReport, diagnosis: Diagnosis, headline: str,
                markdown: str) -> None:
        """The verdict where people look: MLflow tags and report, Prefect artifacts."""
        cfg = ctx.cfg
        tracking.log_gate_results(gates.results)
        tracking.log_report(gates, markdown)
        plots.log_drift_plots(gates)  # one figure per drifted feature, under plots/drift/
        plots.log_metrics_plot(ctx.metrics, ctx.baseline_metrics, ctx.champion_metrics,
                               cfg.model.primary_metric)
        mlflow.log_dict(diagnosis.model_dump(mode="json"), "gates/diagnosis.json")
        mlflow.set_tags({"gates.verdict": gates.verdict, "gates.headline": headline[:5000],
                         "gates.blocking": ",".join(r.name for r in gates.blocking)})
        if ctx.champion is not None:
            mlflow.set_tag("champion.run_id", ctx.champion.run_id or "")
            mlflow.set_tag("champion.version", ctx.champion.version)
        key = cfg.name.lower()
        create_markdown_artifact(markdown=markdown, key=f"{key}-gate-report",
                                 description=f"Retrain gates: {gates.verdict}")
        if gates.results:
            create_table_artifact(table=report.table_rows(gates), key=f"{key}-gate-results",
                                  description="Every gate's verdict")

    def snapshots(self, ctx: RunContext, champion_run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The champion's run and this one, as `tracking.run_snapshot` reads them (for diffs)."""
        return (tracking.run_snapshot(ctx.cfg, champion_run_id),
                tracking.run_snapshot(ctx.cfg, ctx.run_id))
