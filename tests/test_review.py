"""A reviewed override inside Prefect (issue 11.8), end to end on the ephemeral API: a run blocked
by drift pauses, `gates approve` resumes it and it is promoted with the decision recorded; a
contract failure never pauses."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time

import pytest
import yaml
from typer.testing import CliRunner

from gates.faults import FAULTS, FaultTarget
from tests.conftest import RUN_DATE, demo_config, run_flow

REVIEW = {"enabled": True, "gates": ["drift", "label_shift", "champion", "label_noise"],
          "timeout_seconds": 900, "poll_seconds": 1}


def _paused_runs() -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))


def _setup(tmp_path, clean_data, fault: str) -> tuple:
    data = tmp_path / "data"
    shutil.copytree(clean_data, data)
    raw = demo_config(tmp_path, data, review=REVIEW)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    _, champion = run_flow(path, RUN_DATE - dt.timedelta(days=1))
    assert champion.verdict == "passed", champion.headline
    FAULTS[fault].apply(FaultTarget(data_path=data, config=raw, run_date=RUN_DATE))
    path.write_text(yaml.safe_dump(raw))
    return raw, path


def test_a_drift_block_pauses_and_an_approval_promotes_it(clean_data, tmp_path):
    import mlflow

    from gates.cli import app

    raw, path = _setup(tmp_path, clean_data, "covariate_drift")
    outcome: dict = {}
    worker = threading.Thread(target=lambda: outcome.update(result=run_flow(path, RUN_DATE)))
    worker.start()
    approved, deadline = 0, time.monotonic() + 900
    while worker.is_alive() and time.monotonic() < deadline:  # wait on the run's state, not a clock
        for paused in _paused_runs():
            res = CliRunner().invoke(app, ["approve", str(paused.id), "--reason", "new pricing launched",
                                           "--reviewer", "alice"])
            assert res.exit_code == 0, res.output
            approved += 1
        worker.join(timeout=1)
    worker.join(timeout=60)
    assert approved >= 1, "the drift-blocked run never paused for review"
    state, summary = outcome["result"]
    assert summary.verdict == "passed" and summary.promoted_version, summary.headline
    drift = summary.report.by_name("drift")
    assert drift.status == "fail" and drift.severity == "warn"
    assert any("approved by alice: new pricing launched" in e for e in drift.evidence)
    mlflow.set_tracking_uri(raw["mlflow"]["tracking_uri"])
    client = mlflow.MlflowClient()
    tags = client.get_run(summary.mlflow_run_id).data.tags
    assert tags["review.decision"] == "approved" and tags["review.reviewer"] == "alice"
    version = client.get_model_version(raw["mlflow"]["registered_model"], summary.promoted_version)
    assert version.tags["review.reason"] == "new pricing launched"
    # Re-baselined: the approved run is the champion, so its profile is the next drift reference.
    champion = client.get_model_version_by_alias(raw["mlflow"]["registered_model"], "champion")
    assert champion.run_id == summary.mlflow_run_id


def test_a_contract_failure_never_pauses(clean_data, tmp_path):
    import mlflow
    from prefect.client.orchestration import get_client

    raw, path = _setup(tmp_path, clean_data, "out_of_range")
    state, summary = run_flow(path, RUN_DATE)
    assert summary.verdict == "blocked" and "contract" in [r.name for r in summary.report.blocking]
    mlflow.set_tracking_uri(raw["mlflow"]["tracking_uri"])
    tags = mlflow.MlflowClient().get_run(summary.mlflow_run_id).data.tags
    assert "review.state" not in tags
    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(state.state_details.flow_run_id)
    assert not any(s.is_paused() for s in states), [s.type for s in states]


def test_never_reviewable_gates_are_refused_by_the_config(tmp_path, clean_data):
    from gates.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="can never be reviewed"):
        parse_config(demo_config(tmp_path, clean_data, review={"enabled": True, "gates": ["contract"]}))


def test_only_reviewable_blocks_pause_and_the_champion_only_within_its_margin(tmp_path, clean_data):
    from gates.config import parse_config
    from gates.results import Family, GateResult, Status
    from gates.review import reviewable, why_not_reviewable

    cfg = parse_config(demo_config(tmp_path, clean_data, review=REVIEW))
    drift = GateResult(name="drift", family=Family.DATA, status=Status.FAIL)
    noise = GateResult(name="label_noise", family=Family.DATA, status=Status.FAIL)
    assert reviewable([drift, noise], cfg)
    contract = GateResult(name="contract", family=Family.DATA, status=Status.FAIL)
    assert not reviewable([drift, contract], cfg)  # one bug among the blocks: no pause
    assert "never" in why_not_reviewable(GateResult(name="row_overlap", family=Family.LEAKAGE,
                                                    status=Status.FAIL), cfg)
    assert "errored" in why_not_reviewable(GateResult(name="drift", family=Family.DATA,
                                                      status=Status.ERROR), cfg)
    close = cfg.gates.champion.max_regression + cfg.review.champion_margin / 2
    far = cfg.gates.champion.max_regression + cfg.review.champion_margin * 2
    assert reviewable([GateResult(name="champion", family=Family.MODEL, status=Status.FAIL,
                                  measured={"change": -close})], cfg)
    assert "beyond tolerance" in why_not_reviewable(GateResult(
        name="champion", family=Family.MODEL, status=Status.FAIL, measured={"change": -far}), cfg)
    cfg.review.enabled = False
    assert not reviewable([drift], cfg)


def test_review_gates_are_checked_against_the_registry(tmp_path, clean_data):
    from gates.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=r"review\.gates.*'drfit'.*allowed: .*drift"):
        parse_config(demo_config(tmp_path, clean_data, review={"gates": ["drfit"]}))


def test_run_until_asks_the_reviewer_before_a_block_stops_the_run(clean_data, tmp_path):
    from flows.stages import run_until
    from gates.config import parse_config
    from gates.context import RunContext
    from gates.results import Family, GateReport, GateResult, Severity, Status

    asked: list[str] = []

    def blocked_drift(stage, ctx):
        return [GateResult(name="drift", family=Family.DATA, status=Status.FAIL)] if stage == "data" else []

    def approve(stage, ctx, results):
        asked.append(stage)
        for r in results:
            r.severity = Severity.WARN

    ctx = RunContext(cfg=parse_config(demo_config(tmp_path, clean_data)), run_date=RUN_DATE)
    report = GateReport()
    assert run_until(ctx, "split", report=report, run_gates=blocked_drift, review=approve)
    assert asked == ["data"] and ctx.split is not None and not report.blocked
    assert not run_until(RunContext(cfg=ctx.cfg, run_date=RUN_DATE), "split", run_gates=blocked_drift)
