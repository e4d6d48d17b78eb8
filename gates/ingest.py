"""Find and read the partitions of a run's window.

Reading never raises on a bad file: an unreadable file is recorded with its path so the
partition gate can block naming it, instead of the run crashing. Nothing read is trusted: a
zero-byte file, a CSV cut mid-line or with a row of too few fields, text that is not UTF-8,
duplicated column names, a symlink loop are each "unreadable" with the reason, and a
classification label read as `1.0/0.0` is normalised to the integers `1/0` before anything
compares it (see `normalise_labels`). CSV and parquet are both read through Arrow, so the two
formats give the same pandas dtypes (timestamps as datetime64, text as str).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from gates.config import Cadence, DataFormat, PipelineConfig, Task
from gates.row_hashes import RowHashes


class UnreadableFile(ValueError):
    """A data file that cannot be trusted as rows; the message says why (the path is added)."""


@dataclass
class Ingested:
    """What the run found on disk for its window, and what it could read.

    The window's rows are held once: `window` (partitions in date order, files in name order)
    and, per partition, `frames` as copy-on-write views of it, each equal to its file as read
    (same dtypes and values), so the partition gates still judge each file as delivered.
    """

    run_date: dt.date
    expected: list[dt.date]
    files: dict[dt.date, list[Path]]
    frames: dict[dt.date, list[pd.DataFrame]] = field(default_factory=dict)
    errors: dict[Path, str] = field(default_factory=dict)
    hashes: dict[Path, str] = field(default_factory=dict)
    all_dirs: dict[dt.date, list[Path]] = field(default_factory=dict)
    bad_entries: dict[Path, str] = field(default_factory=dict)  # partition-like names that are not
    ignored: dict[dt.date, list[str]] = field(default_factory=dict)  # other files in a partition
    window: pd.DataFrame | None = field(default=None, repr=False)
    views: bool = False  # every frame in `frames` is a view of `window` (same columns and dtypes)
    _row_hashes: RowHashes | None = field(default=None, repr=False)

    def rows(self, day: dt.date) -> int:
        return sum(len(f) for f in self.frames.get(day, []))

    def partition_frame(self, day: dt.date) -> pd.DataFrame:
        parts = self.frames.get(day, [])
        if len(parts) == 1:
            return parts[0]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def combined(self) -> pd.DataFrame:
        """The window's rows as one frame, built once; the per-file frames become views of it
        when they share columns and dtypes (a concat then changes nothing in them).

        Each call returns a shallow copy: copy-on-write shares the data, and an after_ingest
        hook assigning to the run's frame cannot change the window as delivered."""
        return self._window().copy(deep=False)

    def _window(self) -> pd.DataFrame:
        if self.window is None:
            parts = [f for day in self.expected for f in self.frames.get(day, [])]
            self.window = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
            if parts and _uniform_frames(parts):
                self.frames = _views(self.window, {d: self.frames[d] for d in self.expected
                                                   if d in self.frames}, self.frames)
                self.views = True
        return self.window

    @property
    def row_hashes(self) -> RowHashes:
        """Hashes of the window's rows as delivered, computed on first use and shared
        by the duplicates gate and (through the split) row_overlap."""
        window = self._window()
        if self._row_hashes is None or self._row_hashes.frame is not window:
            self._row_hashes = RowHashes(window)
        return self._row_hashes

    def partition_positions(self) -> dict[dt.date, tuple[int, int]]:
        """Per partition read, its rows' [start, stop) in `window` (partitions in date order)."""
        self._window()
        out, start = {}, 0
        for day in self.expected:
            n = self.rows(day)
            if self.frames.get(day):
                out[day] = (start, start + n)
            start += n
        return out

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


