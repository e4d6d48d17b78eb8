"""Leakage, split integrity and training/serving skew gates (issue #4).

Each fault is applied to a private copy of the demo data and config with the real fault
function, then the stages run in-process (ingest, hooks, split, fit, evaluate, joblib export)
and the gates are called as the flow plans them. One fault goes through the whole flow to show
its gate is the only one that blocks.
"""

from __future__ import annotations

import re

import joblib
import pandas as pd
import pytest

from flows.stages import no_gates, run_until
from gates import leakage_gates, registry
from gates.config import parse_config
from gates.context import RunContext
from gates.export import Exported
from gates.faults import FAULTS, FaultTarget
from gates.ingest import ingest
from gates.results import Status
from gates.split import split_data
from tests.conftest import RUN_DATE, demo_config, run_flow

BEFORE = ["time_order", "row_overlap", "target_leakage", "serving_availability"]
AFTER_TRAINING = ["perfect_metric", "preprocessing_fit"]
AFTER_EXPORT = ["serving_skew"]


def _context(tmp_path, data_path, fault: str | None = None, **overrides) -> RunContext:
    raw = demo_config(tmp_path, data_path, **overrides)
    if fault:
        FAULTS[fault].apply(FaultTarget(data_path, raw, RUN_DATE))
    ctx = RunContext(cfg=parse_config(raw), run_date=RUN_DATE)
    run_until(ctx, "split", run_gates=no_gates)  # ingest, hooks, split
    return ctx


def _train(ctx: RunContext) -> RunContext:
    run_until(ctx, "evaluate", since="train", run_gates=no_gates)
    return ctx


def _export(ctx: RunContext, folder) -> RunContext:
    path = folder / "model.joblib"
    joblib.dump(ctx.model, path)
    ctx.exported = Exported(dir=folder, joblib_path=path, mlflow_model_dir=folder, model_uri="",
                            golden_path=folder / "golden.parquet")
    return ctx


def _results(ctx: RunContext, names: list[str]) -> dict:
    """The named gates, as the flow plans them (gates/registry.py)."""
    return {spec.name: spec.run() for spec in registry.specs(names, ctx.cfg, ctx.values())}


def _blocking(results: dict) -> list[str]:
    return sorted(name for name, r in results.items() if r.blocks)


@pytest.fixture(scope="module")
def clean_ctx(clean_data, tmp_path_factory) -> RunContext:
    folder = tmp_path_factory.mktemp("clean-leakage")
    return _export(_train(_context(folder, clean_data)), folder)


def test_clean_demo_passes_every_leakage_gate(clean_ctx):
    results = _results(clean_ctx, [*BEFORE, *AFTER_TRAINING, *AFTER_EXPORT])
    assert sorted(results) == sorted([*BEFORE, "perfect_metric", "preprocessing_fit", "serving_skew"])
    for name, result in results.items():
        assert result.status is Status.PASS, (name, result.summary)
    assert results["target_leakage"].measured["sample_rows"] == len(clean_ctx.split.test)
    assert "sample of" in results["target_leakage"].summary
    assert results["preprocessing_fit"].measured["statistics_compared"] > 10
    assert results["serving_skew"].measured["paired_rows"] == 1000


def test_shuffled_split_blocks_time_order(tmp_path, data_dir):
    results = _results(_context(tmp_path, data_dir, "shuffled_split"), BEFORE)
    assert _blocking(results) == ["time_order"]
    result = results["time_order"]
    assert result.status is Status.FAIL
    assert "event_time" in result.evidence[0] and "split.strategy=random" in result.evidence[0]
    assert result.measured["train_rows_after_test_start"] > 1000


def test_train_test_overlap_blocks_row_overlap_with_the_count(tmp_path, data_dir):
    ctx = _context(tmp_path, data_dir, "train_test_overlap")
    results = _results(ctx, BEFORE)
    assert _blocking(results) == ["row_overlap"]
    result = results["row_overlap"]
    shared = result.measured["shared_rows"]
    assert 0.04 * len(ctx.split.test) < shared <= 0.06 * len(ctx.split.test)
    assert f"{shared} of {len(ctx.split.test)} test rows" in result.evidence[0]
    assert "customer_id=" in result.evidence[0]


def test_entities_straddling_train_and_test_block_when_entity_aware(clean_ctx):
    from dataclasses import replace

    straddling = replace(clean_ctx.split, entity_aware=True)  # claims entity-aware, is not
    result = leakage_gates.check_row_overlap(straddling, clean_ctx.cfg, clean_ctx.cfg.gates.row_overlap)
    assert result.status is Status.FAIL
    assert "test entities (customer_id) also have training rows" in result.summary
    assert result.measured["shared_entities"] > 0 and result.measured["shared_rows"] == 0


