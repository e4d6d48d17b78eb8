"""A regression pipeline runs through the same gates (issue #5): predict monthly_charges from the
other demo features (configs/demo-regression.yaml), then compare the two runs with `gates compare`."""

from __future__ import annotations

import subprocess
import sys

import yaml

from gates.results import Status
from tests.conftest import REPO, run_flow


def test_regression_model_promotes_then_compares_with_its_champion(tmp_path, data_dir):
    raw = yaml.safe_load((REPO / "configs" / "demo-regression.yaml").read_text())
    raw["data"].update(path=str(data_dir), window_days=30)
    raw["expectations"] = str(REPO / "expectations" / "churn.json")
    raw["mlflow"].update(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                         artifact_root=str(tmp_path / "mlartifacts"))
    raw["export"]["dir"] = str(tmp_path / "models")
    config = tmp_path / "regression.yaml"
    config.write_text(yaml.safe_dump(raw))

    state, first = run_flow(config)
    assert state.is_completed(), state.message
    assert set(first.metrics) == {"rmse", "mae", "r2"} and first.primary_metric == "rmse"
    assert first.metrics["rmse"] < first.baseline_metrics["dummy"]["rmse"] - 0.05
    assert "first run" in first.report.by_name("champion").summary
    for gate in ("metric_sanity", "predictions", "slices", "baseline", "champion", "artifact_integrity",
                 "artifact_loads", "signature", "library_versions"):
        assert first.report.by_name(gate).status is Status.PASS, first.report.by_name(gate).summary

    state, second = run_flow(config)
    assert state.is_completed(), state.message
    champion = second.report.by_name("champion")
    assert champion.measured["champion_rmse"] == first.metrics["rmse"]  # same rows, same model
    assert second.report.by_name("predictions").measured["change"] == 0.0
    assert second.promoted_version == "2"

    done = subprocess.run([sys.executable, "-m", "gates.cli", "compare", first.mlflow_run_id,
                           second.mlflow_run_id, "--config", str(config)],
                          capture_output=True, text=True, timeout=120, env={"COLUMNS": "200", "PATH": ""})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "test.rmse" in out and "delta.rmse" in out and "champion" in out
    assert "content_sha256" in out and "passed" in out
