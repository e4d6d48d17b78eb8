"""Discrimination on seasonal data, without a flow: the relative perfect_metric, the drift envelope,
and a suite inferred from several windows that does not bake in one season."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from gates.config import parse_config
from gates.data_gates import DriftGate
from gates.leakage_gates import PerfectMetricGate
from gates.demo_data import write_demo_data
from gates.drift import compare_profiles
from gates.leakage_gates import check_perfect_metric
from gates.profile import build_profile
from gates.results import Status
from gates.suite_init import infer_suite
from tests.conftest import demo_config


def _no_evidence():
    return "tenure_months", 0.71, 0.95


def test_easy_problem_is_not_leakage_when_the_baseline_is_as_high():
    result = check_perfect_metric({"roc_auc": 0.997}, PerfectMetricGate(),
                                  baselines={"dummy": {"roc_auc": 0.5}, "simple": {"roc_auc": 0.994}},
                                  single_feature=_no_evidence)
    assert result.status is Status.PASS
    assert "easy problem, not leakage" in result.summary and "'simple' scores 0.9940" in result.summary


def test_easy_problem_with_a_champion_as_high_passes_and_a_jump_past_it_blocks():
    settings = PerfectMetricGate()
    same = check_perfect_metric({"roc_auc": 0.998}, settings, baselines={"simple": {"roc_auc": 0.9}},
                                champion={"roc_auc": 0.996})
    assert same.status is Status.PASS and "as the champion" in same.summary
    jump = check_perfect_metric({"roc_auc": 0.999}, settings, baselines={"simple": {"roc_auc": 0.999}},
                                champion={"roc_auc": 0.93})
    assert jump.status is Status.FAIL and "jumps +0.0690 past the champion" in jump.summary


def test_first_run_ceiling_blocks_on_one_feature_evidence_or_a_jump_past_the_baseline():
    settings = PerfectMetricGate()
    leak = check_perfect_metric({"roc_auc": 0.999}, settings, baselines={"simple": {"roc_auc": 0.998}},
                                single_feature=lambda: ("retention_score", 0.992, 0.95))
    assert leak.status is Status.FAIL and "'retention_score' alone reaches 0.9920" in leak.summary
    jump = check_perfect_metric({"roc_auc": 0.999}, settings, baselines={"simple": {"roc_auc": 0.80}},
                                single_feature=_no_evidence)
    assert jump.status is Status.FAIL and "past the simple baseline" in jump.summary
    below = check_perfect_metric({"roc_auc": 0.9}, settings)
    assert below.status is Status.PASS and below.summary.startswith("below every ceiling")


def _profile(frame: pd.DataFrame, reference=None):
    return build_profile(frame, ["x"], [], None, reference=reference)


def test_drift_inside_the_natural_envelope_warns_and_outside_blocks():
    rng = pd.Series(range(1000), dtype="float64")
    ref = _profile(pd.DataFrame({"x": rng}))
    cur = _profile(pd.DataFrame({"x": rng + 300}), reference=ref)
    settings = DriftGate()
    plain = compare_profiles(ref, cur, settings)[0]
    assert plain.level == "block"
    psi = plain.stats["psi"]
    wide = {"features": {"x": {"psi": {"envelope": psi * 1.5}, "ks": {"envelope": 0.9}}}}
    calibrated = compare_profiles(ref, cur, settings, wide)[0]
    assert calibrated.level == "warn"
    assert f"PSI {psi:.3f}, natural range up to {psi * 1.5:.3f}" in calibrated.warn
    narrow = {"features": {"x": {"psi": {"envelope": psi / 2}, "ks": {"envelope": 0.9}}}}
    outside = compare_profiles(ref, cur, settings, narrow)[0]
    assert outside.level == "block" and "natural range up to" in outside.block[0]
    # a step change diluted in the window: past warn, below block, far outside the natural range
    small = _profile(pd.DataFrame({"x": pd.concat([rng[:850], rng[850:] * 3])}), reference=ref)
    uncalibrated = compare_profiles(ref, small, settings)[0]
    assert uncalibrated.level == "warn", uncalibrated.stats
    tiny = {"features": {"x": {"psi": {"envelope": 0.001}, "ks": {"envelope": 0.01}}}}
    diluted = compare_profiles(ref, small, settings, tiny)[0]
    assert diluted.level == "block" and "KS 0.154 >= 0.1, natural range up to 0.010" in diluted.block, diluted.block


def test_an_older_champion_is_judged_against_the_drift_seen_that_many_steps_apart(tmp_path):
    """After blocked runs the champion's window is k steps old: the natural drift over k steps
    (calibrated from k-step pairs) applies, not the one-step envelope; a fault still blocks."""
    import json

    from gates.calibration import calibrate, calibration_pairs, for_run, lag_steps
    from gates.data_gates import check_drift

    start, end = dt.date(2025, 1, 1), dt.date(2025, 12, 1)
    pairs = calibration_pairs(start, end, "month", sample_days=30, max_lag=4)
    kinds = {kind for _, _, kind in pairs}
    assert {"one step", "2 steps", "3 steps", "4 steps"} <= kinds, kinds
    base = pd.Series(range(1000), dtype="float64")

    def window(day: dt.date) -> pd.DataFrame:  # a feature that trends by 20 a month: drift grows with the lag
        months = (day.year - 2025) * 12 + day.month
        return pd.DataFrame({"x": base + 20 * months})

    cfg = parse_config({**demo_config(tmp_path, tmp_path / "data"),
                        "data": {**demo_config(tmp_path, tmp_path / "data")["data"],
                                 "features": {"numeric": ["x"], "categorical": []}, "slices": []}})
    calibration = calibrate(cfg, pairs, "month", lambda day, ref: _profile(window(day), reference=ref),
                            quantile=0.99, margin=0.25)
    one, four = (calibration["by_lag"].get(k) for k in ("2", "4"))
    assert one and four and four["features"]["x"]["psi"]["envelope"] > calibration["features"]["x"]["psi"]["envelope"]
    assert lag_steps("2025-06-30", "2025-10-31", "month") == 4 and lag_steps(None, "2025-10-31", "month") == 1
    older = for_run(calibration, dt.date(2025, 11, 1), lag=4)
    assert older["lag"] == {"steps": 4, "calibrated_up_to": 4}
    assert older["features"]["x"]["psi"]["envelope"] == four["features"]["x"]["psi"]["envelope"]

    path = tmp_path / "cal.json"
    path.write_text(json.dumps(calibration))
    cfg = cfg.model_copy(update={"calibration": path})
    ref = {**_profile(window(dt.date(2025, 6, 1))), "window": ["2025-05-01", "2025-06-01"]}
    natural = {**_profile(window(dt.date(2025, 10, 1)), reference=ref), "window": ["2025-09-01", "2025-10-01"]}
    result = check_drift(natural, ref, DriftGate(), cfg=cfg, run_date=dt.date(2025, 10, 1))
    assert not result.blocks and result.measured["champion_age_steps"] == 4, result.summary
    one_step = check_drift(natural, {**ref, "window": ["2025-08-01", "2025-09-01"]}, DriftGate(), cfg=cfg,
                           run_date=dt.date(2025, 10, 1))
    assert one_step.blocks, one_step.summary  # the same drift one step apart is outside its envelope
    shifted = {**_profile(window(dt.date(2025, 10, 1)) * 3, reference=ref), "window": ["2025-09-01", "2025-10-01"]}
    assert check_drift(shifted, ref, DriftGate(), cfg=cfg, run_date=dt.date(2025, 10, 1)).blocks


def test_suite_from_several_windows_gives_calendar_columns_their_full_domain(tmp_path):
    root = tmp_path / "data" / "churn"
    write_demo_data(root, dt.date(2026, 3, 31), days=120, rows_per_day=100)
    cfg = parse_config(demo_config(tmp_path, root))
    explain: list[str] = []
    suite = infer_suite(cfg, dt.date(2026, 1, 1), dt.date(2026, 3, 31), windows=3, explain=explain)
    ranges = {e["kwargs"]["column"]: (e["kwargs"]["min_value"], e["kwargs"]["max_value"])
              for e in suite["expectations"] if e["type"] == "expect_column_values_to_be_between"}
    assert ranges["month"] == (1, 12) and ranges["weekday"] == (0, 6)
    assert any(line.startswith("widened: 'month' is a calendar column") for line in explain)
    sets = {e["kwargs"]["column"]: e["kwargs"]["value_set"] for e in suite["expectations"]
            if e["type"] == "expect_column_values_to_be_in_set"}
    assert sets["region"] == ["east", "north", "south", "west"]  # category domains stay strict
    assert suite["meta"]["inference"] == explain


def _calendar_split(tmp_path, train_days: int, test_days: int = 28) -> tuple:
    """Daily rows from 2025-06-01: `train_days` of training, then `test_days` of test."""
    from gates.split import Split

    stamps = pd.date_range("2025-06-01", periods=train_days + test_days, freq="D")
    frame = pd.DataFrame({"event_time": stamps, "month": stamps.month.astype("int64"),
                          "day_of_year": stamps.day_of_year.astype("int64"),
                          "weekday": stamps.day_of_week.astype("int64"), "x": range(len(stamps))})
    raw = demo_config(tmp_path, tmp_path / "data")
    raw["data"]["features"] = {"numeric": ["month", "day_of_year", "weekday", "x"], "categorical": []}
    cfg = parse_config(raw)
    return Split(train=frame.iloc[:train_days], test=frame.iloc[train_days:], strategy="time"), cfg


def test_split_drift_names_calendar_values_the_training_split_never_held(tmp_path):
    """A window shorter than the yearly cycle: the test month's days of the year were never
    trained on (the births pipeline's 180-day window did this); a window covering the cycle and
    the test days passes. A plain numeric feature outside its range is drift's, not this check's."""
    from gates.data_gates import check_split_drift, season_coverage

    short, cfg = _calendar_split(tmp_path, 180)
    warnings, measured = season_coverage(short, cfg)
    assert measured["day_of_year.unseen_in_training"] == 1.0 and "x.unseen_in_training" not in measured
    assert len(warnings) == 2 and "'day_of_year': 100% of the test rows" in warnings[1] + warnings[0]
    assert "widen data.window_days" in warnings[0]
    result = check_split_drift(short, cfg, DriftGate(severity="warn"))  # the calendar columns drift too
    assert result.summary.startswith("feature 'month'") and "never held" in result.summary
    covered, cfg = _calendar_split(tmp_path, 372)
    assert season_coverage(covered, cfg) == ([], {"month.unseen_in_training": 0.0,
                                                   "day_of_year.unseen_in_training": 0.0,
                                                   "weekday.unseen_in_training": 0.0})
