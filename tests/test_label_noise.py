"""Label-noise hint (issue 11.6): 30 % flipped labels in the newest days are diagnosed as a data
(label) problem first, not as a model regression; a clean week later passes."""

from __future__ import annotations

import numpy as np

from gates.label_noise import confident_wrong_rate
from gates.scenarios import run_scenario
from tests.conftest import RUN_DATE, demo_config


def test_confident_wrong_counts_only_sure_mistakes():
    y = np.array([1, 1, 0, 0, 1, 0])
    scores = np.array([0.1, 0.9, 0.95, 0.2, 0.5, 0.5])
    assert confident_wrong_rate(y, scores, 0.8) == 2 / 6  # the positive at 0.1, the negative at 0.95


def test_flipped_labels_are_named_as_a_label_problem_before_any_model_gate(clean_data, tmp_path):
    result = run_scenario("label_noise", demo_config(tmp_path, clean_data), clean_data, tmp_path / "w",
                          RUN_DATE)
    assert result.verdict == "blocked", result
    assert "label_noise" in result.blocked_by, result
    assert result.top_cause_gate == "label_noise", result  # data first, whatever the model gates say
    assert "confidently wrong" in result.margin, result
