"""Row hashes of one frame, computed once and shared by the gates that need them.

The duplicates gate hashes whole rows of the ingested window; row_overlap hashes train and test
rows without the timestamp. A row's hash here is a wrapping sum, over its columns, of the column's
value hash (pd.util.hash_pandas_object, vectorised) times an odd weight drawn from the column's
name. A sum can be taken apart: the hash of every column but the timestamp is the whole-row hash
minus the timestamp's term, so a second column set costs the columns it differs by, not another
pass over every column. Only the sums are kept (8 bytes a row per column set), never a hash per
column, so at 10M rows the cache stays a small fraction of the frame.
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import pandas as pd


def _weight(name: str) -> np.uint64:
    """An odd 64-bit multiplier of a column, stable across runs: the same value in two columns
    gives two different terms."""
    return np.uint64(int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little") | 1)


class RowHashes:
    """Lazy, cached hashes of `frame`'s rows, per column set."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self._sums: dict[frozenset[str], np.ndarray] = {}
        self.columns_hashed = 0  # column passes made so far (what reuse saves is visible)
        self._lock = threading.Lock()  # gates run in threads: a second asker waits, not re-hashes

    def __getstate__(self) -> dict:  # picklable (a process pool, Prefect): the lock stays behind
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def _term(self, name: str) -> np.ndarray:
        self.columns_hashed += 1
        hashed = pd.util.hash_pandas_object(self.frame[name], index=False).to_numpy()
        with np.errstate(over="ignore"):
            return hashed * _weight(name)

    def rows(self, columns: list[str], positions: np.ndarray | None = None) -> np.ndarray:
        """Hash of each row over `columns` (order-free), optionally of the rows at `positions`.
        Equal rows over these columns have equal hashes; unequal ones collide with odds ~2^-64."""
        wanted = frozenset(columns)
        if not wanted:
            raise ValueError("no columns to hash")
        with self._lock:
            if wanted not in self._sums:
                self._sums[wanted] = self._from_nearest(wanted)
            hashed = self._sums[wanted]
        return hashed if positions is None else hashed[positions]

    def _from_nearest(self, wanted: frozenset[str]) -> np.ndarray:
        """From the cached set that differs by the fewest columns (adding and removing terms),
        or from nothing."""
        base, start = frozenset(), None
        for known, sums in self._sums.items():
            if len(known ^ wanted) < len(base ^ wanted):
                base, start = known, sums
        out = np.zeros(len(self.frame), dtype="uint64") if start is None else start.copy()
        with np.errstate(over="ignore"):
            for name in sorted(wanted - base):
                out += self._term(name)
            for name in sorted(base - wanted):
                out -= self._term(name)
        return out
