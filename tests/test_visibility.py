"""Blocks look blocked where people look (issue 12.2): Prefect's task and flow runs, MLflow's run
list, description, dataset and registry."""

from __future__ import annotations

import datetime as dt
import shutil

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
