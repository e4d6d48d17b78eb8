"""Runs left RUNNING by a killed process are found and marked by the pipeline's next run (12.6)."""

from __future__ import annotations

import subprocess

from mlflow.tracking import MlflowClient

from gates import tracking, zombies
from gates.config import load_config
from tests.conftest import run_flow


def _running_run(client, experiment_id, pid: int, started: str, flow_run_id: str = "") -> str:
    import socket

    run = client.create_run(experiment_id, run_name="churn-demo-earlier", tags={
        "pipeline": "churn-demo", "run_date": "2026-06-29", "gates.host": socket.gethostname(),
        "gates.pid": str(pid), "gates.pid_started": started, "prefect.flow_run_id": flow_run_id})
    return run.info.run_id


def _prefect_running_flow_run() -> str:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    @flow(name="abandoned")
    def abandoned():  # never executed: a run record left Running, like a killed process's
        pass

    with get_client(sync_client=True) as client:
        created = client.create_flow_run(abandoned)
        client.set_flow_run_state(created.id, Running(), force=True)
        return str(created.id)


def test_the_next_run_marks_runs_whose_process_is_gone(make_config):
    config = make_config()
    cfg = load_config(config)
    experiment_id = tracking.configure(cfg)
    client = MlflowClient(cfg.mlflow.tracking_uri, cfg.mlflow.tracking_uri)

    dead = subprocess.Popen(["true"])
    dead.wait()
    flow_run_id = _prefect_running_flow_run()
    zombie = _running_run(client, experiment_id, dead.pid, "1", flow_run_id)
    alive = subprocess.Popen(["sleep", "600"])
    try:
        live = _running_run(client, experiment_id, alive.pid, zombies._started(alive.pid))
        state, summary = run_flow(config)
        assert state.is_completed(), state.message
        assert client.get_run(live).info.status == "RUNNING"  # its process still runs
    finally:
        alive.kill()
        alive.wait()

    marked = client.get_run(zombie)
    assert marked.info.status == "KILLED"
    assert f"process {dead.pid}" in marked.data.tags["gates.zombie"]
    assert any(zombie in note and "KILLED" in note and "Crashed in Prefect" in note for note in summary.notes)
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        assert prefect.read_flow_run(flow_run_id).state.is_crashed()
