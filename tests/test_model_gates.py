"""Model gates (issue #5): the candidate against baselines and the champion on the same rows.

Most cases call the gate functions on models fitted to the real demo data (fast); one test runs
the real flow three times to show the champion alias moving only for a better model.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from gates.config import load_config, parse_config
from gates.evaluation import evaluate, mlflow_threshold_failures
from gates.ingest import ingest
from gates.metric_noise import noise_for_run
from gates.model_gates import (check_baseline, check_champion, check_metric_sanity, check_predictions,
                               check_slices)
from gates.results import Status
from gates.split import split_data
from gates.training import build_baselines, build_pipeline, fit
from tests.conftest import RUN_DATE, demo_config, run_flow


@pytest.fixture(scope="module")
def demo(clean_data, tmp_path_factory):
    """The clean demo split, the champion (the demo model) and the baselines, fitted once."""
    raw = demo_config(tmp_path_factory.mktemp("model-gates"), clean_data)
    cfg = parse_config(raw)
    split = split_data(ingest(cfg, RUN_DATE).combined(), cfg, RUN_DATE)
    champion = fit(build_pipeline(cfg), split.train, cfg)
    metrics, scores = evaluate(champion, split.test, cfg)
    evaluated = {n: evaluate(fit(p, split.train, cfg), split.test, cfg) for n, p in build_baselines(cfg).items()}
    return {"raw": raw, "cfg": cfg, "split": split, "metrics": metrics, "scores": scores,
            "baselines": {n: m for n, (m, _) in evaluated.items()},
            "baseline_scores": {n: s for n, (_, s) in evaluated.items()}}


def noise(demo, cfg, scores, with_champion=True):
    """What the evaluate stage computes: the paired bootstrap against the champion and baselines."""
    refs = {**({"champion": demo["scores"]} if with_champion else {}), **demo["baseline_scores"]}
    return noise_for_run(demo["split"].test[cfg.data.target].to_numpy(), scores, refs, cfg.task,
                         cfg.model.primary_metric)


def candidate(demo, pipeline: str | None = None, **params):
    raw = copy.deepcopy(demo["raw"])
    raw["model"]["params"].update(params)
    if pipeline:
        raw["model"]["pipeline"] = pipeline
    cfg = parse_config(raw)
    model = fit(build_pipeline(cfg), demo["split"].train, cfg)
    metrics, scores = evaluate(model, demo["split"].test, cfg)
    return cfg, metrics, scores


def all_gates(demo, cfg, metrics, scores, with_champion=True):
    g = cfg.gates
    champ_metrics = demo["metrics"] if with_champion else None
    champ_scores = demo["scores"] if with_champion else None
    found = noise(demo, cfg, scores, with_champion)
    return {
        "metric_sanity": check_metric_sanity(metrics, g.metric_sanity, scores),
        "predictions": check_predictions(scores, champ_scores, cfg, g.predictions, test=demo["split"].test),
        "slices": check_slices(demo["split"].test, scores, champ_scores, cfg, g.slices),
        "baseline": check_baseline(metrics, demo["baselines"], cfg, g.baseline, found),
        "champion": check_champion(metrics, champ_metrics, cfg, g.champion, "1", metric_noise=found),
    }


def test_every_model_gate_passes_on_the_clean_candidate(demo):
    cfg = demo["cfg"]
    results = all_gates(demo, cfg, demo["metrics"], demo["scores"])
    assert {n: r.status for n, r in results.items()} == dict.fromkeys(results, Status.PASS)
    assert results["slices"].measured["judged"] == 7  # 4 regions + 3 plans, all above min_count
    first = all_gates(demo, cfg, demo["metrics"], demo["scores"], with_champion=False)
    assert all(r.status is Status.PASS for r in first.values())
    assert "first run" in first["champion"].summary and "absolute thresholds" in first["champion"].summary


# In summer (RUN_DATE) the simple baseline comes within 0.011 of the tuned demo model, so a model
# weak enough to regress past the champion's tolerance may also fall short of the baseline's bar.


def test_regressed_hyperparameters_block_at_the_champion(demo):
    cfg, metrics, scores = candidate(demo, max_iter=10)
    results = all_gates(demo, cfg, metrics, scores)
    blocked = [n for n, r in results.items() if r.blocks]
    assert "champion" in blocked and set(blocked) <= {"baseline", "champion"}, blocked
    result = results["champion"]
    assert result.status is Status.FAIL and "roc_auc" in result.summary and "champion v1" in result.summary
    assert result.measured["change"] < -cfg.gates.champion.max_regression
    # a regression beyond the noise of the test rows, not only past the tolerance
    assert result.measured["change"] < -(cfg.gates.champion.max_regression + result.measured["noise_margin"])
    assert "paired bootstrap se" in result.summary


def test_a_loss_within_the_noise_of_the_test_rows_warns_not_blocks(demo):
    """Past the tolerance on the point estimate, but the rows cannot tell: a warning that says so.
    The same loss on a split with no noise estimate (noise_z 0) still blocks."""
    cfg = demo["cfg"]
    metric = cfg.model.primary_metric
    tolerance = cfg.gates.champion.max_regression
    found = {"champion": {"metric": metric, "difference": -2 * tolerance, "se": 2 * tolerance, "rows": 1400,
                          "resamples": 200, "sampled_rows": 1400}}
    champion = {metric: 0.80}
    candidate_metrics = {metric: 0.80 - 2 * tolerance}
    noisy = check_champion(candidate_metrics, champion, cfg, cfg.gates.champion, "1", metric_noise=found)
    assert noisy.status is Status.WARN and "within the noise" in noisy.summary and "1400 test rows" in noisy.summary
    strict = cfg.gates.champion.model_copy(update={"noise_z": 0})
    assert check_champion(candidate_metrics, champion, cfg, strict, "1", metric_noise=found).status is Status.FAIL
    gain_short = {"simple": {**found["champion"], "se": 0.01}}
    bar = cfg.gates.baseline.min_improvement
    baseline = check_baseline({metric: 0.80 + bar / 2}, {"simple": {metric: 0.80}}, cfg, cfg.gates.baseline,
                              gain_short)
    assert baseline.status is Status.WARN and "within the noise" in baseline.summary
    far_below = check_baseline({metric: 0.75}, {"simple": {metric: 0.80}}, cfg, cfg.gates.baseline, gain_short)
    assert far_below.status is Status.FAIL and "beyond the noise" in far_below.summary


def test_below_baseline_blocks_naming_the_baseline(demo):
    cfg, metrics, scores = candidate(demo, max_iter=2, learning_rate=1.0)  # the below_baseline fault
    results = all_gates(demo, cfg, metrics, scores)
    assert results["baseline"].status is Status.FAIL
    assert "'simple'" in results["baseline"].evidence[0] and "roc_auc" in results["baseline"].evidence[0]
    assert not results["predictions"].blocks  # it predicts both classes: weak, not broken


def test_nan_predictions_block_at_metric_sanity(demo):
    cfg, metrics, scores = candidate(demo, pipeline="gates.faults:nan_metric_pipeline", max_iter=30)
    result = check_metric_sanity(metrics, cfg.gates.metric_sanity, scores)
    assert result.status is Status.FAIL
    assert "predicted NaN" in result.evidence[0] and "metric roc_auc is nan" in result.evidence
    # The comparisons never crash on NaN (MLflow's Decimal checks would): they fail with a reason.
    baseline = check_baseline(metrics, demo["baselines"], cfg, cfg.gates.baseline)
    assert baseline.status is Status.FAIL and "not finite" in baseline.summary


def test_slice_collapse_blocks_naming_the_slice(demo):
    cfg, metrics, scores = candidate(demo, pipeline="gates.faults:slice_collapse_pipeline", max_iter=60)
    result = check_slices(demo["split"].test, scores, demo["scores"], cfg, cfg.gates.slices)
    assert result.status is Status.FAIL
    assert [e for e in result.evidence if e.startswith("slice region=west")], result.evidence
    assert not [e for e in result.evidence if "region=north" in e]


def test_small_slices_are_reported_not_judged(demo):
    cfg = demo["cfg"].model_copy(deep=True)
    cfg.gates.slices.min_count = 2000  # only region=north (and plan=basic) have that many test rows
    cfg.gates.slices.floor = 0.99
    result = check_slices(demo["split"].test, demo["scores"], demo["scores"], cfg, cfg.gates.slices)
    assert result.measured["too_small"] >= 4
    assert "reported, not judged" in " ".join(result.evidence)
    assert all("region=west" not in e for e in result.evidence if e.startswith("slice "))


def test_constant_predictions_block(demo):
    cfg, metrics, scores = candidate(demo, min_samples_leaf=100_000)
    result = check_predictions(scores, None, cfg, cfg.gates.predictions)
    assert result.status is Status.FAIL and "one constant value" in result.summary
    assert result.measured["distinct"] == 1


def test_a_moved_positive_share_warns_naming_the_observed_share(demo):
    """A share that moved with the ranking intact (a season's base rate) warns, naming the observed
    share of the rows; it used to block, and blocked clean monthly retrains of real seasonal data."""
    cfg, test, champion = demo["cfg"], demo["split"].test, demo["scores"]
    observed = float((test[cfg.data.target] == 1).mean())
    order = champion.argsort().argsort() / len(champion)  # the champion's ranking, as quantiles
    moved = np.clip(0.5 + (order - (1 - observed - 0.15)), 0, 1)  # positive share = observed + 0.15
    result = check_predictions(moved, champion, cfg, cfg.gates.predictions, test=test)
    assert result.status is Status.WARN and "observed positive share" in result.summary, result.summary
    assert abs(result.measured["change"]) > cfg.gates.predictions.max_rate_change


def test_a_champion_that_cannot_load_is_an_error(demo):
    cfg = demo["cfg"]
    result = check_champion(demo["metrics"], None, cfg, cfg.gates.champion, "3",
                            champion_error="OSError: No such file or directory: model.pkl")
    assert result.status is Status.ERROR and result.blocks
    assert "model.pkl" in result.summary and "@champion" in result.evidence[0]


def test_mlflow_threshold_guard_names_nan_instead_of_crashing():
    assert mlflow_threshold_failures("roc_auc", True, float("nan"), reference=0.7, min_gain=0.01)
    assert mlflow_threshold_failures("rmse", False, 3.0, reference=float("nan"), min_gain=0.1)
    assert mlflow_threshold_failures("rmse", False, 3.2, reference=3.0, min_gain=0.1)
    assert mlflow_threshold_failures("rmse", False, 2.8, reference=3.0, min_gain=0.1) == []


def _alias(config):
    cfg = load_config(config)
    client = MlflowClient(cfg.mlflow.tracking_uri, cfg.mlflow.tracking_uri)
    return cfg, client, str(client.get_model_version_by_alias(cfg.mlflow.registered_model, "champion").version)


def test_better_model_promotes_and_regressed_model_leaves_the_alias(make_config):
    # The artifact gates (two fresh interpreters per run) are tested in test_artifact_gates.py;
    # switched off here to keep three flow runs cheap.
    off = {f"gates.{g}.enabled": False
           for g in ("artifact_integrity", "library_versions", "signature", "artifact_loads")}
    weak = make_config(name="weak.yaml", **{"model.params.max_iter": 10, **off,
                                             "gates.baseline.enabled": False})
    state, first = run_flow(weak)
    assert state.is_completed(), state.message
    assert first.promoted_version == "1" and any("first run" in n for n in first.notes)
    assert "first run" in first.report.by_name("champion").summary

    state, better = run_flow(make_config(name="strong.yaml", **off))
    assert state.is_completed(), state.message
    cfg, client, version = _alias(weak)
    assert better.promoted_version == "2" and version == "2"
    run = client.get_run(better.mlflow_run_id)
    assert run.data.tags["champion.run_id"] == first.mlflow_run_id
    assert run.data.metrics["delta.roc_auc"] > cfg.gates.champion.max_regression

    state, regressed = run_flow(weak)
    assert state.is_failed()
    assert regressed.report.blocking[0].name == "champion" and "champion v2" in state.message
    assert _alias(weak)[2] == "2"
    assert client.get_run(regressed.mlflow_run_id).data.metrics["delta.roc_auc"] < 0


@pytest.mark.parametrize("metric", ["roc_auc", "brier", "rmse", "mae"])
def test_bootstrap_of_all_resamples_at_once_equals_one_resample_at_a_time(metric, monkeypatch):
    """The counts-weighted metrics (one sort for every resample) give the loop's standard error."""
    from gates import metric_noise

    rng = np.random.default_rng(3)
    y = (rng.random(1500) < 0.3).astype(int)
    candidate = np.round(rng.random(1500) * 0.5 + y * 0.3, 2)  # rounded: many tied scores
    reference = np.round(rng.random(1500) * 0.5 + y * 0.25, 2)
    at_once = metric_noise.paired_noise(y, candidate, reference, "binary", metric)
    monkeypatch.delitem(metric_noise.WEIGHTED, metric)
    one_by_one = metric_noise.paired_noise(y, candidate, reference, "binary", metric)
    assert at_once.se > 0 and at_once.se == pytest.approx(one_by_one.se, rel=1e-9)
    assert at_once.difference == one_by_one.difference and at_once.resamples == one_by_one.resamples
