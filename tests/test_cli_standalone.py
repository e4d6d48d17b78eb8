"""`gates run` alone, without the Makefile's environment (issue 12.5): its own defaults, exit codes
that tell a block from a broken setup, a live display of stages, no library noise."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from tests.conftest import REPO, RUN_DATE


def _bare_env(tmp_path) -> dict[str, str]:
    """No PREFECT_*, MLFLOW_*, GX_* settings: what a user's shell has."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "MLFLOW_", "GX_", "PYTEST", "DO_NOT_TRACK"))}
    return env | {"PREFECT_HOME": str(tmp_path / "prefect-home")}  # keep the test's store private


def _gates(args, env, timeout=900):
    return subprocess.run([sys.executable, "-m", "gates.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_help_documents_the_exit_codes():
    done = _gates(["--help"], os.environ.copy(), timeout=120)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "0 promoted" in text and "1 a gate blocked" in text and "2 bad config" in text
    assert "3 infrastructure or internal error" in text


def test_an_unreachable_prefect_api_is_exit_3_not_a_block(make_config, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the with ends: nothing listens there
    env = _bare_env(tmp_path) | {"PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
                                 "PREFECT_CLIENT_MAX_RETRIES": "0"}
    done = _gates(["run", "--config", str(make_config()), "--run-date", RUN_DATE.isoformat()], env)
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-3000:]
    assert "error" in done.stderr.lower()


def test_a_standalone_run_shows_its_stages_quietly_and_links_the_run(make_config, tmp_path):
    done = _gates(["run", "--config", str(make_config()), "--run-date", RUN_DATE.isoformat()],
                  _bare_env(tmp_path))
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    for stage in ("ingest", "gates: data", "train", "gates: model", "promote"):
        assert stage in done.stderr, done.stderr[-3000:]
    for noise in ("Validating candidate", "Hint: Inferred schema", "Downloading artifacts"):
        assert noise not in out
    assert "MLflow run: file:" in done.stdout and "/gates/report.md" in done.stdout
    assert "mlflow ui --backend-store-uri" not in done.stdout
