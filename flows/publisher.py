"""Every MLflow and Prefect record of a run, in one object: the flow's edge to the outside.

The stages (flows/stages.py) and the gates never log; they hand what they made to the publisher,
which puts it where people look: MLflow params, metrics, tags and artifacts of the run, and the
Prefect artifacts of the flow run; and what makes a run readable there (issue 12): the flow
run's tags, a blocked MLflow run FAILED with a description, links, the window's dataset, the
promoted version's tags, the block event for notifications, abandoned runs marked KILLED.

Publishing the verdict must reach the end: the verdict tag comes first, then each record on its
own (`guarded`), and a record that fails is named in the report and in the tag
`gates.publish_failures` (a read-only artifact store, a plot that crashes), never lost.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from flows.stages import Publisher
from flows.visibility import add_tags
from gates import data_docs, evidence_report, notify, plots, report, tracking, visibility_mlflow, zombies
from gates.config import PipelineConfig
from gates.context import RunContext
from gates.reference import REFERENCE_ARTIFACT
from gates.diagnosis import Diagnosis
from gates.evaluation import champion_deltas
from gates.export import library_versions
from gates.results import GateReport, GateResult
from gates.safety import plain, redact_tree

DATA_DOCS_LINK = "GE Data Docs (index.html)"  # the report's link text to the contract's Data Docs


class MlflowPublisher(Publisher):
    """Logs to the active MLflow run; publishes the verdict to MLflow and Prefect."""

    def __init__(self) -> None:
        self.failures: list[str] = []  # the publishing steps of the verdict that failed

    def guarded(self, what: str, step: Callable[[], Any]) -> Any:
        """One publishing step; a failure is noted (None returned) and the next step still runs."""
        try:
            return step()
        except Exception as exc:  # noqa: BLE001 - publishing must reach the end (verdict, report)
            self.failures.append(plain(f"{what}: {type(exc).__name__}: {exc}", 500))
            with contextlib.suppress(Exception):
                get_run_logger().warning("publishing %s failed: %s", what, self.failures[-1])
            return None

    def start(self, ctx: RunContext, config_path: str) -> None:
        cfg, day = ctx.cfg, ctx.run_date.isoformat()
        mlflow.set_tags({"pipeline": cfg.name, "run_date": day,
                         "code_version": tracking.code_version(),
                         "prefect.flow_run_id": str(flow_run.get_id() or ""),
                         "config_path": str(config_path), **zombies.process_tags(),
                         **visibility_mlflow.git_tags()})
        tracking.log_config(cfg)  # redacted YAML artifact + the few params people compare
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
        visibility_mlflow.log_window_dataset(
            ctx.frame, str(ctx.cfg.data.path),
            f"{ctx.cfg.name}-{fingerprint['window_start']}..{fingerprint['window_end']}")
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
        try:  # failure set, segments, reliability, scores (the next candidate's reference), plots
            started = time.perf_counter()
            evidence_report.log(ctx.evidence, ctx.scores, ctx.cfg.task, ctx.metrics)
            if ctx.evidence is not None:  # its cost is part of the evidence's (bench/flow.py)
                ctx.evidence.seconds["log_and_plots"] = round(time.perf_counter() - started, 4)
        except Exception as exc:  # noqa: BLE001 - the evidence is shown, never a reason to crash
            ctx.notes.append(f"could not log the model evidence: {type(exc).__name__}: {exc}")
            get_run_logger().exception("logging the model evidence failed")

    def _export(self, ctx: RunContext) -> None:
        mlflow.log_dict(ctx.exported.checksums, "model_checksums.json")

    def _promote(self, ctx: RunContext) -> None:
        logger = get_run_logger()
        for note in ctx.promotion.notes:
            logger.info(note)
        if ctx.promotion.refused:
            logger.warning("not promoted: %s", ctx.promotion.refused)
        elif ctx.review and ctx.promotion.version:  # the decision that let this version through
            client = tracking.client(ctx.cfg)
            for key, value in ctx.review.items():
                client.set_model_version_tag(ctx.cfg.mlflow.registered_model, ctx.promotion.version,
                                             f"review.{key}", str(value))

    def review_waiting(self, stage: str, blocking: list[GateResult]) -> None:
        mlflow.set_tags({"review.state": "waiting", "review.stage": stage,
                         "review.gates": ",".join(r.name for r in blocking)})

    def review_decided(self, outcome: dict[str, Any]) -> None:
        mlflow.set_tags({f"review.{k}": str(v)[:5000] for k, v in outcome.items()} | {"review.state": "decided"})

    def gates_judged(self, stage: str, results: list[GateResult]) -> None:
        mlflow.set_tag(f"gates.stage.{stage}", "blocked" if any(r.blocks for r in results) else "passed")

    def verdict_tag(self, verdict: str, headline: str, gates: GateReport) -> None:
        """The verdict first (a run killed right after still says how it ended)."""
        self.guarded("verdict tags", lambda: mlflow.set_tags({
            "gates.verdict": verdict, "gates.headline": plain(headline, 4000),
            "gates.blocking": plain(",".join(r.name for r in gates.blocking), 4000)}))

    def verdict(self, ctx: RunContext, gates: GateReport, diagnosis: Diagnosis | None, verdict: str,
                markdown: str) -> str:
        """The rest of the verdict where people look: MLflow tags, plots and report, Prefect
        artifacts, each step on its own. Returns the report as published (with a section naming
        the steps that failed, if any)."""
        cfg = ctx.cfg
        self.guarded("gate tags", lambda: tracking.log_gate_results(gates.results))
        self.guarded("drift plots", lambda: plots.log_drift_plots(gates))  # plots/drift/
        self.guarded("metrics plot", lambda: plots.log_metrics_plot(
            ctx.metrics, ctx.baseline_metrics, ctx.champion_metrics, cfg.model.primary_metric))
        if diagnosis is not None:
            self.guarded("diagnosis.json", lambda: mlflow.log_dict(
                redact_tree(diagnosis.model_dump(mode="json")), "gates/diagnosis.json"))
        if ctx.champion is not None:
            self.guarded("champion tags", lambda: mlflow.set_tags(
                {"champion.run_id": ctx.champion.run_id or "", "champion.version": ctx.champion.version}))
        key = cfg.name.lower()
        self.guarded("Prefect table artifact", lambda: gates.results and create_table_artifact(
            table=report.table_rows(gates), key=f"{key}-gate-results", description="Every gate's verdict"))
        if ctx.evidence is not None:
            self.guarded("Prefect failure-set table", lambda: create_table_artifact(
                table=evidence_report.failure_rows(ctx.evidence), key=f"{key}-failure-set",
                description="The candidate's most consequential errors, with the champion's score"))
        if self.failures:  # before the report goes out, so it names every step that failed so far
            markdown += ("\n## Publishing problems\n\n"
                         + "\n".join(f"- {report.md(f)}" for f in self.failures) + "\n")
            self.guarded("failure tag", lambda: mlflow.set_tag(
                "gates.publish_failures", plain("; ".join(self.failures), 4000)))
        named = len(self.failures)
        self.guarded("MLflow report", lambda: tracking.log_report(gates, markdown))
        self.guarded("Prefect report", lambda: create_markdown_artifact(
            markdown=markdown, key=f"{key}-gate-report", description=f"Retrain gates: {verdict}"))
        if len(self.failures) > named:  # the report itself failed: the tag still names it
            self.guarded("failure tag", lambda: mlflow.set_tag(
                "gates.publish_failures", plain("; ".join(self.failures), 4000)))
        return markdown

    def data_docs(self, ctx: RunContext, gates: GateReport, experiment_id: str) -> report.Link | str | None:
        """The contract's GE Data Docs logged to the run (gates/data_docs/), and what the report
        shows of them: a link to their index.html, why they could not be built, or None (no
        contract result, or Data Docs off)."""
        contract = next((r for r in gates.results if r.name == "contract"), None)
        if contract is None:
            return None
        if contract.details.get("data_docs_error"):
            return f"could not be built: {contract.details['data_docs_error']}"
        index = contract.details.get("data_docs")
        if not index:
            return None
        mlflow.log_artifacts(str(Path(index).parent), data_docs.ARTIFACT_PATH)
        url = visibility_mlflow.artifact_url(tracking.tracking_uri(ctx.cfg), experiment_id, ctx.run_id,
                                             mlflow.get_artifact_uri(), f"{data_docs.ARTIFACT_PATH}/index.html")
        return report.Link(DATA_DOCS_LINK, url)

    def snapshots(self, ctx: RunContext, champion_run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The champion's run and this one, as `tracking.run_snapshot` reads them (for diffs)."""
        return (tracking.run_snapshot(ctx.cfg, champion_run_id),
                tracking.run_snapshot(ctx.cfg, ctx.run_id))

    # ----------------------------------------------------------------- visibility (issue 12)

    def tag_flow_run(self, *tags: str) -> None:
        """Tags on the Prefect flow run (`pipeline:<name>`, `verdict:<verdict>`); never fails a run."""
        add_tags(*tags)

    def mark_zombies(self, cfg: PipelineConfig, experiment_id: str) -> list[str]:
        """This pipeline's runs left RUNNING by a process that is gone: KILLED; one note each."""
        return zombies.mark_zombies(tracking.client(cfg), experiment_id, cfg.name)

    def links(self, ctx: RunContext, experiment_id: str) -> tuple[str, str]:
        """The run's page and its report's (a file store: the report file), for people to click."""
        artifact_uri, uri = mlflow.get_artifact_uri(), tracking.tracking_uri(ctx.cfg)
        return (visibility_mlflow.run_url(uri, experiment_id, ctx.run_id, artifact_uri),
                visibility_mlflow.report_url(uri, experiment_id, ctx.run_id, artifact_uri))

    def promoted(self, ctx: RunContext, gates: GateReport, version: str, report_url: str) -> None:
        """The registered version carries its verdict, primary metric, data window and report."""
        cfg = ctx.cfg
        params = mlflow.get_run(ctx.run_id).data.params
        visibility_mlflow.tag_version(tracking.client(cfg), cfg.mlflow.registered_model, version, {
            "gates.verdict": gates.verdict,
            f"metric.{cfg.model.primary_metric}": ctx.metrics.get(cfg.model.primary_metric, ""),
            "data.window": f"{params.get('data.window_start', '?')}..{params.get('data.window_end', '?')}",
            "gates.report": report_url})

    def description(self, gates: GateReport, headline: str, report_url: str) -> None:
        """The MLflow run's description: verdict, blocking gate, cause, report link."""
        self.guarded("run description",
                     lambda: visibility_mlflow.publish_description(gates, headline, report_url))

    def notify_blocked(self, pipeline: str, gates: GateReport, headline: str, run_url: str,
                       report_url: str) -> None:
        """Emit `retrain.gates.blocked` (an automation turns it into a notification)."""
        top = gates.blocking[0].name if gates.blocking else ""
        notify.emit_blocked(pipeline, notify.blocked_payload(
            headline, top, run_url, report_url, notify.flow_run_url(str(flow_run.get_id() or ""))))
