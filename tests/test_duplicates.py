"""Duplicate rows inside a partition and across partitions (issue 11.5): clean data passes, a
retried micro-batch blocks naming the partition and the rows' keys."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from gates.config import parse_config
from gates.demo_data import generate_day
from gates.duplicates import DuplicatesGate, check_duplicates
from gates.ingest import Ingested
from tests.conftest import demo_config

DAYS = [dt.date(2026, 5, 1) + dt.timedelta(days=k) for k in range(6)]


def _ingested(frames: dict[dt.date, pd.DataFrame]) -> Ingested:
    return Ingested(run_date=DAYS[-1] + dt.timedelta(days=1), expected=DAYS, files={},
                    frames={d: [f] for d, f in frames.items()})


@pytest.fixture
def cfg(tmp_path):
    return parse_config(demo_config(tmp_path, tmp_path / "data"))


@pytest.fixture
def frames():
    return {d: generate_day(d, rows_per_day=800, seed=5) for d in DAYS}


def test_clean_partitions_pass(cfg, frames):
    result = check_duplicates(_ingested(frames), cfg, DuplicatesGate())
    assert result.status == "pass", result.summary
    assert result.measured["duplicate_rows"] == 0


def test_rows_repeated_inside_a_partition_block_naming_partition_and_keys(cfg, frames):
    day = DAYS[2]
    again = frames[day].sample(frac=0.05, random_state=0)
    frames[day] = pd.concat([frames[day], again], ignore_index=True)
    result = check_duplicates(_ingested(frames), cfg, DuplicatesGate())
    assert result.blocks
    assert f"date={day.isoformat()}" in result.summary
    assert f"customer_id={again.iloc[0]['customer_id']}" in result.summary  # a sample key, named
    assert result.details["partitions"][day.isoformat()]["inside"] == len(again)


def test_rows_repeating_an_earlier_partition_block(cfg, frames):
    late, early = DAYS[4], DAYS[1]
    frames[late] = pd.concat([frames[late], frames[early].head(40)], ignore_index=True)
    result = check_duplicates(_ingested(frames), cfg, DuplicatesGate())
    assert result.blocks and f"date={late.isoformat()}" in result.summary
    assert result.details["partitions"][late.isoformat()]["earlier"] == 40


def test_a_learned_natural_share_from_the_calibration_file_raises_the_bar(cfg, frames, tmp_path):
    day = DAYS[2]
    frames[day] = pd.concat([frames[day], frames[day].head(10)], ignore_index=True)  # ~1.2 %
    assert check_duplicates(_ingested(frames), cfg, DuplicatesGate()).blocks
    suite = tmp_path / "suite.json"
    suite.write_text("{}")
    suite.with_suffix(".calibration.json").write_text(json.dumps({"duplicates": {"envelope": 0.02}}))
    cfg.expectations = suite
    result = check_duplicates(_ingested(frames), cfg, DuplicatesGate())
    assert result.status == "pass" and result.threshold["source"] == "calibration"


def test_rows_are_hashed_once_for_the_window_and_each_file_stays_as_read(cfg, frames):
    """Issue 13.4: the gate hashes the window's columns once (gates.row_hashes), and its counts
    are those of hashing every partition on its own."""
    from gates.duplicates import duplicate_counts

    day = DAYS[3]
    frames[day] = pd.concat([frames[day], frames[DAYS[0]].head(30), frames[day].head(7)], ignore_index=True)
    ingested = _ingested(frames)
    result = check_duplicates(ingested, cfg, DuplicatesGate())
    assert ingested.views and ingested.row_hashes.columns_hashed == len(ingested.window.columns)
    inside, earlier, _ = duplicate_counts(frames)
    assert result.details["partitions"][day.isoformat()] == {
        "inside": inside[day], "earlier": earlier[day], "share": round(37 / len(frames[day]), 6)}
    assert (inside[day], earlier[day]) == (7, 30)
    pd.testing.assert_frame_equal(ingested.frames[day][0], frames[day])


def test_partitions_with_different_dtypes_are_hashed_each_on_its_own(cfg, frames):
    day = DAYS[2]
    frames[day] = pd.concat([frames[day], frames[day].head(20)], ignore_index=True)
    frames[DAYS[0]] = frames[DAYS[0]].astype({"support_calls": "float64"})  # another file's dtype
    ingested = _ingested(frames)
    result = check_duplicates(ingested, cfg, DuplicatesGate())
    assert not ingested.views and result.blocks
    assert result.details["partitions"][day.isoformat()]["inside"] == 20