def test_target_leak_blocks_naming_the_feature_and_allow_list_defers_to_perfect_metric(tmp_path, data_dir):
    ctx = _context(tmp_path, data_dir, "target_leak")
    results = _results(ctx, BEFORE)
    assert _blocking(results) == ["target_leakage"]
    result = results["target_leakage"]
    assert "'retention_score' alone reaches auc" in result.evidence[0]
    assert result.measured["auc.retention_score"] > 0.99
    assert result.measured["sample_rows"] == len(ctx.split.test)

    # Allow-listed, the feature is reported (warn); the trained model is then too good to be true.
    ctx.cfg.gates.target_leakage.allow = ["retention_score"]
    allowed = leakage_gates.check_target_leakage(ctx.split, ctx.cfg, ctx.cfg.gates.target_leakage)
    assert allowed.status is Status.WARN and "allow-listed" in allowed.summary
    after = _results(_train(ctx), AFTER_TRAINING)
    assert after["perfect_metric"].status is Status.FAIL
    assert "candidate roc_auc" in after["perfect_metric"].summary
    assert after["perfect_metric"].measured["candidate_roc_auc"] >= 0.995


def test_future_feature_blocks_serving_availability(tmp_path, data_dir):
    results = _results(_context(tmp_path, data_dir, "future_feature"), BEFORE)
    assert _blocking(results) == ["serving_availability"]
    result = results["serving_availability"]
    assert "'cancel_page_visits'" in result.evidence[0]
    assert "cancel_page_visits_as_of after the event event_time" in result.evidence[0]
    assert "7 days" in result.evidence[0]
    assert result.measured["future_share.cancel_page_visits"] == 1.0
    assert results["target_leakage"].measured["auc.cancel_page_visits"] < 0.95


def test_feature_not_at_serving_blocks_serving_availability(tmp_path, data_dir):
    results = _results(_context(tmp_path, data_dir, "feature_not_at_serving"), BEFORE)
    assert _blocking(results) == ["serving_availability"]
    result = results["serving_availability"]
    assert result.evidence == ["feature 'call_sentiment' is used by the model but is not in "
                               "data.serving_features (not available when serving)"]


def test_scaler_fitted_before_split_blocks_preprocessing_fit(tmp_path, data_dir):
    ctx = _train(_context(tmp_path, data_dir, "scaler_before_split"))
    results = _results(ctx, AFTER_TRAINING)
    assert _blocking(results) == ["preprocessing_fit"]
    result = results["preprocessing_fit"]
    assert result.measured["statistics_not_from_train"] == 2 * len(ctx.cfg.data.features.numeric)
    first = result.evidence[0]
    assert "step 'prescale/scaled_on_all_rows(frozen)' column 'tenure_months'" in first
    assert "matches the whole window (fitted before the split)" in first
    # The pipeline's own preprocessing, fitted inside the pipeline, is not blamed.
    assert not any("preprocess/" in line for line in result.evidence)


def test_preprocessing_skew_blocks_serving_skew_and_only_it(make_config, data_dir, tmp_path):
    """End to end: a hook scaling a feature outside the pipeline passes every gate before export;
    serving_skew, on raw rows through the exported file, blocks and names the feature."""
    import yaml

    config = make_config()
    raw = yaml.safe_load(config.read_text())
    FAULTS["preprocessing_skew"].apply(FaultTarget(data_dir, raw, RUN_DATE))
    config.write_text(yaml.safe_dump(raw))
    state, summary = run_flow(config)
    assert state.is_failed()
    assert [r.name for r in summary.report.blocking] == ["serving_skew"]
    result = summary.report.by_name("serving_skew")
    assert result.status is Status.FAIL and result.measured["mismatched_rows"] > 900
    skew = next(e for e in result.evidence if "feature 'monthly_charges' differs" in e)
    raw_value, seen_value = re.search(r"e\.g\. raw (\S+) vs evaluated (\S+)\)", skew).groups()
    assert float(raw_value) > 10 and abs(float(seen_value)) < 10  # raw dollars vs standardised
    assert "monthly_charges" in state.message and summary.promoted_version is None


def test_raw_partitions_survive_an_in_place_hook(tmp_path, data_dir):
    ctx = _context(tmp_path, data_dir, "preprocessing_skew")
    raw = ctx.ingested.combined()["monthly_charges"]
    assert raw.min() > 0 and ctx.frame["monthly_charges"].min() < 0  # the hook changed ctx.frame only
    pd.testing.assert_series_equal(raw, pd.read_parquet(sorted(data_dir.glob("*/part-0.parquet"))[-30:],
                                                        columns=["monthly_charges"])["monthly_charges"],
                                   check_names=False, check_index=False)


def test_regression_target_leakage_uses_r2_and_honours_the_allow_list(clean_data, tmp_path):
    """Charges from the plan: plan alone explains most of the variance, and the regression demo
    config allow-lists it; without the allow-list it blocks, naming the feature."""
    import yaml

    from tests.conftest import REPO

    raw = yaml.safe_load((REPO / "configs" / "demo-regression.yaml").read_text())
    raw["data"].update(path=str(clean_data), window_days=30)
    cfg = parse_config(raw)
    split = split_data(ingest(cfg, RUN_DATE).combined(), cfg, RUN_DATE)
    allowed = leakage_gates.check_target_leakage(split, cfg, cfg.gates.target_leakage)
    assert allowed.status is Status.WARN and allowed.measured["r2.plan"] > 0.9
    cfg.gates.target_leakage.allow = []
    blocked = leakage_gates.check_target_leakage(split, cfg, cfg.gates.target_leakage)
    assert blocked.status is Status.FAIL
    assert blocked.evidence == [f"feature 'plan' alone reaches r2 {blocked.measured['r2.plan']:.4f} "
                                f">= 0.9 on {len(split.test)} test rows"]


