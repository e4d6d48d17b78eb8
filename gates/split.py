"""Train/test split by time (the default) or at random (kept so the leakage gates can be shown
to catch it). The split records what it did, so the leakage gates can check it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gates.config import PipelineConfig, SplitStrategy


@dataclass
class Split:
    train: pd.DataFrame
    test: pd.DataFrame
    strategy: str
    test_start: pd.Timestamp | None = None
    gap_days: int = 0
    entity_aware: bool = False

    @property
    def sizes(self) -> dict[str, int]:
        return {"train_rows": len(self.train), "test_rows": len(self.test)}


def split_data(frame: pd.DataFrame, cfg: PipelineConfig, run_date: dt.date) -> Split:
    split, ts = cfg.split, cfg.data.timestamp
    if frame.empty:
        raise ValueError("cannot split: no rows were ingested")
    if split.strategy is SplitStrategy.RANDOM:
        rng = np.random.default_rng(split.seed)
        is_test = rng.random(len(frame)) < split.test_fraction
        return Split(frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True),
                     strategy="random")
    times = pd.to_datetime(frame[ts])
    test_start = pd.Timestamp(run_date - dt.timedelta(days=split.test_days))
    train_end = test_start - pd.Timedelta(days=split.gap_days)
    is_test = (times >= test_start).to_numpy()
    is_train = (times < train_end).to_numpy()
    if split.entity_aware and cfg.data.entity_id:
        test_entities = frame.loc[is_test, cfg.data.entity_id].unique()
        is_train &= ~frame[cfg.data.entity_id].isin(test_entities).to_numpy()
    train, test = frame[is_train].reset_index(drop=True), frame[is_test].reset_index(drop=True)
    if train.empty or test.empty:
        raise ValueError(
            f"time split left {len(train)} train and {len(test)} test rows "
            f"(split.test_days={split.test_days}, split.gap_days={split.gap_days}, "
            f"window {cfg.data.window_days} days)"
        )
    return Split(train, test, strategy="time", test_start=test_start, gap_days=split.gap_days,
                 entity_aware=split.entity_aware)
