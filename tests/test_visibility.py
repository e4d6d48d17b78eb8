"""Blocks look blocked where people look (issue 12.2): Prefect's task and flow runs, MLflow's run
list, description, dataset and registry; and the contract's GE Data Docs, linked from the report."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from mlflow.tracking import MlflowClient

from gates.config import load_config
from gates.visibility_mlflow import CLASSIC_ML, DESCRIPTION, EXPERIMENT_KIND
from tests.conftest import RUN_DATE, run_flow


def _prefect_runs(state):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(run_id)
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    return flow_run, {t.name: t for t in tasks}


def test_a_blocked_run_is_red_in_prefect_and_mlflow(make_config, data_dir):
    gone = RUN_DATE - dt.timedelta(days=3)
    shutil.rmtree(data_dir / f"date={gone.isoformat()}")
    config = make_config()
    state, summary = run_flow(config)
    assert state.is_failed() and gone.isoformat() in state.message

    flow_run, tasks = _prefect_runs(state)
    assert flow_run.name == f"churn-demo-{RUN_DATE.isoformat()}"
    assert {"pipeline:churn-demo", "verdict:blocked"} <= set(flow_run.tags)
    blocking = tasks["gate-partitions"].state
    assert blocking.is_failed() and blocking.name == "Blocked" and gone.isoformat() in blocking.message
    assert tasks["gate-contract"].state.is_completed()  # a passing gate stays green

    cfg = load_config(config)
    client = MlflowClient(cfg.mlflow.tracking_uri, cfg.mlflow.tracking_uri)
    run = client.get_run(summary.mlflow_run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["gates.verdict"] == "blocked"
    description = run.data.tags[DESCRIPTION]
    assert "BLOCKED" in description and "`partitions`" in description and gone.isoformat() in description
    assert client.get_experiment(run.info.experiment_id).tags[EXPERIMENT_KIND] == CLASSIC_ML
    (dataset,) = [d.dataset for d in run.inputs.dataset_inputs]
    assert dataset.name.startswith("churn-demo-") and dataset.digest
    assert summary.mlflow_run_url.endswith("/gates/report.md")
    assert f"[{summary.mlflow_run_id}](" in summary.report_markdown


def test_a_promoted_version_carries_its_verdict_and_evidence(make_config):
    config = make_config()
    state, summary = run_flow(config)
    assert state.is_completed(), state.message
    flow_run, tasks = _prefect_runs(state)
    assert "verdict:passed" in flow_run.tags or "verdict:warned" in flow_run.tags
    assert all(t.state.is_completed() for name, t in tasks.items() if name.startswith("gate-"))

    cfg = load_config(config)
    client = MlflowClient(cfg.mlflow.tracking_uri, cfg.mlflow.tracking_uri)
    run = client.get_run(summary.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert len(run.data.tags["mlflow.source.git.commit"]) == 40  # MLflow's git tag: the code version
    version = client.get_model_version(cfg.mlflow.registered_model, summary.promoted_version)
    assert version.tags["gates.verdict"] in {"passed", "warned"}
    metric = float(version.tags[f"metric.{cfg.model.primary_metric}"])
    assert metric == summary.metrics[cfg.model.primary_metric]
    assert version.tags["data.window"].endswith(f"..{(RUN_DATE - dt.timedelta(days=1)).isoformat()}")
    assert version.tags["gates.report"] == summary.report_url


def test_a_contract_block_links_its_ge_data_docs_from_the_report(make_config, data_dir, tmp_path):
    """Issue 12: the contract's validation as GE Data Docs, built in the run, logged to the MLflow
    run under gates/data_docs/, linked from the report; its page names the failed expectation."""
    import mlflow
    import pandas as pd

    from flows.publisher import DATA_DOCS_LINK
    from gates.results import Status
    from gates.safety import md

    newest = sorted(data_dir.glob("*/part-0.parquet"))[-1]
    frame = pd.read_parquet(newest)
    frame.loc[frame.index[: len(frame) // 2], "monthly_charges"] = None
    frame.to_parquet(newest, index=False)
    config = make_config()
    state, summary = run_flow(config)
    assert state.is_failed() and summary.report.by_name("contract").status is Status.FAIL

    cfg = load_config(config)
    client = MlflowClient(cfg.mlflow.tracking_uri, cfg.mlflow.tracking_uri)
    run = client.get_run(summary.mlflow_run_id)
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "gates/data_docs")}
    assert "gates/data_docs/index.html" in logged, logged
    url = f"{run.info.artifact_uri}/gates/data_docs/index.html"
    assert f"| contract Data Docs | [{md(DATA_DOCS_LINK)}]({url}) |" in summary.report_markdown
    assert summary.report.by_name("contract").measured["data_docs_seconds"] > 0

    local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="gates/data_docs",
                                                     dst_path=str(tmp_path / "docs")))
    assert (local / "index.html").is_file()
    pages = [p.read_text() for p in local.glob("validations/**/*.html")]
    assert any("monthly_charges" in p and "values must never be null" in p for p in pages)
    assert sum(p.stat().st_size for p in local.rglob("*") if p.is_file()) < 2_000_000


def test_data_docs_that_could_not_be_built_are_said_in_the_report():
    from flows.publisher import MlflowPublisher
    from gates import report
    from gates.results import Family, GateReport, GateResult
    from gates.safety import md

    contract = GateResult(name="contract", family=Family.DATA, status="pass",
                          details={"data_docs_error": "RuntimeError: <b>no</b> disk"})
    said = MlflowPublisher().data_docs(None, GateReport(results=[contract]), "1")
    assert said == "could not be built: RuntimeError: <b>no</b> disk"
    markdown = report.markdown(GateReport(results=[contract]), {"contract Data Docs": said})
    assert f"| contract Data Docs | {md(said, 1000)} |" in markdown and "<b>" not in markdown
    assert MlflowPublisher().data_docs(None, GateReport(results=[]), "1") is None
