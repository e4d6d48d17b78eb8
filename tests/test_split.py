"""The split (issue #4): time order with a gap, entity-aware, random; it records where rows came from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gates.config import parse_config
from gates.ingest import ingest
from gates.split import split_data
from tests.conftest import RUN_DATE, demo_config


@pytest.fixture(scope="module")
def frame_and_config(clean_data, tmp_path_factory):
    def make(**overrides):
        cfg = parse_config(demo_config(tmp_path_factory.mktemp("split"), clean_data, **overrides))
        return ingest(cfg, RUN_DATE).combined(), cfg

    return make


def test_time_split_holds_out_newest_days_and_drops_the_gap(frame_and_config):
    frame, cfg = frame_and_config(**{"split.test_days": 7, "split.gap_days": 2})
    split = split_data(frame, cfg, RUN_DATE)
    start = pd.Timestamp(RUN_DATE) - pd.Timedelta(days=7)
    assert split.test["event_time"].min() >= start
    assert split.train["event_time"].max() < start - pd.Timedelta(days=2)
    gap_rows = frame["event_time"].between(start - pd.Timedelta(days=2), start, inclusive="left").sum()
    assert gap_rows > 0 and len(split.train) + len(split.test) + gap_rows == len(frame)
    # Positions pair each split row with the frame row it came from.
    pd.testing.assert_frame_equal(frame.iloc[split.test_positions].reset_index(drop=True), split.test)
    pd.testing.assert_frame_equal(frame.iloc[split.train_positions].reset_index(drop=True), split.train)


@pytest.mark.parametrize("strategy", ["time", "random"])
def test_entity_aware_split_keeps_each_customer_on_one_side(frame_and_config, strategy):
    frame, cfg = frame_and_config(**{"split.strategy": strategy, "split.entity_aware": True})
    split = split_data(frame, cfg, RUN_DATE)
    shared = np.intersect1d(split.train["customer_id"].unique(), split.test["customer_id"].unique())
    assert len(shared) == 0 and len(split.train) > len(split.test) > 0
    assert split.entity_aware and split.strategy == strategy


def test_random_split_mixes_periods(frame_and_config):
    frame, cfg = frame_and_config(**{"split.strategy": "random"})
    split = split_data(frame, cfg, RUN_DATE)
    assert split.strategy == "random"
    assert split.train["event_time"].max() > split.test["event_time"].min()
    assert abs(len(split.test) / len(frame) - cfg.split.test_fraction) < 0.02


def test_entity_aware_without_entity_column_names_the_field(frame_and_config):
    frame, cfg = frame_and_config(**{"split.entity_aware": True, "data.entity_id": None})
    with pytest.raises(ValueError, match="data.entity_id"):
        split_data(frame, cfg, RUN_DATE)


def test_a_contiguous_time_split_shares_the_frames_rows_instead_of_copying(frame_and_config):
    """Issue 13.6: the default time split of a window in date order is two slices of it."""
    frame, cfg = frame_and_config()
    split = split_data(frame, cfg, RUN_DATE)
    assert np.shares_memory(split.train["tenure_months"].to_numpy(), frame["tenure_months"].to_numpy())
    assert np.shares_memory(split.test["tenure_months"].to_numpy(), frame["tenure_months"].to_numpy())
    pd.testing.assert_frame_equal(frame.iloc[split.test_positions].reset_index(drop=True), split.test)
    split.train.loc[0, "tenure_months"] = -1  # copy-on-write: the frame keeps its value
    assert frame.loc[split.train_positions[0], "tenure_months"] != -1.0


def test_row_hashes_tell_equal_rows_and_are_reused_when_given(frame_and_config):
    from gates.row_hashes import RowHashes

    frame, cfg = frame_and_config()
    columns = [c for c in frame.columns if c != "event_time"]
    hashes = RowHashes(frame)
    everything = hashes.rows(list(frame.columns))
    without_time = hashes.rows(columns)
    assert hashes.columns_hashed == len(frame.columns) + 1  # the second set: one term taken away
    assert not np.array_equal(everything, without_time)
    # Equal rows, equal hashes; the same duplicates as pandas finds on the columns themselves.
    doubled = pd.concat([frame.head(500), frame.head(50).assign(event_time=frame["event_time"].max())],
                        ignore_index=True)
    twice = RowHashes(doubled)
    np.testing.assert_array_equal(pd.Series(twice.rows(columns)).duplicated().to_numpy(),
                                  doubled.duplicated(columns).to_numpy())
    assert not pd.Series(twice.rows(list(doubled.columns))).duplicated().any()
    split = split_data(frame, cfg, RUN_DATE, row_hashes=hashes)
    assert split.row_hashes is hashes
    np.testing.assert_array_equal(split.row_hashes.rows(columns, split.test_positions),
                                  without_time[split.test_positions])
    fresh = split_data(frame.iloc[:-1], cfg, RUN_DATE, row_hashes=hashes)  # other rows: not reused
    assert fresh.row_hashes is not hashes and fresh.row_hashes.frame is not hashes.frame


def test_row_hashes_block_mix_is_pandas_hash_and_equal_floats_hash_equal():
    """The in-cache block hash of numeric columns is bit for bit pandas' hash (NaN payloads and
    -0.0 canonicalised), so equal rows stay equal whichever path hashed a column."""
    from gates.row_hashes import RowHashes, _weight

    rng = np.random.default_rng(3)
    n = 70_001  # more than one block of rows
    frame = pd.DataFrame({
        "f": np.r_[[-0.0, 0.0, np.nan, -np.nan], rng.normal(size=n - 4)],
        "i": rng.integers(-5, 5, n), "i32": rng.integers(0, 3, n).astype("int32"),
        "b": rng.random(n) > 0.5, "t": pd.to_datetime(rng.integers(0, 10**15, n), unit="us"),
        "f32": rng.random(n).astype("float32"), "s": rng.choice(["x", "y"], n),
        "n": pd.array(rng.integers(0, 5, n), dtype="Int64")})
    expected = np.zeros(n, dtype="uint64")
    with np.errstate(over="ignore"):
        for name in frame.columns:
            expected += pd.util.hash_pandas_object(frame[name], index=False).to_numpy() * _weight(name)
    hashes = RowHashes(frame)
    np.testing.assert_array_equal(hashes.rows(list(frame.columns)), expected)
    floats = hashes.rows(["f"])
    assert floats[0] == floats[1] and floats[2] == floats[3] and floats[0] != floats[2]
