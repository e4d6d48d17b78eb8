"""bench/goals.py: #13's done-when read off a bench run's rows: met, not met, and not measured."""

from __future__ import annotations

from bench.goals import judged


def test_goals_judge_the_figures_and_leave_out_what_was_not_measured():
    rows = [{"section": "flow", "case": "1M rows (60 partitions)", "gate_share": 0.136, "s.gates.artifact": 4.5},
            {"section": "data_gates", "case": "1M rows, 30 partitions x 20 columns", "gates_over_single_pass": 2.69},
            {"section": "data_gates", "case": "10M rows, 30 partitions x 20 columns", "gates_over_single_pass": 5.2},
            {"section": "peers", "case": "1.1M clean: ours (data + leakage gates)", "verdict": "pass"},
            {"section": "peers", "case": "1.1M x0 +0.3 SD (4.24) in the 7 newest partitions: ours (data + "
             "leakage gates)", "verdict": "pass"},
            {"section": "peers", "case": "1.1M clean: evidently DataDriftPreset", "peer_over_ours": 4.9}]
    met = {row["case"]: (row["figure"], row["met"]) for row in judged(rows)}
    assert met["all gates < 15 % of the run (1.1M rows, training on one thread)"] == ("13.6%", "yes")
    assert met["artifact gates < 4 s (1.1M rows)"] == ("4.50 s", "NO")
    assert met["model-free data gates within 5x of one pass (1.1M rows)"] == ("2.69x", "yes")
    assert met["model-free data gates within 5x of one pass (10M rows)"] == ("5.20x", "NO")
    assert met["ours passes the clean data (1.1M rows)"] == ("pass", "yes")
    assert met["ours flags the x0 0.3-SD shift (1.1M rows)"] == ("pass", "NO")  # a missed shift fails
    assert met[">= 5x faster than evidently DataDriftPreset (1.1M rows, clean)"] == ("4.9x", "NO")
    # memory and fixed_cost did not run: their goals are absent, not met
    assert not any("memory" in goal or "fixed per-run" in goal for goal in met)
