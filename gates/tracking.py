"""MLflow: where runs, gate verdicts, data fingerprints and the champion alias live."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from gates.config import PipelineConfig  # noqa: E402
from gates.errors import InfrastructureError  # noqa: E402
from gates.results import GateReport, GateResult  # noqa: E402
from gates.safety import redact, redact_tree  # noqa: E402
from gates.sqlite_store import seed as seed_sqlite_store  # noqa: E402

CONFIG_ARTIFACT = "config/pipeline.yaml"
DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432, "mysql": 3306,
                 "mssql": 1433}
# The few params people compare across runs in MLflow's table; the whole config is an artifact.
COMPARED_PARAMS = ("model.estimator", "model.pipeline", "model.primary_metric", "data.window_days",
                   "split.strategy", "split.test_days", "gates.champion.max_regression",
                   "gates.baseline.min_improvement", "gates.drift.psi_block", "gates.label_shift.block")


def tracking_uri(cfg: PipelineConfig) -> str:
    """Resolve a relative SQLite path against the working directory, so every process agrees.

    A tracking server's user and password in the URI (http://user:pw@host) are moved to
    MLflow's own MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (unless already set), and the
    URI MLflow sees has none: MLflow prints and stores the URI it is given (run links, logs).
    """
    uri = _credentials_to_env(cfg.mlflow.tracking_uri)
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def _credentials_to_env(uri: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or parts.username is None:
        return uri
    os.environ.setdefault("MLFLOW_TRACKING_USERNAME", urllib.parse.unquote(parts.username))
    if parts.password is not None:
        os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", urllib.parse.unquote(parts.password))
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def check_reachable(cfg: PipelineConfig) -> None:
    """A remote tracking store must accept a TCP connection within `connect_timeout_seconds`.

    MLflow's own client retries for minutes and then fails with several tracebacks; this names
    the store (credentials redacted) in one line, as an InfrastructureError (exit 3). Local
    stores (SQLite, files) have nothing to reach.
    """
    uri = cfg.mlflow.tracking_uri  # as configured, to name it (redacted) in the error
    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.split("+")[0].lower()
    if not parts.hostname or scheme not in DEFAULT_PORTS:
        return
    timeout = cfg.mlflow.connect_timeout_seconds
    started = time.monotonic()
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError | socket.timeout) else \
            (exc.strerror or type(exc).__name__ if isinstance(exc, OSError) else str(exc))
        raise InfrastructureError(
            f"MLflow tracking server {redact(uri)} is unreachable: {reason} after "
            f"{time.monotonic() - started:.1f} s (mlflow.tracking_uri; connect_timeout_seconds "
            f"{timeout:g})") from None


def configure(cfg: PipelineConfig) -> str:
    """Point MLflow at the config's store and return the experiment id (created if new)."""
    check_reachable(cfg)
    uri = tracking_uri(cfg)
    seed_sqlite_store(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    experiment = client.get_experiment_by_name(cfg.mlflow.experiment)
    if experiment is not None:
        _classic_ml(client, experiment.experiment_id)
        return experiment.experiment_id
    if uri.startswith(("http://", "https://")):
        location = None  # a tracking server stores artifacts where it was told (--artifacts-destination)
    else:
        location = Path(cfg.mlflow.artifact_root).resolve() / cfg.mlflow.experiment
        location.mkdir(parents=True, exist_ok=True)
    try:
        experiment_id = client.create_experiment(
            cfg.mlflow.experiment, artifact_location=location.as_uri() if location else None)
    except MlflowException:  # created meanwhile by a concurrent run
        experiment_id = client.get_experiment_by_name(cfg.mlflow.experiment).experiment_id
    _classic_ml(client, experiment_id)
    return experiment_id


def _classic_ml(client: MlflowClient, experiment_id: str) -> None:
    from gates.visibility_mlflow import mark_classic_ml

    mark_classic_ml(client, experiment_id)


def client(cfg: PipelineConfig) -> MlflowClient:
    uri = tracking_uri(cfg)
    seed_sqlite_store(uri)
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
    mlflow.log_dict(redact_tree(json.loads(report.model_dump_json())), "gates/report.json")


def log_config(cfg: PipelineConfig) -> None:
    """The whole config as a redacted YAML artifact, and the few params people compare as params.

    ~140 params of every threshold drowned the runs table and carried the tracking URI's
    password into every run; the YAML holds every value, with credentials replaced by ***.
    """
    import yaml

    dumped = redact_tree(cfg.model_dump(mode="json"))
    mlflow.log_text(yaml.safe_dump(dumped, sort_keys=False), CONFIG_ARTIFACT)
    flat = flat_params("", dumped)
    mlflow.log_params({k: v[:500] for k, v in flat.items()
                       if k in COMPARED_PARAMS or k.startswith("model.params.")})


def _logged_config(artifact_uri: str) -> dict[str, str]:
    """The run's config artifact flattened like params (so diffs see every setting), or {}."""
    import yaml

    try:
        text = mlflow.artifacts.load_text(f"{artifact_uri}/{CONFIG_ARTIFACT}")
    except Exception:  # noqa: BLE001 - an older run logged its config as params only
        return {}
    return flat_params("", yaml.safe_load(text) or {})


def run_snapshot(cfg: PipelineConfig, run_id: str) -> dict[str, Any]:
    """What a run was made of: data fingerprint, schema, code, params, libraries (for diffs)."""
    c = client(cfg)
    run = c.get_run(run_id)
    snap: dict[str, Any] = {
        "run_id": run_id,
        "params": {**_logged_config(run.info.artifact_uri), **dict(run.data.params)},
        "code_version": run.data.tags.get("code_version"),
        "libraries": {k[4:]: v for k, v in run.data.tags.items() if k.startswith("lib.")},
    }
    for name, artifact in (("fingerprint", "data/fingerprint.json"), ("schema", "data/schema.json")):
        try:
            snap[name] = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{artifact}")
        except Exception:  # noqa: BLE001 - an older run without the artifact still diffs the rest
            snap[name] = None
    return snap
