"""How a run looks in MLflow's UI: a blocked run is FAILED in the run list, its description says
the verdict and the gate that blocked, the experiment opens on runs (classic ML, not GenAI), the
window's data is a logged dataset, and a registered version carries its verdict and evidence.

Links, not commands: `run_url` is the tracking server's page for the run, or (file store) the
run's report on disk.
"""

from __future__ import annotations

import textwrap
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from gates.results import GateReport

EXPERIMENT_KIND = "mlflow.experimentKind"
CLASSIC_ML = "custom_model_development"  # MLflow's UI then opens the experiment on its runs
DESCRIPTION = "mlflow.note.content"


def mark_classic_ml(client: MlflowClient, experiment_id: str) -> None:
    """Tag the experiment as classic ML once (MLflow 3 otherwise opens it on the GenAI overview)."""
    experiment = client.get_experiment(experiment_id)
    if experiment.tags.get(EXPERIMENT_KIND) != CLASSIC_ML:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND, CLASSIC_ML)


def run_url(tracking_uri: str, experiment_id: str, run_id: str, artifact_uri: str = "") -> str:
    """The run's page on a tracking server; on a local store, the run's report file."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    if artifact_uri.startswith("file:"):
        return f"{artifact_uri}/gates/report.md"
    return artifact_uri or run_id


def report_url(tracking_uri: str, experiment_id: str, run_id: str, artifact_uri: str = "") -> str:
    url = run_url(tracking_uri, experiment_id, run_id, artifact_uri)
    if tracking_uri.startswith(("http://", "https://")):
        return f"{url}/artifacts/gates/report.md"
    return url


def artifact_url(tracking_uri: str, experiment_id: str, run_id: str, artifact_uri: str, path: str) -> str:
    """Where a person opens one artifact of the run: the tracking server's artifact view of it,
    or its file in a local store (any other store: its URI, shown as text, not linked)."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"{run_url(tracking_uri, experiment_id, run_id)}/artifacts/{path}"
    return f"{artifact_uri.rstrip('/')}/{path}" if artifact_uri else path


def describe(report: GateReport, headline: str, url: str = "") -> str:
    """The run's description (shown above its metrics): verdict, top gate, the cause in a line."""
    lines = [f"**{report.verdict.upper()}**"]
    if report.blocking:
        top = report.blocking[0]
        lines.append(f"Blocked by gate `{top.name}` ({top.family.value}).")
    lines.append(textwrap.shorten(headline, width=1000, placeholder=" …"))
    if url:
        lines.append(f"Report: {url}")
    return "\n\n".join(lines)


def publish_description(report: GateReport, headline: str, url: str = "") -> None:
    """The verdict, the gate that blocked and the cause as the active run's description."""
    mlflow.set_tag(DESCRIPTION, describe(report, headline, url))


def end_status(report: GateReport, interrupted: bool) -> str:
    """How the MLflow run ends: KILLED when a signal stopped it, FAILED when a gate blocked (red
    in the run list), FINISHED when it passed."""
    return "KILLED" if interrupted else ("FAILED" if report.blocked else "FINISHED")


def log_window_dataset(frame, source: str, name: str) -> None:
    """The training window as an MLflow dataset (digest, schema, source) on the active run."""
    dataset = mlflow.data.from_pandas(frame, source=source, name=name)
    mlflow.log_input(dataset, context="training")


def tag_version(client: MlflowClient, model: str, version: str, tags: dict[str, Any]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(model, version, key, str(value))


def git_tags() -> dict[str, str]:
    """MLflow's own git tags for the code that runs (shown as the run's source commit in the UI)."""
    from pathlib import Path

    from mlflow.utils.git_utils import get_git_branch, get_git_commit, get_git_repo_url
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_BRANCH, MLFLOW_GIT_COMMIT, MLFLOW_GIT_REPO_URL

    here = str(Path(__file__).resolve().parent)
    found = {MLFLOW_GIT_COMMIT: get_git_commit(here), MLFLOW_GIT_BRANCH: get_git_branch(here),
             MLFLOW_GIT_REPO_URL: get_git_repo_url(here)}
    return {k: v for k, v in found.items() if v}
