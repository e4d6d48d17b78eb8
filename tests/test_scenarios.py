"""The fault catalogue: every registered fault is blocked by its gate, named as the top cause,
and clean runs with different seeds pass (issue #6)."""

from __future__ import annotations

import datetime as dt

import pytest

from gates.demo_data import write_demo_data
from gates.faults import FAULTS
from gates.scenarios import run_scenario
from tests.conftest import RUN_DATE, demo_config

CLEAN_SEEDS = range(10)


@pytest.mark.parametrize("fault_name", sorted(FAULTS))
def test_fault_is_blocked_by_its_gate_and_named_first(fault_name, clean_data, tmp_path):
    base = demo_config(tmp_path, clean_data)
    result = run_scenario(fault_name, base, clean_data, tmp_path / "work", RUN_DATE)
    assert result.verdict == "blocked", f"{fault_name}: not blocked ({result.warnings=})"
    assert FAULTS[fault_name].expected_gate in result.blocked_by, result
    assert result.top_cause_gate == FAULTS[fault_name].expected_gate, result


@pytest.mark.parametrize("seed", CLEAN_SEEDS)
def test_clean_runs_pass_with_natural_variation(seed, tmp_path):
    # Different seeds and different seasons: each clean run is a week after its champion.
    run_date = RUN_DATE + dt.timedelta(days=37 * seed)
    source = tmp_path / "source"
    write_demo_data(source, run_date - dt.timedelta(days=1), days=40, rows_per_day=1000, seed=100 + seed)
    base = demo_config(tmp_path, source)
    result = run_scenario(None, base, source, tmp_path / "work", run_date, champion_lead_days=7)
    assert result.verdict == "passed", result
