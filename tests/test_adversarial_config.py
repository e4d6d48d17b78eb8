"""Hostile configs (issues #15.5, #16, #17.1-2): each is refused before any work, in one line that
names the field, with exit 2 and no traceback; nothing the config names runs.

Cheap on purpose: `gates validate-config` in-process (typer's CliRunner), with `--data` for the
cases that need the data (one small set of partitions for the module). The few cases that start a
run are in tests/test_adversarial_data.py, beside a promoted champion.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gates.cli import app
from gates.config import ConfigError, parse_config
from gates.demo_data import write_demo_data
from tests.conftest import RUN_DATE, demo_config

runner = CliRunner()


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("adv-config") / "churn"
    write_demo_data(root, RUN_DATE - dt.timedelta(days=1), days=31, rows_per_day=200)
    return root


def _validate(path: Path, data: bool = False, *extra: str):
    args = ["validate-config", str(path), *(["--data", "--run-date", RUN_DATE.isoformat()] if data else []),
            *extra]
    return runner.invoke(app, args)


def _write(tmp_path: Path, small_data: Path, **overrides) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(demo_config(tmp_path, small_data, **overrides)))
    return path


def _refused(result, field: str, *words: str) -> str:
    """Exit 2, no traceback, and one line naming the field and the words."""
    out = result.stdout + (result.stderr or "")
    assert result.exit_code == 2, out
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if field in line]
    assert lines, f"{field!r} not named in: {out}"
    assert any(all(w in line for w in words) for line in lines), f"{words} not on one line with {field}: {out}"
    return out


def test_clean_config_passes_with_and_without_data(tmp_path, small_data):
    path = _write(tmp_path, small_data)
    assert _validate(path).exit_code == 0
    result = _validate(path, data=True)
    assert result.exit_code == 0, result.stdout + (result.stderr or "")
    assert f"fits partition {(RUN_DATE - dt.timedelta(days=1)).isoformat()}" in result.stdout


# (overrides, field named, words on that line)
SCHEMA_CASES = [
    ({"data.window_days": "sixty"}, "data.window_days", "valid integer"),
    ({"data.window_days": 100_000}, "data.window_days", "less than or equal to 3660"),
    ({"data.window_days": 10**30}, "data.window_days", "less than or equal to 3660"),
    ({"split.test_days": 40}, "split.test_days", "window_days"),
    ({"split.seed": -1}, "split.seed", "greater than or equal to 0"),
    ({"gates.partitions.workers": 10_000}, "gates.partitions.workers", "less than or equal to 64"),
    ({"gates.partitions.future_tolerance_minutes": -5}, "gates.partitions.future_tolerance_minutes",
     "greater than or equal to 0"),
    ({"data.features.numeric": "tenure_months"}, "data.features.numeric", "valid list"),
    ({"gates.drift.psi_blcok": 0.3}, "gates.drift.psi_blcok", "unknown field"),
    ({"model.estimator": "os.system", "model.params": {"command": "touch PWNED"}},
     "model.estimator", "'os.system'", "estimator packages"),
    ({"model.estimator": "this.s"}, "model.estimator", "'this.s'", "estimator packages"),
    ({"model.estimator": "sklearn.nope.Model"}, "model.estimator", "cannot import"),
    ({"model.estimator": "sklearn.ensemble.NoSuchForest"}, "model.estimator", "no attribute"),
    ({"model.estimator": "sklearn.utils.shuffle"}, "model.estimator", "not a scikit-learn estimator class"),
    ({"model.estimator": "sklearn.__version__"}, "model.estimator", "not a scikit-learn estimator class"),
    ({"model.estimator": "sklearn.ensemble.HistGradientBoostingClassifier; rm -rf"}, "model.estimator",
     "not an import path"),
    ({"model.baseline.estimator": "subprocess.call"}, "model.baseline.estimator", "estimator packages"),
    ({"model.params": {"max_iterr": 10}}, "model.params", "max_iterr", "allowed: loss"),
    ({"model.params": {"max_iter": "many"}}, "model.params", "'max_iter' parameter", "Got 'many'"),
    ({"model.params": {"learning_rate": -1}}, "model.params", "'learning_rate' parameter"),
    ({"model.pipeline": "no_such_module:build"}, "model.pipeline", "cannot import"),
    ({"hooks.after_ingest": ["gates.faults:no_such_hook"]}, "hooks.after_ingest", "no attribute"),
    ({"mlflow.experiment": "../../../tmp/ESCAPED"}, "mlflow.experiment", "not a safe name"),
    ({"mlflow.experiment": "/etc"}, "mlflow.experiment", "not a safe name"),
    ({"mlflow.registered_model": "churn/model"}, "mlflow.registered_model", "not a safe name"),
    ({"mlflow.registered_model": "it's"}, "mlflow.registered_model", "not a safe name"),
    ({"mlflow.registered_model": "m" * 300}, "mlflow.registered_model", "not a safe name"),
    ({"mlflow.champion_alias": "latest"}, "mlflow.champion_alias", "reserved"),
    ({"mlflow.champion_alias": "v3"}, "mlflow.champion_alias", "reserved"),
    ({"name": "Churn Demo"}, "name", "should match pattern"),
    ({"name": "x" * 80}, "name", "should match pattern"),
]


@pytest.mark.parametrize("overrides, field, words", [(c[0], c[1], c[2:]) for c in SCHEMA_CASES],
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(SCHEMA_CASES)])
def test_bad_config_is_refused_naming_the_field(tmp_path, small_data, overrides, field, words):
    path = _write(tmp_path, small_data, **overrides)
    _refused(_validate(path), field, *words)


def test_nothing_the_config_names_runs(tmp_path, small_data, monkeypatch, capsys):
    """`os.system` with a command, `this` (prints on import): refused before import or call."""
    import sys

    monkeypatch.chdir(tmp_path)
    sys.modules.pop("this", None)
    raw = demo_config(tmp_path, small_data, **{"model.estimator": "os.system",
                                               "model.params": {"command": f"touch {tmp_path}/PWNED"}})
    with pytest.raises(ConfigError):
        parse_config(raw)
    raw = demo_config(tmp_path, small_data, **{"model.estimator": "this.s"})
    with pytest.raises(ConfigError):
        parse_config(raw)
    assert not (tmp_path / "PWNED").exists()
    assert "this" not in sys.modules and "Beautiful is better" not in capsys.readouterr().out


@pytest.mark.parametrize("text, words", [
    ("!!python/object/apply:os.system ['touch PWNED']\n", ["not valid YAML", "python/object"]),
    ("name: !!python/name:os.system\n", ["not valid YAML"]),
    ("name: a\nname: b\n", ["not valid YAML", "duplicate key 'name'"]),
    ("- just\n- a list\n", ["expected a mapping"]),
    ("name: [unclosed\n", ["not valid YAML"]),
])
def test_hostile_yaml_is_refused_without_running_anything(tmp_path, monkeypatch, text, words):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.yaml"
    path.write_text(text)
    result = _validate(path)
    out = result.stdout + (result.stderr or "")
    assert result.exit_code == 2 and "Traceback" not in out, out
    assert all(w in out for w in words), out
    assert not (tmp_path / "PWNED").exists()


def test_config_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    result = _validate(path)
    assert result.exit_code == 2 and "not UTF-8" in (result.stderr or result.stdout)


# Config against data (--data): the field, the column and what exists.
DATA_CASES = [
    ({"data.target": "churn"}, "data.target", "'churn'", "columns there: event_time"),
    ({"data.timestamp": "created_at"}, "data.timestamp", "'created_at'"),
    ({"data.timestamp": "customer_id"}, "data.timestamp", "'customer_id'", "event time needs timestamps"),
    ({"data.timestamp": "region"}, "data.timestamp", "'region'", "not ISO timestamps"),
    ({"data.entity_id": "account_id"}, "data.entity_id", "'account_id'"),
    ({"data.features.numeric": ["tenure_months", "ghost_feature"]}, "data.features.numeric",
     "'ghost_feature'", "churned"),
    ({"data.features.numeric": ["tenure_months", "plan"], "data.features.categorical": ["region"]},
     "data.features.numeric", "'plan'", "numeric feature needs numbers"),
    ({"data.features.categorical": ["region", "country"]}, "data.features.categorical", "'country'"),
    ({"data.slices": ["segment"]}, "data.slices", "'segment'"),
    ({"gates.serving_availability.feature_timestamps": {"usage_minutes": "usage_as_of"}},
     "gates.serving_availability.feature_timestamps", "'usage_as_of'"),
    ({"task": "regression", "model.estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
      "model.primary_metric": "rmse", "model.baseline": None, "data.target": "region",
      "data.features.categorical": ["plan", "is_promo"]},
     "data.target", "'region'", "regression target needs numbers"),
]


@pytest.mark.parametrize("overrides, field, words", [(c[0], c[1], c[2:]) for c in DATA_CASES],
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(DATA_CASES)])
def test_config_that_does_not_fit_the_data_is_refused(tmp_path, small_data, overrides, field, words):
    path = _write(tmp_path, small_data, **overrides)
    assert _validate(path).exit_code == 0  # the config alone is well formed
    _refused(_validate(path, data=True), field, *words)


def test_every_misfit_is_listed_at_once(tmp_path, small_data):
    path = _write(tmp_path, small_data, **{"data.target": "ghost_target", "data.slices": ["ghost_slice"]})
    out = _refused(_validate(path, data=True), "data.target", "ghost_target")
    assert "data.slices" in out and "ghost_slice" in out


def test_missing_data_folder_suite_or_partitions_are_named(tmp_path, small_data):
    path = _write(tmp_path, tmp_path / "nowhere")
    _refused(_validate(path, data=True), "data.path", "is not a folder")
    path = _write(tmp_path, small_data, expectations=str(tmp_path / "nope.json"))
    _refused(_validate(path, data=True), "expectations", "not found")
    (tmp_path / "empty").mkdir()
    path = _write(tmp_path, tmp_path / "empty")
    _refused(_validate(path, data=True), "data.path", "no readable partition")


def test_a_column_the_contract_declares_is_left_to_the_contract(tmp_path, small_data):
    """A dropped column the suite declares is the data breaking its contract (exit 1 at the
    contract gate), not a config error: preflight lets it through."""
    import shutil

    import pandas as pd

    data = tmp_path / "churn"
    shutil.copytree(small_data, data)
    newest = sorted(data.glob("date=*/part-0.parquet"))[-1]
    pd.read_parquet(newest).drop(columns=["usage_minutes"]).to_parquet(newest, index=False)
    assert _validate(_write(tmp_path, data), data=True).exit_code == 0


def test_run_date_too_early_for_the_window_is_a_config_error(tmp_path, small_data):
    path = _write(tmp_path, small_data)
    result = runner.invoke(app, ["validate-config", str(path), "--data", "--run-date", "0001-01-02"])
    _refused(result, "run date", "too early")
