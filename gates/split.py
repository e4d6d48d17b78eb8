"""Train/test split by time (the default) or at random (kept so the leakage gates can be shown
to catch it). The split records what it did, and where its rows came from, so the leakage gates
can check it and pair evaluated rows with the raw rows serving would send.

- time: test = events on or after `run_date - test_days`; train = events before the test start
  minus `gap_days` (the gap's rows are dropped, so labels that mature late cannot bleed over).
- entity_aware: no entity (data.entity_id) has rows in both train and test. With time, an
  entity seen in the test period leaves train; with random, whole entities are drawn.
- random: rows (or entities) drawn with `test_fraction`; the time-order gate blocks it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gates.config import PipelineConfig, SplitStrategy
from gates.row_hashes import RowHashes


@dataclass
class Split:
    train: pd.DataFrame
    test: pd.DataFrame
    strategy: str
    test_start: pd.Timestamp | None = None
    gap_days: int = 0
    entity_aware: bool = False
    # Row positions in the frame that was split: test row k is frame row test_positions[k].
    train_positions: np.ndarray | None = None
    test_positions: np.ndarray | None = None
    # Hashes of the split frame's rows (positions above index them), shared by the row gates.
    row_hashes: RowHashes | None = None

    @property
    def sizes(self) -> dict[str, int]:
        return {"train_rows": len(self.train), "test_rows": len(self.test)}


def _entity_draw(ids: pd.Series, fraction: float, seed: int) -> np.ndarray:
    """True for rows whose entity falls in the test share; the same entity always draws the same."""
    hashed = pd.util.hash_pandas_object(ids, index=False, hash_key=f"split{seed:012d}"[:16])
    return (hashed.to_numpy() % 1_000_000) < fraction * 1_000_000


def take_rows(frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """The rows at `positions`; a contiguous run (a time split of a window in date order) is
    taken as a slice, which copy-on-write shares with the frame instead of copying it."""
    if len(positions) and positions[-1] - positions[0] + 1 == len(positions):
        return frame.iloc[int(positions[0]):int(positions[-1]) + 1].reset_index(drop=True)
    return frame.iloc[positions].reset_index(drop=True)


def _make(frame: pd.DataFrame, is_train: np.ndarray, is_test: np.ndarray,
          row_hashes: RowHashes | None = None, **meta) -> Split:
    train_pos, test_pos = np.flatnonzero(is_train), np.flatnonzero(is_test)
    if row_hashes is None or len(row_hashes.frame) != len(frame) \
            or list(row_hashes.frame.columns) != list(frame.columns):
        row_hashes = RowHashes(frame)
    return Split(take_rows(frame, train_pos), take_rows(frame, test_pos),
                 train_positions=train_pos, test_positions=test_pos, row_hashes=row_hashes, **meta)


def split_data(frame: pd.DataFrame, cfg: PipelineConfig, run_date: dt.date,
               row_hashes: RowHashes | None = None) -> Split:
    """Split `frame`; `row_hashes` (of these very rows: the ingested window's when no hook changed
    the frame) are reused by the row gates instead of hashing the rows again."""
    split, ts, entity = cfg.split, cfg.data.timestamp, cfg.data.entity_id
    if frame.empty:
        raise ValueError("cannot split: no rows were ingested")
    if split.entity_aware and not entity:
        raise ValueError("split.entity_aware is true but data.entity_id is not set: name the "
                         "column that identifies an entity, or set split.entity_aware: false")
    if split.strategy is SplitStrategy.RANDOM:
        if split.entity_aware:
            is_test = _entity_draw(frame[entity], split.test_fraction, split.seed)
        else:
            is_test = np.random.default_rng(split.seed).random(len(frame)) < split.test_fraction
        return _make(frame, ~is_test, is_test, row_hashes, strategy="random", entity_aware=split.entity_aware)
    times = pd.to_datetime(frame[ts])
    test_start = pd.Timestamp(run_date - dt.timedelta(days=split.test_days))
    train_end = test_start - pd.Timedelta(days=split.gap_days)
    is_test = (times >= test_start).to_numpy()
    is_train = (times < train_end).to_numpy()
    if split.entity_aware:
        test_entities = frame.loc[is_test, entity].unique()
        is_train = is_train & ~frame[entity].isin(test_entities).to_numpy()
    result = _make(frame, is_train, is_test, row_hashes, strategy="time", test_start=test_start,
                   gap_days=split.gap_days, entity_aware=split.entity_aware)
    if result.train.empty or result.test.empty:
        raise ValueError(
            f"time split left {len(result.train)} train and {len(result.test)} test rows "
            f"(split.test_days={split.test_days}, split.gap_days={split.gap_days}, "
            f"window {cfg.data.window_days} days)"
        )
    return result
