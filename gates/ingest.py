"""Find and read the partitions of a run's window.

Reading never raises on a bad file: an unreadable file is recorded with its path so the
partition gate can block naming it, instead of the run crashing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gates.config import Cadence, DataFormat, PipelineConfig


@dataclass
class Ingested:
    """What the run found on disk for its window, and what it could read."""

    run_date: dt.date
    expected: list[dt.date]
    files: dict[dt.date, list[Path]]
    frames: dict[dt.date, list[pd.DataFrame]] = field(default_factory=dict)
    errors: dict[Path, str] = field(default_factory=dict)
    hashes: dict[Path, str] = field(default_factory=dict)
    all_dirs: dict[dt.date, list[Path]] = field(default_factory=dict)

    def rows(self, day: dt.date) -> int:
        return sum(len(f) for f in self.frames.get(day, []))

    def partition_frame(self, day: dt.date) -> pd.DataFrame:
        parts = self.frames.get(day, [])
        if len(parts) == 1:
            return parts[0]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def combined(self) -> pd.DataFrame:
        parts = [f for day in self.expected for f in self.frames.get(day, [])]
        if not parts:
            return pd.DataFrame()
        return pd.concat(parts, ignore_index=True)

    def fingerprint(self) -> dict[str, object]:
        """Partitions, row counts and a content hash: enough to tell two runs' data apart."""
        digest = hashlib.sha256()
        for path in sorted(self.hashes):
            digest.update(self.hashes[path].encode())
        return {
            "window_start": self.expected[0].isoformat() if self.expected else None,
            "window_end": self.expected[-1].isoformat() if self.expected else None,
            "partitions": len([d for d in self.expected if d in self.frames]),
            "rows": sum(self.rows(d) for d in self.expected),
            "content_sha256": digest.hexdigest(),
            "rows_per_partition": {d.isoformat(): self.rows(d) for d in self.expected},
        }


def expected_partitions(run_date: dt.date, window_days: int, cadence: Cadence) -> list[dt.date]:
    """The partitions a run on `run_date` trains on: the window before the run date."""
    if cadence is Cadence.MONTHLY:
        from gates.cadence import monthly_partitions

        return monthly_partitions(run_date, window_days)
    step = 7 if cadence is Cadence.WEEKLY else 1
    return sorted(run_date - dt.timedelta(days=k) for k in range(step, window_days + 1, step))


def discover(root: Path, key: str, fmt: DataFormat, cadence: Cadence | None = None) -> dict[dt.date, list[Path]]:
    """Map each partition date under `root` to its data files (hive layout `key=YYYY-MM-DD`, or
    `key=YYYY-MM` for a month; with the monthly cadence every date maps to its month)."""
    from gates.cadence import partition_date

    pattern = re.compile(rf"^{re.escape(key)}=(\d{{4}}-\d{{2}}(?:-\d{{2}})?)$")
    found: dict[dt.date, list[Path]] = {}
    if not root.is_dir():
        return found
    for child in root.iterdir():
        match = pattern.match(child.name.strip())
        if not child.is_dir() or not match:
            continue
        day = partition_date(match.group(1), cadence)
        if day is None:
            continue
        files = sorted(p for p in child.iterdir() if p.is_file() and p.suffix == f".{fmt.value}"
                       and not p.name.startswith("."))
        found.setdefault(day, []).extend(files)
    return found


def read_file(path: Path, fmt: DataFormat) -> pd.DataFrame:
    if fmt is DataFormat.PARQUET:
        return pq.read_table(path).to_pandas()
    return pd.read_csv(path)


def parse_bytes(raw: bytes, fmt: DataFormat) -> pd.DataFrame:
    if fmt is DataFormat.PARQUET:
        return pq.read_table(pa.BufferReader(raw)).to_pandas()
    return pd.read_csv(io.BytesIO(raw))


def file_sha256(path: Path) -> str:
    """Content hash of a file, read in 1 MiB chunks (data partitions and exported models alike)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ingest(cfg: PipelineConfig, run_date: dt.date, workers: int | None = None) -> Ingested:
    """Read every file of the window's partitions in parallel; record unreadable files."""
    data = cfg.data
    expected = expected_partitions(run_date, data.window_days, data.cadence)
    found = discover(Path(data.path), data.partition_key, data.format, data.cadence)
    in_window = {d: found[d] for d in expected if d in found}
    result = Ingested(run_date=run_date, expected=expected, files=in_window, all_dirs=found)
    jobs = [(day, path) for day, paths in in_window.items() for path in paths]

    def load(job: tuple[dt.date, Path]) -> tuple[dt.date, Path, pd.DataFrame | None, str | None, str]:
        day, path = job
        try:
            raw = path.read_bytes()  # one read: hashed, then parsed from memory
            return day, path, parse_bytes(raw, data.format), None, hashlib.sha256(raw).hexdigest()
        except Exception as exc:  # noqa: BLE001 - recorded and reported by the partition gate
            return day, path, None, f"{type(exc).__name__}: {exc}", ""

    with ThreadPoolExecutor(max_workers=workers or cfg.gates.partitions.workers) as pool:
        for day, path, frame, error, sha in pool.map(load, jobs):
            if error is not None:
                result.errors[path] = error
                continue
            result.hashes[path] = sha
            result.frames.setdefault(day, []).append(frame)
    return result