def discover(root: Path, key: str, fmt: DataFormat,
             bad: dict[Path, str] | None = None,
             ignored: dict[dt.date, list[str]] | None = None,
             cadence: Cadence | None = None) -> dict[dt.date, list[Path]]:
    """Map each partition date under `root` to its data files (hive layout `key=YYYY-MM-DD`, or
    `key=YYYY-MM` for a month; with the monthly cadence every date maps to its month).

    A folder named like a partition whose value is not a date (`date=2026-02-30`,
    `date=yesterday`) or that cannot be opened (a symlink loop, a dangling link) is recorded in
    `bad` when given; files of another format in a partition are listed in `ignored`. A data file
    that is a dangling or looping symlink is kept, so reading it fails naming the file.
    """
    from gates.cadence import partition_date

    pattern = re.compile(rf"^{re.escape(key)}=(\d{{4}}-\d{{2}}(?:-\d{{2}})?)$")
    found: dict[dt.date, list[Path]] = {}
    if not root.is_dir():
        return found
    for child in sorted(root.iterdir()):
        if not child.name.startswith(f"{key}="):
            continue
        match = pattern.match(child.name.strip())
        if not match:
            if bad is not None:
                bad[child] = f"partition name is not {key}=YYYY-MM-DD (or {key}=YYYY-MM)"
            continue
        day = partition_date(match.group(1), cadence)
        if day is None:
            if bad is not None:
                bad[child] = f"{match.group(1)!r} is not a calendar date"
            continue
        if not child.is_dir():
            if bad is not None:
                bad[child] = ("cannot be opened as a folder (symlink loop or dangling link)"
                              if child.is_symlink() else "a file where a partition folder was expected")
            continue
        files, others = [], []
        for p in sorted(child.iterdir()):
            if p.name.startswith((".", "_")):
                continue  # hidden files and markers such as _SUCCESS
            if p.suffix == f".{fmt.value}" and (p.is_file() or p.is_symlink()):
                files.append(p)
            else:
                others.append(p.name)
        found.setdefault(day, []).extend(files)
        if others and ignored is not None:
            ignored.setdefault(day, []).extend(others)
    return found


def read_raw(path: Path, fmt: DataFormat) -> bytes | pa.Buffer:
    """A data file's bytes. Parquet's are read into Arrow's allocator, which decodes them next and
    reuses the memory (as Python bytes, the C allocator kept ~0.1 GB of them at 10M rows)."""
    if fmt is not DataFormat.PARQUET:
        return path.read_bytes()
    with open(path, "rb") as handle:  # Python's open: its errors name the cause (a symlink loop)
        buffer = pa.allocate_buffer(os.fstat(handle.fileno()).st_size)
        got = handle.readinto(memoryview(buffer))
    return buffer if got == buffer.size else buffer.slice(0, got)  # cut while read: the PAR1 check names it


def read_file(path: Path, fmt: DataFormat) -> pd.DataFrame:
    return parse_bytes(path.read_bytes(), fmt)


def parse_bytes(raw: bytes, fmt: DataFormat) -> pd.DataFrame:
    """Parse one data file strictly; raises UnreadableFile (or Arrow's error) saying why."""
    return parse_table(raw, fmt).to_pandas()


def parse_table(raw: bytes | pa.Buffer, fmt: DataFormat) -> pa.Table:
    """One data file as an Arrow table, strictly (see parse_bytes)."""
    if not len(raw):
        raise UnreadableFile("empty file (0 bytes)")
    if fmt is DataFormat.PARQUET:
        magic = memoryview(raw)
        if magic[:4] != b"PAR1" or magic[-4:] != b"PAR1":
            raise UnreadableFile("not a parquet file (no PAR1 magic bytes at its start and end: "
                                 "truncated, or another format)")
        table = pq.read_table(pa.BufferReader(raw))
    else:
        raw = raw.to_pybytes() if isinstance(raw, pa.Buffer) else raw
        if not raw.endswith(b"\n"):
            raise UnreadableFile("the last line is not terminated by a newline (the file was cut "
                                 "mid-line?)")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[:exc.start].count(b"\n") + 1
            raise UnreadableFile(f"not UTF-8 text (byte {raw[exc.start]:#04x} on line {line})") from None
        try:
            table = pacsv.read_csv(pa.BufferReader(raw))
        except pa.ArrowInvalid as exc:  # "Expected 11 columns, got 5: ..." names the row
            raise UnreadableFile(_short(str(exc))) from None
    names = table.column_names
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UnreadableFile(f"duplicated column names {dupes}")
    return table


