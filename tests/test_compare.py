"""`gates compare` (12.7): parameters too, --diff-only, run-id prefixes."""

from __future__ import annotations

import subprocess
import sys

from gates import tracking
from gates.config import load_config
from tests.conftest import REPO


def _run(client, experiment_id, params: dict, metrics: dict) -> str:
    run = client.create_run(experiment_id, tags={"gates.verdict": "passed", "gate.contract.status": "pass"})
    for k, v in params.items():
        client.log_param(run.info.run_id, k, v)
    for k, v in metrics.items():
        client.log_metric(run.info.run_id, k, v)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _compare(*args):
    return subprocess.run([sys.executable, "-m", "gates.cli", "compare", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env={
                              **__import__("os").environ, "COLUMNS": "200"})


def test_compare_shows_parameters_only_differences_and_takes_prefixes(make_config):
    config = make_config()
    cfg = load_config(config)
    experiment_id = tracking.configure(cfg)
    client = tracking.client(cfg)
    a = _run(client, experiment_id, {"model.params.max_depth": "4", "split.strategy": "time"},
             {"test.roc_auc": 0.81})
    b = _run(client, experiment_id, {"model.params.max_depth": "[9, 9]", "split.strategy": "time"},
             {"test.roc_auc": 0.74})
    prefix_a = next(a[:n] for n in range(4, 33) if not b.startswith(a[:n]))
    prefix_b = next(b[:n] for n in range(4, 33) if not a.startswith(b[:n]))

    done = _compare(prefix_a, prefix_b, "--config", str(config), "--diff-only")
    assert done.returncode == 0, done.stderr
    assert "model.params.max_depth" in done.stdout and "[9, 9]" in done.stdout  # markup escaped
    assert "test.roc_auc" in done.stdout
    assert "split.strategy" not in done.stdout and "contract" not in done.stdout  # equal: left out

    full = _compare(prefix_a, prefix_b, "--config", str(config))
    assert "split.strategy" in full.stdout and "contract" in full.stdout

    ambiguous = _compare("", b, "--config", str(config))
    assert ambiguous.returncode == 2 and "matches 2 runs" in ambiguous.stderr
    unknown = _compare("zzzz", b, "--config", str(config))
    assert unknown.returncode == 2 and "no run" in unknown.stderr
