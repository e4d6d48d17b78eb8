"""Drift, label shift and split drift: benign cycles never block, real shifts do."""

from __future__ import annotations

import datetime as dt

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from scipy.stats import ks_2samp

from gates.config import load_config
from gates.context import RunContext
from gates.data_gates import DRIFT, LABEL_SHIFT, SPLIT_DRIFT
from gates.reference import prepare
from gates.demo_data import Customers, generate_day
from gates.drift import ks_from_sketches, psi
from gates.faults import FAULTS, FaultTarget
from gates.ingest import ingest
from gates.profile import SKETCH, bin_counts, build_profile, profile_run_frame, sorted_quantiles
from gates.results import Severity, Status, run_gate
from gates.split import split_data
from tests.conftest import ROWS_PER_DAY, RUN_DATE, demo_config, run_flow


@pytest.fixture
def context(tmp_path, data_dir):
    """A run context on (optionally broken) demo data, with a champion profile of `lead_days` ago."""

    def make(fault: str | None = None, lead_days: int | None = 7) -> RunContext:
        raw = demo_config(tmp_path, data_dir)
        if fault:
            make.target = FaultTarget(data_path=data_dir, config=raw, run_date=RUN_DATE)
            FAULTS[fault].apply(make.target)
        (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
        cfg = load_config(tmp_path / "p.yaml")
        ctx = RunContext(cfg=cfg, run_date=RUN_DATE)
        ctx.ingested = ingest(cfg, RUN_DATE)
        ctx.frame = ctx.ingested.combined()
        if lead_days is not None:
            ctx.reference = profile_run_frame(_clean_window(RUN_DATE - dt.timedelta(days=lead_days)),
                                              cfg, cfg.gates.drift)
        ctx.profile = profile_run_frame(ctx.frame, cfg, cfg.gates.drift, ctx.reference)
        return ctx

    return make


def _clean_window(run_date: dt.date, days: int = 30) -> pd.DataFrame:
    customers = Customers.make(7)
    return pd.concat([generate_day(run_date - dt.timedelta(days=k), ROWS_PER_DAY, 7, customers)
                      for k in range(days, 0, -1)], ignore_index=True)


def test_psi_and_sketch_ks_agree_with_their_definitions():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 20_000), rng.normal(0.3, 1, 20_000)
    assert psi([10, 20, 30], [10, 20, 30]) == 0.0
    pa = build_profile(pd.DataFrame({"x": a}), ["x"], [], None)
    pb = build_profile(pd.DataFrame({"x": b}), ["x"], [], None)
    exact = ks_2samp(a, b).statistic
    assert abs(ks_from_sketches(pa["numeric"]["x"]["sketch"], pb["numeric"]["x"]["sketch"]) - exact) < 0.02


def test_fast_bin_counts_and_quantiles_match_numpy():
    rng = np.random.default_rng(1)
    for x in (rng.gamma(2, 10, 50_000), rng.poisson(1.5, 50_000).astype(float)):
        x[rng.random(len(x)) < 0.03] = np.nan
        edges = np.unique(np.nanquantile(x, np.linspace(0, 1, 11)[1:-1]))
        present = x[~np.isnan(x)]
        expected = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
        assert bin_counts(x, edges) == expected.tolist()
        assert np.allclose(sorted_quantiles(x, SKETCH), np.nanquantile(x, SKETCH))


@pytest.mark.parametrize("lead_days", [7, 35, 60])
def test_natural_variation_and_an_older_champion_do_not_block(context, lead_days):
    ctx = context(lead_days=lead_days)
    drift = DRIFT.judge(ctx.values())
    assert drift.status in (Status.PASS, Status.WARN), drift.evidence
    assert drift.measured["features"] == 8 and "usage_minutes.psi" in drift.measured
    label = LABEL_SHIFT.judge(ctx.values())
    assert label.status in (Status.PASS, Status.WARN), label.evidence


