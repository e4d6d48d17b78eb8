"""Runs left RUNNING by a killed process: found and marked by the next run of the pipeline.

Each run records where it executes (`gates.host`, `gates.pid`, `gates.pid_started`: the
process's start time, so a reused pid is not mistaken for the run). The next run of the same
pipeline looks for MLflow runs of the pipeline still RUNNING whose process is gone (same host:
checked in the process table; another host: started more than `STALE_AFTER` ago), ends them
KILLED with a `gates.zombie` tag saying why, sets their Prefect flow run Crashed when it is
still running, and returns one note per run for the report.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

STALE_AFTER = dt.timedelta(hours=24)


def _started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: starttime


def process_tags() -> dict[str, str]:
    pid = os.getpid()
    return {"gates.host": socket.gethostname(), "gates.pid": str(pid),
            "gates.pid_started": _started(pid) or ""}


def _is_gone(tags: dict[str, str], started_ms: int, now: float) -> str | None:
    """Why the run's process is gone, or None when it may still be alive."""
    host, pid = tags.get("gates.host"), tags.get("gates.pid", "")
    if host == socket.gethostname() and pid.isdigit():
        if int(pid) == os.getpid():
            return None
        alive = _started(int(pid))
        if alive is None:
            return f"process {pid} on {host} is gone"
        if tags.get("gates.pid_started") and alive != tags["gates.pid_started"]:
            return f"process {pid} on {host} is gone (the pid was reused)"
        return None
    age = dt.timedelta(seconds=now - started_ms / 1000)
    if age > STALE_AFTER:
        return f"still RUNNING {age.total_seconds() / 3600:.0f} h after it started on {host or 'an unknown host'}"
    return None


def mark_zombies(client: MlflowClient, experiment_id: str, pipeline: str) -> list[str]:
    """End this pipeline's abandoned runs KILLED (MLflow) and Crashed (Prefect); one note each."""
    notes: list[str] = []
    now = time.time()
    runs = client.search_runs([experiment_id], filter_string=(
        f"attributes.status = 'RUNNING' and tags.pipeline = '{pipeline}'"), max_results=100)
    for run in runs:
        why = _is_gone(run.data.tags, run.info.start_time, now)
        if why is None:
            continue
        client.set_tag(run.info.run_id, "gates.zombie", f"marked KILLED by a later run: {why}")
        client.set_terminated(run.info.run_id, status="KILLED")
        crashed = _crash_flow_run(run.data.tags.get("prefect.flow_run_id", ""), why)
        notes.append(f"earlier run {run.info.run_id} ({run.data.tags.get('run_date', '?')}) was left "
                     f"RUNNING: {why}; marked KILLED in MLflow" + (", Crashed in Prefect" if crashed else ""))
    return notes


def _crash_flow_run(flow_run_id: str, why: str) -> bool:
    if not flow_run_id:
        return False
    try:
        from prefect.client.orchestration import get_client
        from prefect.states import Crashed

        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run_id).state
            if state is None or state.is_final():
                return False
            client.set_flow_run_state(flow_run_id, Crashed(message=f"abandoned: {why}"), force=True)
            return True
    except Exception:  # noqa: BLE001 - another Prefect database (ephemeral) may not know the run
        return False
