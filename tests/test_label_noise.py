"""Label-noise hint (issue 11.6): the rule behind it. The catalogue (tests/test_scenarios.py) runs
the label_noise fault through the flow: 30 % flipped labels are named as a label problem first."""

from __future__ import annotations

import numpy as np

from gates.label_noise import LabelNoiseGate, _judge_sides, confident_wrong_rate, side_rates
from tests.conftest import demo_config


def test_confident_wrong_counts_only_sure_mistakes():
    y = np.array([1, 1, 0, 0, 1, 0])
    scores = np.array([0.1, 0.9, 0.95, 0.2, 0.5, 0.5])
    assert confident_wrong_rate(y, scores, 0.8) == 2 / 6  # the positive at 0.1, the negative at 0.95


def test_a_one_sided_jump_is_a_moved_base_rate_and_both_sides_are_flipped_labels():
    """Real seasonal data: after a busy month, the champion's confident positives are wrong more
    often, its confident negatives are not. Flipped labels make both sides wrong."""
    rng = np.random.default_rng(0)
    n = 4000
    scores = np.concatenate([rng.uniform(0.85, 1.0, n // 2), rng.uniform(0.0, 0.15, n // 2)])
    y_then = np.concatenate([(rng.random(n // 2) < 0.95), (rng.random(n // 2) < 0.05)]).astype(int)
    history = {side: rate for side, (rate, _) in side_rates(y_then, scores, 0.8).items()}
    settings = LabelNoiseGate()
    quiet_month = np.concatenate([(rng.random(n // 2) < 0.70), (rng.random(n // 2) < 0.05)]).astype(int)
    sides = _judge_sides(side_rates(quiet_month, scores, 0.8), history, settings, {})
    assert sides == {"positive_side": True, "negative_side": False}
    flipped = np.where(rng.random(n) < 0.3, 1 - y_then, y_then)
    assert _judge_sides(side_rates(flipped, scores, 0.8), history, settings, {}) == {
        "positive_side": True, "negative_side": True}
    few = _judge_sides(side_rates(flipped[:40], scores[:40], 0.8), history, settings, {})
    assert few is None  # under min_confident confident negatives: the total decides


def test_a_stale_champion_wrong_where_the_fresh_candidate_is_right_is_not_label_noise(tmp_path):
    """Real seasonal data, a champion two months old: it is confidently wrong on both sides of the
    new rows, but the candidate trained on newer rows is not, so the labels are fine. The same
    rows with labels flipped make the candidate wrong too, and block."""
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from gates import tracking
    from gates.config import parse_config
    from gates.label_noise import HISTORY_METRIC, SIDES, check_label_noise

    cfg = parse_config(demo_config(tmp_path, tmp_path / "data"))
    uri = tracking.tracking_uri(cfg)
    client = MlflowClient(uri, uri)
    run = client.create_run(client.create_experiment("label-noise"))
    rng = np.random.default_rng(1)
    n = 3000
    y = (rng.random(n) < 0.5).astype(int)
    fresh = np.where(y == 1, rng.uniform(0.85, 1.0, n), rng.uniform(0.0, 0.15, n))  # right and sure
    fresh[rng.random(n) < 0.02] = 0.5
    stale = np.where(rng.random(n) < 0.25, 1 - fresh, fresh)  # confidently wrong on a quarter, both sides
    history = side_rates(y, fresh, 0.8)
    client.log_metric(run.info.run_id, HISTORY_METRIC, confident_wrong_rate(y, fresh, 0.8))
    for side in SIDES:
        client.log_metric(run.info.run_id, f"{HISTORY_METRIC}_{side}", history[side][0])
    champion = tracking.Champion(version="3", run_id=run.info.run_id, model_uri="models:/x/3")
    test = pd.DataFrame({cfg.data.target: y})
    settings = cfg.gates.label_noise
    stale_only = check_label_noise(test, fresh, stale, champion, cfg, settings)
    assert not stale_only.blocks and "champion is stale" in stale_only.summary, stale_only.summary
    flipped = pd.DataFrame({cfg.data.target: np.where(rng.random(n) < 0.3, 1 - y, y)})
    assert check_label_noise(flipped, fresh, fresh, champion, cfg, settings).blocks