def test_covariate_drift_blocks_naming_the_feature(context):
    ctx = context("covariate_drift")
    (column,) = context.target.columns  # the configured feature the fault shifted
    result = DRIFT.judge(ctx.values())
    assert result.name == "drift" and result.status is Status.FAIL and result.blocks
    assert column in result.summary and "PSI" in result.summary
    assert result.details["features"][column]["level"] == "block"
    assert [f for f, d in result.details["features"].items() if d["level"] == "block"] == [column]
    assert column in result.details["plots"]


def test_label_shift_blocks_naming_the_label(context):
    ctx = context("label_shift")
    result = LABEL_SHIFT.judge(ctx.values())
    assert result.name == "label_shift" and result.status is Status.FAIL
    assert "'churned'" in result.summary and result.measured["change"] >= 0.08
    assert DRIFT.judge(ctx.values()).status is not Status.FAIL  # features untouched


def test_new_category_and_null_rate_change_are_drift_too(context):
    ctx = context("new_category")
    result = DRIFT.judge(ctx.values())
    region = result.details["features"]["region"]
    assert region["level"] == "block" and "North" in region["new_categories"]
    assert "north" not in region["vanished_categories"]  # still there in the older days


def test_first_run_passes_with_a_stated_note(context, tmp_path):
    from gates import tracking

    ctx = context(lead_days=None)
    tracking.configure(ctx.cfg)
    ctx.profile = None
    prepare(ctx)
    assert ctx.reference is None and ctx.profile is not None
    assert any("first run" in n for n in ctx.notes)
    result = DRIFT.judge(ctx.values())
    assert result.status is Status.PASS and "first run" in result.summary


def test_split_drift_warns_on_a_shift_in_the_test_days(context):
    ctx = context("covariate_drift", lead_days=None)
    (column,) = context.target.columns
    ctx.split = split_data(ctx.frame, ctx.cfg, RUN_DATE)
    settings = ctx.cfg.gates.split_drift
    raw = SPLIT_DRIFT.judge(ctx.values(), settings)
    assert raw.status is Status.FAIL and column in raw.summary
    assert raw.measured["ks_sample_rows"] == settings.sample_rows
    judged = run_gate("split_drift", raw.family, lambda: raw, severity=settings.severity)
    assert settings.severity is Severity.WARN and judged.status is Status.WARN and not judged.blocks


def test_split_drift_passes_on_clean_data(context):
    ctx = context(lead_days=None)
    ctx.split = split_data(ctx.frame, ctx.cfg, RUN_DATE)
    result = SPLIT_DRIFT.judge(ctx.values())
    assert result.status in (Status.PASS, Status.WARN), result.evidence
    assert not [f for f, d in result.details["features"].items() if d["level"] == "block"]


def test_flow_logs_profile_then_blocks_drift_with_a_plot(make_config, data_dir):
    config = make_config()
    state, summary = run_flow(config)
    assert state.is_completed(), state.message
    assert "first run" in summary.report.by_name("drift").summary
    cfg = load_config(config)
    client = MlflowClient(cfg.mlflow.tracking_uri, cfg.mlflow.tracking_uri)
    profile = mlflow.artifacts.load_dict(f"runs:/{summary.mlflow_run_id}/profile/reference.json")
    assert profile["rows"] > 0 and set(profile["numeric"]) == set(cfg.data.features.numeric)

    raw = yaml.safe_load(config.read_text())
    target = FaultTarget(data_path=data_dir, config=raw, run_date=RUN_DATE)
    FAULTS["covariate_drift"].apply(target)
    (column,) = target.columns  # the configured feature the fault shifted
    state, summary = run_flow(config)
    assert state.is_failed() and "train" not in summary.stages_run
    drift = summary.report.by_name("drift")
    assert drift.status is Status.FAIL and column in state.message
    run = client.get_run(summary.mlflow_run_id)
    assert run.data.metrics[f"gate.drift.{column}.psi"] >= cfg.gates.drift.psi_block
    plots = [a.path for a in client.list_artifacts(summary.mlflow_run_id, "plots/drift/drift")]
    assert plots == [f"plots/drift/drift/{column}.png"]