def _uniform_frames(parts: list[pd.DataFrame]) -> bool:
    """Same columns, same dtypes, default index: concatenating them changes no value or dtype."""
    first = parts[0]
    return all(isinstance(p.index, pd.RangeIndex) and p.index.start == 0 and p.index.step == 1
               and list(p.columns) == list(first.columns) and p.dtypes.equals(first.dtypes)
               for p in parts)


def _views(window: pd.DataFrame, in_window: dict[dt.date, list[pd.DataFrame]],
           every: dict[dt.date, list[pd.DataFrame]]) -> dict[dt.date, list[pd.DataFrame]]:
    """Per file, the slice of `window` holding its rows (in the order they were concatenated)."""
    out, start = dict(every), 0
    for day, parts in in_window.items():
        views = []
        for part in parts:
            views.append(window.iloc[start:start + len(part)].reset_index(drop=True))
            start += len(part)
        out[day] = views
    return out


def _pandas_meta(table: pa.Table) -> dict | None:
    raw = (table.schema.metadata or {}).get(b"pandas")
    return json.loads(raw) if raw else None


def _one_table(tables: list[pa.Table], target: str, task: Task) -> bool:
    """Whether the files' tables can be concatenated in Arrow and converted once, giving every
    file exactly the frame it gives alone: one schema, no categorical (dictionary) columns, no
    integer or boolean column with a null (pandas would make it float in that file only), a
    label that needs no normalising, and no stored index."""
    first = tables[0]
    meta = _pandas_meta(first)
    for table in tables:
        if not table.schema.equals(first.schema, check_metadata=False):
            return False
        other = _pandas_meta(table)
        if (meta is None) != (other is None):
            return False
        if other is not None and (other.get("columns") != meta.get("columns") or any(
                not isinstance(i, dict) or i.get("kind") != "range" for i in other.get("index_columns", []))):
            return False
        for name, column in zip(table.column_names, table.columns, strict=True):
            kind = column.type
            if pa.types.is_dictionary(kind):
                return False
            if (pa.types.is_integer(kind) or pa.types.is_boolean(kind)) and column.null_count:
                return False
            if task is Task.CLASSIFICATION and name == target and not pa.types.is_integer(kind):
                return False
    return True


def _window_from_tables(tables: list[pa.Table]) -> pd.DataFrame:
    """One conversion of the concatenated tables, releasing Arrow's buffers column by column
    (self_destruct), so the window is never held twice."""
    table = pa.concat_tables(tables)
    tables.clear()
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    return frame


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def normalise_labels(frame: pd.DataFrame, target: str, task: Task) -> pd.DataFrame:
    """One type for a classification label, whatever wrote it: `1.0/0.0` (a CSV, a float column
    with a null), `True/False` and `"1"/"0"` all become the integers `1/0`, so a label is never
    compared as a string with another file's or the champion's. Labels that are not integral
    numbers (text classes, 0.5) are left as they are for the gates to name."""
    if task is not Task.CLASSIFICATION or target not in frame.columns or frame.empty:
        return frame
    series = frame[target]
    if pd.api.types.is_integer_dtype(series.dtype) and not isinstance(series.dtype, pd.CategoricalDtype):
        return frame
    if pd.api.types.is_bool_dtype(series.dtype):
        numbers = series.astype("int64")
    else:
        numbers = pd.to_numeric(series, errors="coerce")
        if numbers.isna().sum() != series.isna().sum():
            return frame  # text classes
        finite = numbers.dropna()
        if len(finite) and not (finite == finite.round()).all():
            return frame  # not integral: left for the gates to name
        numbers = numbers.astype("Int64" if numbers.isna().any() else "int64")
    frame = frame.copy()
    frame[target] = numbers
    return frame


