"""The fault catalogue: inject each registered fault into a copy of a pipeline, run the real flow,
and check that the expected gate blocked and the diagnosis names it as the top cause.

Works on any config: the data is copied (only the partitions the runs read), MLflow and the export
go to a scratch folder, so a user can run the catalogue against their own pipeline safely.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gates.cadence import partition_date
from gates.faults import FAULTS, FaultTarget

# Gates that judge against the last promoted run: their scenarios promote a clean run first.
NEEDS_CHAMPION = {"drift", "label_shift", "champion"}
CHAMPION_LEAD_DAYS = 1  # the champion was trained the day before, as a daily schedule would
NOT_APPLICABLE = "not applicable"


@dataclass
class ScenarioResult:
    fault: str
    expected_gate: str
    verdict: str
    blocked_by: list[str] = field(default_factory=list)
    top_cause_gate: str | None = None
    top_cause: str = ""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    size: str = ""  # what a sized fault reached against the data's natural variation
    margin: str = ""  # the expected gate's own finding: measured against its threshold

    @property
    def applicable(self) -> bool:
        return self.verdict != NOT_APPLICABLE

    @property
    def ok(self) -> bool:
        if not self.applicable:  # stated, and counted apart by the callers
            return True
        if self.expected_gate == "":  # a clean run
            return self.verdict == "passed"
        return self.expected_gate in self.blocked_by and self.top_cause_gate == self.expected_gate


def _copy_window(src: Path, dst: Path, key: str, first: dt.date, last: dt.date) -> None:
    """Copy the partitions between first and last (inclusive), and nothing else."""
    dst.mkdir(parents=True, exist_ok=True)
    for child in src.iterdir():
        name = child.name
        if not child.is_dir() or not name.startswith(f"{key}="):
            continue
        day = partition_date(name.split("=", 1)[1])
        if day is None:
            continue
        if first <= day <= last:
            shutil.copytree(child, dst / name)


def scratch_config(base: dict[str, Any], work: Path, data: Path) -> dict[str, Any]:
    """A copy of a raw config that reads `data` and keeps MLflow and exports under `work`."""
    raw = copy.deepcopy(base)
    raw["data"]["path"] = str(data)
    raw.setdefault("mlflow", {})
    raw["mlflow"]["tracking_uri"] = f"sqlite:///{work / 'mlflow.db'}"
    raw["mlflow"]["artifact_root"] = str(work / "mlartifacts")
    raw.setdefault("export", {})["dir"] = str(work / "models")
    return raw


def _run(raw: dict[str, Any], work: Path, run_date: dt.date, name: str):
    from flows.retrain import retrain

    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    state = retrain(str(path), run_date.isoformat(), return_state=True)
    summary = state.result(raise_on_failure=False)
    if not hasattr(summary, "report"):
        raise RuntimeError(f"flow run for {name} did not return a summary: {state.message}")
    return summary


class ChampionCache:
    """Champion stores trained once and restored for every scenario that needs the same champion.

    A champion costs a whole flow run, and every champion-needing fault of a catalogue (same
    config, data and date) would train the same one. The scenarios that share it run in one fixed
    folder per champion, because MLflow records absolute artifact paths, and the folder's store is
    restored from a snapshot before each of them: the database with SQLite's backup API (an MLflow
    engine already open on it keeps working), the artifacts and exports by copy (a fault such as
    tampered_champion writes over the champion's files).
    """

    PARTS = ("mlartifacts", "models")

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def key(self, base: dict[str, Any], source: Path, run_date: dt.date) -> str:
        """The same config (but for the scratch paths each scenario sets), data and champion date."""
        config = scratch_config(base, Path("."), Path(source).resolve())
        text = json.dumps([config, run_date.isoformat()], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def workdir(self, key: str) -> Path:
        return self.root / key / "work"

    def restore(self, key: str, work: Path) -> bool:
        """Put the snapshot back into `work`; False when there is none yet."""
        snapshot = self.root / key / "snapshot"
        if not (snapshot / "mlflow.db").exists():
            return False
        _sqlite_copy(snapshot / "mlflow.db", work / "mlflow.db")
        for part in self.PARTS:
            shutil.rmtree(work / part, ignore_errors=True)
            if (snapshot / part).exists():
                shutil.copytree(snapshot / part, work / part)
        return True

    def save(self, key: str, work: Path) -> None:
        snapshot = self.root / key / "snapshot"
        shutil.rmtree(snapshot, ignore_errors=True)
        snapshot.mkdir(parents=True)
        for part in self.PARTS:
            if (work / part).exists():
                shutil.copytree(work / part, snapshot / part)
        _sqlite_copy(work / "mlflow.db", snapshot / "mlflow.db")  # last: it marks the snapshot complete


def _sqlite_copy(src: Path, dst: Path) -> None:
    """Copy a SQLite database into `dst` in place (its connections stay valid), or create it."""
    source, target = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


def run_scenario(fault_name: str | None, base: dict[str, Any], source: Path, work: Path,
                 run_date: dt.date, champion_lead_days: int = CHAMPION_LEAD_DAYS,
                 champions: ChampionCache | None = None) -> ScenarioResult:
    """Run one fault (or, with None, a clean run) end to end through the real flow.

    The champion run (when one is needed) is trained `champion_lead_days` before `run_date`: a
    clean run with a week-old champion exercises benign weekly drift. With `champions`, a champion
    already trained for the same config, data and dates is restored instead of trained again (the
    run then happens in the cache's folder for that champion, not in `work`).
    """
    fault = FAULTS[fault_name] if fault_name else None
    reason = fault.not_applicable(base) if fault else None
    if reason:
        return ScenarioResult(fault=fault_name, expected_gate=fault.expected_gate, verdict=NOT_APPLICABLE,
                              top_cause=f"not applicable: {reason}")
    window = int(base["data"].get("window_days", 60))
    key = base["data"].get("partition_key", "date")
    needs_champion = fault is None or fault.expected_gate in NEEDS_CHAMPION or "needs_champion" in fault.tags
    cache_key = champions.key(base, source, run_date - dt.timedelta(days=champion_lead_days)) \
        if champions is not None and needs_champion else None
    if cache_key:
        work = champions.workdir(cache_key)
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)  # a cached champion's folder holds the last fault's data
    first = run_date - dt.timedelta(days=window + champion_lead_days + 1)
    _copy_window(source, data, key, first, run_date - dt.timedelta(days=1))
    raw = scratch_config(base, work, data)
    if needs_champion and not (cache_key and champions.restore(cache_key, work)):
        champion = _run(raw, work, run_date - dt.timedelta(days=champion_lead_days), "champion")
        if champion.verdict != "passed":
            raise RuntimeError(f"the clean run that should set the champion was blocked: {champion.headline}")
        if cache_key:
            champions.save(cache_key, work)
    started = time.perf_counter()
    target = FaultTarget(data_path=data, config=raw, run_date=run_date)
    if fault is not None:
        fault.apply(target)
    summary = _run(raw, work, run_date, fault_name or "clean")
    seconds = time.perf_counter() - started
    diagnosis = summary.diagnosis
    top = diagnosis.hypotheses[0] if diagnosis and diagnosis.hypotheses and summary.verdict == "blocked" else None
    return ScenarioResult(
        fault=fault_name or "clean",
        expected_gate=fault.expected_gate if fault else "",
        verdict=summary.verdict,
        blocked_by=[r.name for r in summary.report.blocking],
        top_cause_gate=top.gate if top else None,
        top_cause=diagnosis.root_cause if diagnosis else summary.headline,
        seconds=round(seconds, 2),
        warnings=[r.name for r in summary.report.warnings],
        size="; ".join(target.sizes),
        margin=_margin(summary.report.by_name(fault.expected_gate)) if fault else "",
    )


def _margin(result) -> str:
    """The expected gate's finding in one line: what it measured against which threshold."""
    if result is None:
        return "(gate did not run)"
    return f"{result.status}: {result.summary}"


def as_row(result: ScenarioResult) -> dict[str, Any]:
    row = asdict(result)
    row["ok"] = result.ok
    return row
