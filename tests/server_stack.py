"""One real server stack per test session: PostgreSQL, a Prefect server and an MLflow tracking
server on it, started by scripts/server.sh on free loopback ports, stopped afterwards.

Imported by tests/test_servers.py and tests/test_browser.py (`from tests.server_stack import servers`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, RUN_DATE, demo_config


@dataclass
class Servers:
    prefect_api: str
    mlflow_uri: str
    dir: Path
    env: dict[str, str]  # for subprocesses: runs and workers pointed at the servers, with logins
    logins: dict[str, str]  # what `scripts/server.sh env` exports (URLs and credentials)

    def prefect(self):
        """Prefect settings for this process's clients: the server's URL and its auth string."""
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

        return temporary_settings(updates={PREFECT_API_URL: self.prefect_api,
                                           PREFECT_API_AUTH_STRING: self.logins["PREFECT_API_AUTH_STRING"]})

    def config(self, tmp_path: Path, data_path: Path, name: str = "pipeline.yaml",
               pipeline: str | None = None, **overrides) -> Path:
        """A demo config on the servers; `pipeline` renames the pipeline, its experiment and model."""
        if pipeline:
            overrides |= {"name": pipeline, "mlflow.experiment": pipeline,
                          "mlflow.registered_model": pipeline}
        raw = demo_config(tmp_path, data_path, **overrides)
        raw["mlflow"]["tracking_uri"] = self.mlflow_uri
        path = tmp_path / name
        path.write_text(yaml.safe_dump(raw))
        return path

    def gates_run(self, config: Path, out: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gates.cli", "run", "--config", str(config),
                               "--run-date", RUN_DATE.isoformat(), "--json", str(out)],
                              env=self.env, capture_output=True, text=True, timeout=600)

    def summary(self, out: Path) -> dict:
        return json.loads(out.read_text())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cannot_run() -> str | None:
    if sys.platform != "linux" or not shutil.which("bash") or not shutil.which("curl"):
        return "needs Linux with bash and curl"
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) and os.geteuid() != 0:
        return "PostgreSQL is not installed and we are not root to apt-get it"
    return None


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    reason = _cannot_run()
    if reason:
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("servers")
    ports = {"GATES_PG_PORT": _free_port(), "GATES_PREFECT_PORT": _free_port(),
             "GATES_MLFLOW_PORT": _free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "PREFECT_", "MLFLOW_"))}
    env |= {k: str(v) for k, v in ports.items()}
    # the scheduler service looks for due schedules every 60 s by default: the cron test would
    # wait most of a minute for nothing (the schedule itself is unchanged)
    env["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] = "5"
    env |= {"GATES_SERVER_DIR": str(state), "GATES_BIN": str(Path(sys.executable).parent),
            "GATES_PGDATA": f"/tmp/retrain-gates-test-pg-{ports['GATES_PG_PORT']}"}
    script = REPO / "scripts" / "server.sh"
    started = subprocess.run(["bash", str(script), "start"], env=env, capture_output=True, text=True,
                             timeout=420)
    try:
        if started.returncode == 3:
            pytest.skip(f"PostgreSQL unavailable: {started.stderr.strip()[-300:]}")
        assert started.returncode == 0, started.stderr[-4000:]
        prefect_api = f"http://127.0.0.1:{ports['GATES_PREFECT_PORT']}/api"
        printed = subprocess.run(["bash", str(script), "env"], env=env, capture_output=True, text=True,
                                 timeout=60, check=True).stdout
        logins = dict(line.removeprefix("export ").split("=", 1) for line in printed.splitlines()
                      if line.startswith("export "))
        run_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        run_env |= {"PREFECT_HOME": str(state / "client-home"),
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
        run_env |= logins
        # this process's MlflowClients log in like the runs do
        saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
        os.environ.update({k: logins[k] for k in saved})
        try:
            yield Servers(prefect_api=prefect_api, logins=logins, dir=state, env=run_env,
                          mlflow_uri=f"http://127.0.0.1:{ports['GATES_MLFLOW_PORT']}")
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    finally:
        subprocess.run(["bash", str(script), "stop"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(env["GATES_PGDATA"], ignore_errors=True)


def drop_partition(data_dir: Path, days_before_run: int = 10) -> str:
    """Delete one partition inside the window: the partition-completeness gate must block."""
    day = (RUN_DATE - dt.timedelta(days=days_before_run)).isoformat()
    shutil.rmtree(data_dir / f"date={day}")
    return day