def test_preprocessing_fit_refits_on_the_training_rows_only_and_explains_a_window_fit(tmp_path):
    """Issue 13.4: only the training rows go through the steps; a mismatch alone sends the
    window's rows through, to say the step was fitted before the split."""
    import datetime as dt

    import numpy as np

    from gates.demo_data import generate_day
    from gates.preprocessing_fit import PreprocessingFitGate, check_preprocessing_fit, walk
    from gates.split import Split
    from gates.training import build_pipeline

    cfg = parse_config(demo_config(tmp_path, tmp_path / "data"))
    frame = pd.concat([generate_day(dt.date(2026, 5, 1) + dt.timedelta(days=k), rows_per_day=300, seed=3)
                       for k in range(4)], ignore_index=True)
    frame.loc[::11, "monthly_charges"] = np.nan
    features, target = cfg.data.features.all, cfg.data.target
    train, test = np.arange(900), np.arange(900, len(frame))
    split = Split(frame.iloc[train], frame.iloc[test], "time", train_positions=train, test_positions=test)

    on_train = build_pipeline(cfg).fit(frame.loc[train, features], frame.loc[train, target])
    steps = list(walk(on_train, frame[features].iloc[train], features, ""))
    counted = [s for s in steps if s.path.startswith("preprocess/numeric")]  # means, medians
    assert counted and all(len(s.train_input) == len(train) for s in counted)
    # An encoder's categories (and a constant imputer's value) need each distinct row once.
    assert all(len(s.train_input) < 100 for s in steps if s not in counted)
    assert all(len(s.reach(frame[features])) == len(frame) for s in steps)
    passed = check_preprocessing_fit(on_train, frame, split, cfg, PreprocessingFitGate())
    assert passed.status is Status.PASS and passed.measured["statistics_compared"] > 10

    on_window = build_pipeline(cfg).fit(frame[features], frame[target])  # fitted before the split
    failed = check_preprocessing_fit(on_window, frame, split, cfg, PreprocessingFitGate())
    assert failed.blocks and failed.measured["statistics_not_from_train"] > 0
    assert all("matches the whole window (fitted before the split)" in line for line in failed.evidence)


def test_row_overlap_reuses_the_window_hashes_of_the_duplicates_gate(clean_ctx):
    """Issue 13.4: with the ingested window's row hashes given to the split, row_overlap starts
    from the whole-row hashes the duplicates gate computed, and judges as hashing its own rows."""
    from dataclasses import replace

    from gates.duplicates import check_duplicates

    ingested = clean_ctx.ingested
    check_duplicates(ingested, clean_ctx.cfg, clean_ctx.cfg.gates.duplicates)
    hashed = ingested.row_hashes.columns_hashed
    split = split_data(clean_ctx.frame, clean_ctx.cfg, RUN_DATE, row_hashes=ingested.row_hashes)
    shared = leakage_gates.check_row_overlap(split, clean_ctx.cfg, clean_ctx.cfg.gates.row_overlap)
    assert ingested.row_hashes.columns_hashed <= hashed + 1  # at most the timestamp's term, taken away
    alone = leakage_gates.check_row_overlap(replace(split, row_hashes=None), clean_ctx.cfg,
                                            clean_ctx.cfg.gates.row_overlap)
    assert shared.status is alone.status is Status.PASS
    assert shared.measured == alone.measured


@pytest.mark.parametrize("step", ["median", "mean", "scale", "onehot"])
def test_preprocessing_fit_statistics_equal_scikit_learns_own_fit(step):
    """The vectorised refits (numpy reductions, distinct rows) give what a clone's fit gives."""
    import numpy as np
    from sklearn.base import clone
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from gates.preprocessing_fit import LEARNED, _per_column, refit_statistics

    rng = np.random.default_rng(2)
    X = pd.DataFrame({"a": rng.normal(3, 2, 5001), "b": rng.integers(0, 40, 5001).astype("int64")})
    X.loc[::7, "a"] = np.nan
    if step == "onehot":
        X = pd.DataFrame({"c": rng.choice(["x", "y", "z"], 5001), "d": rng.choice([True, False], 5001)})
    est = {"median": SimpleImputer(strategy="median"), "mean": SimpleImputer(strategy="mean"),
           "scale": StandardScaler(), "onehot": OneHotEncoder(handle_unknown="ignore")}[step]
    mine, theirs = refit_statistics(est, X), clone(est).fit(X)
    for attr in LEARNED[type(est)]:
        for a, b in zip(mine[attr], _per_column(theirs, attr), strict=True):
            if isinstance(b, np.ndarray):
                assert list(a) == list(b)
            else:
                assert np.isclose(a, b, rtol=1e-12), (attr, a, b)