def file_sha256(path: Path) -> str:
    """Content hash of a file, read in 1 MiB chunks (data partitions and exported models alike)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def use_returning_allocator() -> str:
    """Arrow's memory from jemalloc set to hand freed pages back at once; returns the pool's name.

    Arrow's default, mimalloc, commits its arenas eagerly and keeps what is freed: at 10M rows the
    process held 1.4-1.7 GB beyond the 1.84 GB window while ingest decoded and converted it.
    jemalloc returning at once holds the window plus ~0.1 GB; ingest there took 2.4 s with it and
    1.3-2.3 s without (three runs each, noisy: the madvise calls cost a little). Left alone when the user chose a pool (ARROW_DEFAULT_MEMORY_POOL) or Arrow has no jemalloc."""
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        try:
            if pa.default_memory_pool().backend_name != "jemalloc":
                pa.set_memory_pool(pa.jemalloc_memory_pool())
            pa.jemalloc_set_decay_ms(0)
        except NotImplementedError:  # a pyarrow built without jemalloc
            pass
    return pa.default_memory_pool().backend_name


def ingest(cfg: PipelineConfig, run_date: dt.date, workers: int | None = None) -> Ingested:
    """Read every file of the window's partitions in parallel; record unreadable files."""
    use_returning_allocator()
    data = cfg.data
    expected = expected_partitions(run_date, data.window_days, data.cadence)
    bad: dict[Path, str] = {}
    ignored: dict[dt.date, list[str]] = {}
    found = discover(Path(data.path), data.partition_key, data.format, bad, ignored, cadence=data.cadence)
    in_window = {d: found[d] for d in expected if d in found}
    result = Ingested(run_date=run_date, expected=expected, files=in_window, all_dirs=found,
                      bad_entries=bad, ignored={d: v for d, v in ignored.items() if d in in_window})
    jobs = [(day, path) for day, paths in in_window.items() for path in paths]

    def load(job: tuple[dt.date, Path]) -> tuple[dt.date, Path, pa.Table | None, str | None, str]:
        day, path = job
        try:
            raw = read_raw(path, data.format)  # one read: hashed, then parsed from memory
            return day, path, parse_table(raw, data.format), None, hashlib.sha256(raw).hexdigest()
        except UnreadableFile as exc:
            return day, path, None, str(exc), ""
        except Exception as exc:  # noqa: BLE001 - recorded and reported by the partition gate
            return day, path, None, f"{type(exc).__name__}: {_short(str(exc))}", ""

    read: dict[dt.date, list[pa.Table]] = {}
    with ThreadPoolExecutor(max_workers=workers or cfg.gates.partitions.workers) as pool:
        for day, path, table, error, sha in pool.map(load, jobs):
            if error is not None:
                result.errors[path] = error
                continue
            result.hashes[path] = sha
            read.setdefault(day, []).append(table)
    _to_frames(result, read, data.target, cfg.task)
    return result


def _to_frames(result: Ingested, read: dict[dt.date, list[pa.Table]], target: str, task: Task) -> None:
    """The tables read as one window frame with per-file views; when the files differ (schema,
    nullable integers, a label to normalise), each file is converted and normalised on its own,
    exactly as delivered, and the window is their concat."""
    days = [d for d in result.expected if d in read]
    tables = [t for d in days for t in read[d]]
    if tables and _one_table(tables, target, task):
        lengths = {d: [t.num_rows for t in read[d]] for d in days}
        read.clear()
        result.window = _window_from_tables(tables)
        start = 0
        for day in days:
            views = []
            for n in lengths[day]:
                views.append(result.window.iloc[start:start + n].reset_index(drop=True))
                start += n
            result.frames[day] = views
        result.views = True
        return
    for day in days:
        result.frames[day] = [normalise_labels(t.to_pandas(), target, task) for t in read.pop(day)]
    result._window()
