"""Config validation names the field and the allowed values (issue #2)."""

from __future__ import annotations

import pytest

from gates.config import ConfigError, load_config, parse_config
from tests.conftest import REPO, demo_config


def test_demo_config_is_valid():
    cfg = load_config(REPO / "configs" / "demo.yaml")
    assert cfg.model.primary_metric == "roc_auc" and cfg.greater_is_better


@pytest.mark.parametrize(
    "override, field, expected",
    [
        ({"split.strategy": "sideways"}, "split.strategy", "'time' or 'random'"),
        ({"data.format": "xlsx"}, "data.format", "'parquet' or 'csv'"),
        ({"gates.drift.severity": "maybe"}, "gates.drift.severity", "'block' or 'warn'"),
        ({"model.primary_metric": "rmse"}, "model.primary_metric", "roc_auc"),
        ({"model.estimator": "sklearn.nope.Model"}, "model.estimator", "cannot import"),
        ({"gates.partitions.short_ratoi": 0.3}, "gates.partitions.short_ratoi", "unknown field"),
        ({"data.window_days": 1}, "data.window_days", "greater than or equal to 2"),
    ],
)
def test_bad_config_names_field_and_allowed(tmp_path, override, field, expected):
    raw = demo_config(tmp_path, tmp_path, **override)
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "x.yaml")
    message = str(info.value)
    assert field in message and expected in message, message


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
