"""`gates serve` in a real process: the scheduled deployment is registered, and a run of it
executes the flow, visible through Prefect's API and in the MLflow registry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gates import tracking
from gates.config import load_config
from tests.conftest import REPO, RUN_DATE, harness_env

pytestmark = pytest.mark.slow


def test_prefect_yaml_deploys_the_retrain_flow_with_its_parameters():
    import inspect

    from flows.retrain import retrain

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (dep,) = spec["deployments"]
    module, func = dep["entrypoint"].split(":")
    assert (REPO / module).exists() and func == retrain.fn.__name__
    assert set(dep["parameters"]) == set(inspect.signature(retrain.fn).parameters)
    assert dep["schedules"][0]["cron"] == "0 3 * * *" and dep["work_pool"]["name"] == "retrain"


def _served_deployment(client, name: str, proc: subprocess.Popen, log: Path, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return client.read_deployment_by_name(f"retrain/{name}")
        except Exception:  # noqa: BLE001 - not registered yet
            if proc.poll() is not None:
                pytest.fail(f"gates serve exited {proc.returncode}: {log.read_text()[-3000:]}")
            time.sleep(0.5)
    pytest.fail(f"deployment retrain/{name} not registered in {timeout} s: {log.read_text()[-3000:]}")


def test_gates_serve_schedules_the_flow_and_runs_it(make_config, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    config = make_config()
    cfg = load_config(config)
    env = harness_env(PREFECT_RUNNER_POLL_FREQUENCY="1", PREFECT_HOME=str(tmp_path / "prefect-home"))
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gates.cli", "serve", "--config", str(config),
                                 "--cron", "0 3 * * *"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with get_client(sync_client=True) as client:
            dep = _served_deployment(client, cfg.name, proc, log)
            assert [s.schedule.cron for s in dep.schedules] == ["0 3 * * *"]
            assert dep.parameters == {"config_path": str(config.resolve()), "run_date": None}

            run = run_deployment(f"retrain/{cfg.name}", parameters={"run_date": RUN_DATE.isoformat()},
                                 timeout=300, poll_interval=1)
            assert run.state.is_completed(), (run.state, log.read_text()[-3000:])
            artifacts = client.read_artifacts()
            report = [a for a in artifacts if a.flow_run_id == run.id and a.key == "churn-demo-gate-report"]
            assert report and "promoted version" in report[0].data
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    champion = tracking.champion(cfg)
    assert champion is not None and champion.version == "1"
    assert tracking.client(cfg).get_run(champion.run_id).data.tags["prefect.flow_run_id"] == str(run.id)


def test_contract_is_validated_on_a_dask_cluster(make_config, data_dir):
    """Groups of partitions are validated on the workers, which read their own files; a broken
    partition is still named, and the clean window passes."""
    import math

    import pandas as pd
    from distributed import Client, LocalCluster

    from flows.retrain import retrain
    from flows.runners import with_runner

    config = make_config()
    cfg = load_config(config)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        flow = with_runner(retrain, cfg, dask_address=cluster.scheduler_address)
        assert type(flow.task_runner).__name__ == "DaskTaskRunner"
        state = flow(str(config), RUN_DATE.isoformat(), return_state=True)
        summary = state.result(raise_on_failure=False)
        with Client(cluster) as client:
            computed = client.run_on_scheduler(lambda dask_scheduler: sorted(
                {str(t[0]) for t in dask_scheduler.transition_log if t[2] == "memory"}))
        assert state.is_completed(), summary.headline
        contract = summary.report.by_name("contract")
        assert contract.status.value == "pass" and contract.measured["partitions_validated"] == 30
        assert contract.details["data_docs"] and "data_docs_error" not in contract.details  # workers' GE results
        on_dask = [key for key in computed if key.startswith("contract_partitions_task")]
        assert len(on_dask) == math.ceil(30 / cfg.runner.partitions_per_task), computed

        broken = RUN_DATE - __import__("datetime").timedelta(days=5)
        part = data_dir / f"date={broken.isoformat()}" / "part-0.parquet"
        pd.read_parquet(part).drop(columns=["plan"]).to_parquet(part, index=False)
        state = flow(str(config), RUN_DATE.isoformat(), return_state=True)
        summary = state.result(raise_on_failure=False)
    assert state.is_failed()
    contract = summary.report.by_name("contract")
    assert contract.status.value == "fail" and broken.isoformat() in contract.summary
    assert "plan" in contract.summary
