"""MLflow: where runs, gate verdicts, data fingerprints and the champion alias live."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from gates.config import PipelineConfig  # noqa: E402
from gates.results import GateReport, GateResult  # noqa: E402


def tracking_uri(cfg: PipelineConfig) -> str:
    """Resolve a relative SQLite path against the working directory, so every process agrees."""
    uri = cfg.mlflow.tracking_uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def configure(cfg: PipelineConfig) -> str:
    """Point MLflow at the config's store and return the experiment id (created if new)."""
    uri = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    experiment = client.get_experiment_by_name(cfg.mlflow.experiment)
    if experiment is not None:
        return experiment.experiment_id
    if uri.startswith(("http://", "https://")):
        location = None  # a tracking server stores artifacts where it was told (--artifacts-destination)
    else:
        location = Path(cfg.mlflow.artifact_root).resolve() / cfg.mlflow.experiment
        location.mkdir(parents=True, exist_ok=True)
    try:
        return client.create_experiment(cfg.mlflow.experiment,
                                        artifact_location=location.as_uri() if location else None)
    except MlflowException:  # created meanwhile by a concurrent run
        return client.get_experiment_by_name(cfg.mlflow.experiment).experiment_id


def client(cfg: PipelineConfig) -> MlflowClient:
    uri = tracking_uri(cfg)
    return MlflowClient(uri, uri)


@dataclass
class Champion:
    version: str
    run_id: str | None
    model_uri: str


def champion(cfg: PipelineConfig) -> Champion | None:
    """The registry's current champion, or None on the first run (a stated case, not a skip).

    A run resolves it once (ctx.champion), so its drift reference, the model it is compared with
    and the version it records are the same champion.
    """
    try:
        mv = client(cfg).get_model_version_by_alias(cfg.mlflow.registered_model, cfg.mlflow.champion_alias)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
            return None
        raise
    # Pinned to the version, not the alias: the alias may move while this run is under way.
    return Champion(version=str(mv.version), run_id=mv.run_id,
                    model_uri=f"models:/{cfg.mlflow.registered_model}/{mv.version}")


def code_version() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).parent).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5,
                               cwd=Path(__file__).parent).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flat_params(prefix: str, value: Any) -> dict[str, str]:
    """Flatten a nested config into MLflow params (`gates.drift.psi_block` = 0.25)."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, inner in value.items():
            out.update(flat_params(f"{prefix}.{key}" if prefix else str(key), inner))
        return out
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return {prefix: text[:6000]}


def log_gate_results(results: list[GateResult]) -> None:
    """`gate.<name>.status` tags and each measured number as `gate.<name>.<key>` metrics."""
    tags, metrics = {}, {}
    for r in results:
        tags[f"gate.{r.name}.status"] = r.status.value
        tags[f"gate.{r.name}.severity"] = r.severity.value
        for key, value in r.numeric_measures().items():
            metrics[_metric_key(f"gate.{r.name}.{key}")] = value
        metrics[_metric_key(f"gate.{r.name}.seconds")] = r.seconds
    mlflow.set_tags(tags)
    if metrics:
        mlflow.log_metrics(metrics)


def _metric_key(key: str) -> str:
    return "".join(c if c.isalnum() or c in "._-/ " else "_" for c in key)[:250]


def log_report(report: GateReport, markdown: str) -> None:
    mlflow.log_text(markdown, "gates/report.md")
    mlflow.log_dict(json.loads(report.model_dump_json()), "gates/report.json")


def run_snapshot(cfg: PipelineConfig, run_id: str) -> dict[str, Any]:
    """What a run was made of: data fingerprint, schema, code, params, libraries (for diffs)."""
    c = client(cfg)
    run = c.get_run(run_id)
    snap: dict[str, Any] = {
        "run_id": run_id,
        "params": dict(run.data.params),
        "code_version": run.data.tags.get("code_version"),
        "libraries": {k[4:]: v for k, v in run.data.tags.items() if k.startswith("lib.")},
    }
    for name, artifact in (("fingerprint", "data/fingerprint.json"), ("schema", "data/schema.json")):
        try:
            snap[name] = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{artifact}")
        except Exception:  # noqa: BLE001 - an older run without the artifact still diffs the rest
            snap[name] = None
    return snap
