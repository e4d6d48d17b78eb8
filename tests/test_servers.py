"""The team setup, for real: PostgreSQL, a Prefect server and an MLflow tracking server on it
(scripts/server.sh), the prefect.yaml deployment run by a process worker; the results read back
through Prefect's API and MlflowClient."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, RUN_DATE
from tests.server_stack import servers  # noqa: F401 - the session's server stack

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("servers")]
PREFECT = str(Path(sys.executable).parent / "prefect")


def _cli(args: list[str], env: dict, timeout: float = 300) -> str:
    done = subprocess.run([PREFECT, "--no-prompt", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_deployment_runs_through_a_worker_on_postgres_backed_servers(servers, data_dir, tmp_path):  # noqa: F811
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    config = servers.config(tmp_path, data_dir)
    env = servers.env | {"RETRAIN_GATES_HOME": str(REPO), "RETRAIN_CONFIG": str(config)}
    _cli(["work-pool", "create", "retrain", "--type", "process", "--overwrite"], env)
    _cli(["deploy", "--all"], env)

    with servers.prefect():
        with get_client(sync_client=True) as client:
            dep = client.read_deployment_by_name("retrain/churn-demo")
            assert [s.schedule.cron for s in dep.schedules] == ["0 3 * * *"]
            assert dep.parameters == {"config_path": str(config), "run_date": None}
            created = client.create_flow_run_from_deployment(
                dep.id, parameters={"run_date": RUN_DATE.isoformat()})

            _cli(["worker", "start", "--pool", "retrain", "--type", "process", "--run-once"], env,
                 timeout=600)

            run = client.read_flow_run(created.id)
            assert run.state.is_completed(), run.state
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
            by_key = {a.key: a for a in artifacts}
            assert "promoted version" in by_key["churn-demo-gate-report"].data
            assert "churn-demo-gate-results" in by_key

    mlflow = MlflowClient(servers.mlflow_uri, servers.mlflow_uri)
    (mlflow_run,) = mlflow.search_runs(
        [mlflow.get_experiment_by_name("churn-demo").experiment_id],
        filter_string=f"tags.`prefect.flow_run_id` = '{run.id}'")
    assert mlflow_run.data.tags["gates.verdict"] in {"passed", "warned"}
    champion = mlflow.get_model_version_by_alias("churn-demo", "champion")
    assert champion.run_id == mlflow_run.info.run_id
    assert mlflow_run.info.artifact_uri.startswith("mlflow-artifacts:"), "artifacts go through the server"
    assert (servers.dir / "mlartifacts").is_dir() and any((servers.dir / "mlartifacts").rglob("report.md"))


def _wait_for(predicate, timeout: float, what: str, interval: float = 2.0):
    """Poll `predicate` until it returns something truthy; fail naming `what` after `timeout` s."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_the_scheduler_creates_and_finishes_a_cron_run(servers, tmp_path):  # noqa: F811
    """`gates serve --cron` on the real server: the server's scheduler (not run_deployment) creates
    the run, the served process executes it to a final state. SQLAlchemy 2.1 broke exactly this."""
    import datetime as dt
    import os
    import signal

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter

    from gates.demo_data import write_demo_data

    today = dt.date.today()  # served runs use the day they start (flows/retrain.py)
    data = tmp_path / "fresh" / "churn"
    write_demo_data(data, today - dt.timedelta(days=1), days=45, rows_per_day=1000)
    config = servers.config(tmp_path, data, pipeline="churn-cron")
    log = (tmp_path / "serve.log").open("w")
    served = subprocess.Popen([sys.executable, "-m", "gates.cli", "serve", "--config", str(config),
                               "--cron", "* * * * *"], env=servers.env, cwd=REPO, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with servers.prefect():
            with get_client(sync_client=True) as client:
                dep = _wait_for(lambda: _deployment(client, "retrain/churn-cron"), 300,
                                "gates serve to register its deployment")
                assert dep.global_concurrency_limit and dep.global_concurrency_limit.limit == 1

                def finished_run():
                    assert served.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                    runs = client.read_flow_runs(
                        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])),
                        flow_run_filter=FlowRunFilter())
                    return next((r for r in runs if r.state and r.state.is_final()), None)

                run = _wait_for(finished_run, 900, "a scheduled run to finish", interval=5)
        assert run.auto_scheduled, "created by the server's scheduler"
        # finished with a verdict (promoted, or blocked by a gate on this small sample), not crashed
        assert run.state.is_completed() or run.state.is_failed(), (
            f"{run.state}: {(tmp_path / 'serve.log').read_text()[-3000:]}")
        assert run.name == f"churn-cron-{today.isoformat()}"
        assert {"pipeline:churn-cron"} <= set(run.tags) and any(t.startswith("verdict:") for t in run.tags)
    finally:
        os.killpg(served.pid, signal.SIGTERM)
        try:
            served.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(served.pid, signal.SIGKILL)
            served.wait(timeout=30)
        log.close()


def _deployment(client, name: str):
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(name)
    except ObjectNotFound:
        return None


def test_a_blocked_run_notifies_the_webhook(servers, data_dir, tmp_path):  # noqa: F811
    """`gates notify setup` + a blocked `gates run` on the real server: the automation posts the
    block's headline and gate to a webhook receiver on loopback."""
    import http.server
    import json
    import queue
    import threading

    from tests.server_stack import drop_partition

    received: queue.Queue = queue.Queue()

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.put(json.loads(body or b"{}"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        hook = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
        done = subprocess.run([sys.executable, "-m", "gates.cli", "notify", "setup", "--webhook", hook],
                              env=servers.env, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        day = drop_partition(data_dir)
        config = servers.config(tmp_path, data_dir, pipeline="churn-notify")
        out = tmp_path / "summary.json"
        run = servers.gates_run(config, out)
        assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-3000:]
        message = received.get(timeout=300)  # the automation's webhook call, bounded
    finally:
        httpd.shutdown()
    assert "churn-notify" in message["subject"]
    assert day in message["text"] and "gate: partitions" in message["text"]
    assert servers.mlflow_uri in message["text"] and servers.prefect_api.removesuffix("/api") in message["text"]


def test_the_servers_need_a_login(servers):  # noqa: F811
    """`make server` (17.5): credentials in an owner-only file, none on a command line; a client
    without them cannot move `@champion` nor read Prefect's API."""
    import os
    import stat

    import httpx
    from mlflow.exceptions import MlflowException

    creds = servers.dir / "credentials.env"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    secrets = [line.split("=", 1)[1] for line in creds.read_text().splitlines() if "PASSWORD" in line]
    assert len(secrets) == 3 and all(len(s) >= 20 for s in secrets)
    command_lines = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert not any(s in command_lines for s in secrets), "a password is visible in ps"

    assert httpx.post(f"{servers.prefect_api}/flows/filter", json={}).status_code == 401
    user, password = servers.logins["PREFECT_API_AUTH_STRING"].split(":", 1)
    assert httpx.post(f"{servers.prefect_api}/flows/filter", json={}, auth=(user, password)).status_code == 200

    MlflowClient(servers.mlflow_uri, servers.mlflow_uri).search_experiments()  # logged in: fine
    saved = {k: os.environ.pop(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    try:
        anonymous = MlflowClient(servers.mlflow_uri, servers.mlflow_uri)
        with pytest.raises(MlflowException) as refused:
            anonymous.set_registered_model_alias("churn-demo", "champion", "1")
    finally:
        os.environ.update(saved)
    assert "401" in str(refused.value) or "Unauthorized" in str(refused.value)
