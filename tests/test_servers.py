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
    from prefect.settings import PREFECT_API_URL, temporary_settings

    config = servers.config(tmp_path, data_dir)
    env = servers.env | {"RETRAIN_GATES_HOME": str(REPO), "RETRAIN_CONFIG": str(config)}
    _cli(["work-pool", "create", "retrain", "--type", "process", "--overwrite"], env)
    _cli(["deploy", "--all"], env)

    with temporary_settings(updates={PREFECT_API_URL: servers.prefect_api}):
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
