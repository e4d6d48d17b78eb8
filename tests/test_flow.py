"""The flow end to end: the fail-loudly contract (issue #2)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from gates.config import load_config
from gates.results import Family, GateResult, Status
from tests.conftest import RUN_DATE, harness_env, run_flow


def _client(config_path):
    cfg = load_config(config_path)
    uri = cfg.mlflow.tracking_uri
    return cfg, MlflowClient(uri, uri)


def _alias_version(client, cfg):
    try:
        return str(client.get_model_version_by_alias(cfg.mlflow.registered_model, "champion").version)
    except Exception:
        return None


def test_clean_run_passes_promotes_and_second_run_compares(make_config):
    config = make_config()
    state, summary = run_flow(config)
    assert state.is_completed(), state.message
    assert summary.verdict == "passed"
    assert all(r.status in (Status.PASS, Status.WARN) for r in summary.report.results)
    assert summary.promoted_version == "1"
    cfg, client = _client(config)
    assert _alias_version(client, cfg) == "1"
    run = client.get_run(summary.mlflow_run_id)
    assert run.data.tags["gates.verdict"] == "passed"
    assert run.data.tags["gate.contract.status"] == "pass"
    assert "data.content_sha256" in run.data.tags and "lib.scikit-learn" in run.data.tags
    assert run.data.metrics["data.rows"] > 0

    logged = {a.path for a in client.list_artifacts(summary.mlflow_run_id, "gates")}
    logged |= {a.path for a in client.list_artifacts(summary.mlflow_run_id, "plots")}
    assert {"gates/report.md", "gates/report.json", "gates/diagnosis.json", "plots/metrics.png"} <= logged

    state2, summary2 = run_flow(config)
    assert state2.is_completed(), state2.message
    assert summary2.champion_before == "1"
    assert summary2.champion_metrics is not None
    assert summary2.promoted_version == "2"
    assert _alias_version(client, cfg) == "2"


def test_missing_column_blocks_before_training(make_config, data_dir):
    for part in data_dir.glob("*/part-0.parquet"):
        pd.read_parquet(part).drop(columns=["usage_minutes"]).to_parquet(part, index=False)
    config = make_config()
    state, summary = run_flow(config)
    assert state.is_failed()
    assert "contract" in state.message and "usage_minutes" in state.message
    assert "train" not in summary.stages_run
    cfg, client = _client(config)
    assert _alias_version(client, cfg) is None
    assert client.get_run(summary.mlflow_run_id).data.tags["gates.verdict"] == "blocked"


def test_missing_partition_blocks_naming_it(make_config, data_dir):
    gone = RUN_DATE - dt.timedelta(days=3)
    shutil.rmtree(data_dir / f"date={gone.isoformat()}")
    state, summary = run_flow(make_config())
    assert state.is_failed()
    result = summary.report.by_name("partitions")
    assert result.status is Status.FAIL and gone.isoformat() in result.summary
    assert gone.isoformat() in state.message


def test_blocked_run_leaves_the_champion(make_config, data_dir):
    config = make_config()
    state, _ = run_flow(config)
    assert state.is_completed()
    part = sorted(data_dir.glob("*/part-0.parquet"))[-1]
    part.write_bytes(b"not parquet")
    state, summary = run_flow(config)
    assert state.is_failed() and str(part) in state.message
    cfg, client = _client(config)
    assert _alias_version(client, cfg) == "1"


def test_cli_exit_codes(make_config, data_dir, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(make_config().read_text().replace("strategy: time", "strategy: sideways"))
    done = subprocess.run([sys.executable, "-m", "gates.cli", "run", "--config", str(bad)],
                          capture_output=True, text=True, env=harness_env())
    assert done.returncode == 2
    assert "split.strategy" in done.stderr and "'time'" in done.stderr and "sideways" in done.stderr

    done = subprocess.run([sys.executable, "-m", "gates.cli", "validate-config", str(bad)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "split.strategy" in done.stderr


def test_cli_blocked_run_exits_nonzero(make_config, data_dir, tmp_path):
    shutil.rmtree(next(data_dir.glob("date=*")))  # oldest partition of the window or before
    for part in data_dir.glob("*/part-0.parquet"):
        frame = pd.read_parquet(part)
        frame.drop(columns=["region"]).to_parquet(part, index=False)
    env_config = make_config()
    done = subprocess.run(
        [sys.executable, "-m", "gates.cli", "run", "--config", str(env_config),
         "--run-date", RUN_DATE.isoformat()], capture_output=True, text=True, timeout=600, env=harness_env())
    assert done.returncode == 1, done.stdout + done.stderr
    assert "blocked" in done.stdout.lower()
    logs = done.stdout + done.stderr
    assert "Task run failed with state: Blocked" in logs  # the blocked gate's task is red, said once
    assert "NoneType: None" not in logs  # without an empty traceback under it


def test_crashing_gate_reports_error_and_blocks():
    from gates.results import run_gate

    def broken() -> GateResult:
        raise RuntimeError("disk on fire")

    result = run_gate("broken", Family.DATA, broken)
    assert result.status is Status.ERROR and result.blocks
    assert "disk on fire" in result.summary


def test_crashing_gate_inside_the_flow_blocks(make_config, monkeypatch):
    import dataclasses

    from gates import registry

    def explode(*args, **kwargs):
        raise RuntimeError("gate bug")

    declared = registry.gates()  # the partitions gate's check swapped in its declaration
    monkeypatch.setattr(registry, "gates", lambda: tuple(
        dataclasses.replace(g, check=explode) if g.name == "partitions" else g for g in declared))
    state, summary = run_flow(make_config())
    assert state.is_failed()
    result = summary.report.by_name("partitions")
    assert result.status is Status.ERROR and "gate bug" in result.summary
    assert "train" not in summary.stages_run
