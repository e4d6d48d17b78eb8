"""Artifact gates: the exported files are whole, and load and predict in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gates.config import ArtifactGate, PipelineConfig
from gates.export import Exported, sha256
from gates.results import Family, GateResult, judge


def check_integrity(exported: Exported, settings: ArtifactGate) -> GateResult:
    """Every exported file exists, is non-empty, and still has the checksum recorded at export."""
    failures = []
    roots = {"mlflow/": exported.mlflow_model_dir, "": exported.dir}
    for rel, recorded in exported.checksums.items():
        root = roots["mlflow/"] if rel.startswith("mlflow/") else roots[""]
        path = root / rel.removeprefix("mlflow/")
        if not path.is_file():
            failures.append(f"{path}: missing")
        elif path.stat().st_size == 0:
            failures.append(f"{path}: empty (0 bytes)")
        elif sha256(path) != recorded:
            failures.append(f"{path}: checksum changed since export (corrupted or rewritten)")
    return judge(
        "artifact_integrity",
        Family.ARTIFACT,
        failures=failures,
        measured={"files": len(exported.checksums), "bad_files": len(failures)},
        hint="Re-export the model; if it happens again, check the disk and whatever writes to "
        "the export folder between export and verification.",
        ok_summary=f"{len(exported.checksums)} files non-empty, checksums match",
    )


def probe(loader: str, path: Path, golden: Path, task: str, timeout: int) -> dict:
    """Load the model in a new interpreter; a crash or a timeout is a finding, not a pass."""
    cmd = [sys.executable, "-m", "gates.load_probe", loader, str(path), str(golden), task]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"loader": loader, "error": f"timed out after {timeout}s", "warnings": []}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"loader": loader, "error": f"exit {done.returncode}: {' | '.join(tail)}", "warnings": []}
    return json.loads(lines[-1])


def check_fresh_load(exported: Exported, cfg: PipelineConfig, settings: ArtifactGate) -> GateResult:
    """Both exports load in a fresh process and reproduce the in-memory predictions."""
    jobs = [("joblib", exported.joblib_path), ("mlflow-pyfunc", exported.mlflow_model_dir)]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        reports = list(pool.map(
            lambda job: probe(job[0], job[1], exported.golden_path, cfg.task.value,
                              settings.timeout_seconds), jobs))
    failures, measured = [], {}
    for (loader, path), report in zip(jobs, reports):
        if report.get("error"):
            failures.append(f"{loader} load of {path} failed: {report['error']}")
            continue
        diff = report.get("max_abs_diff", float("nan"))
        measured[f"{loader}_max_abs_diff"] = diff
        if not diff <= settings.atol:
            failures.append(f"{loader} predictions differ from training by up to {diff:.3g} "
                            f"(> atol {settings.atol}) on {report.get('rows')} golden rows")
    return judge(
        "artifact_loads",
        Family.ARTIFACT,
        failures=failures,
        measured=measured,
        threshold={"atol": settings.atol, "timeout_seconds": settings.timeout_seconds},
        hint="The exported files do not hold the model that was evaluated: check the export "
        "step, the serialization format and the library versions of the loading environment.",
        ok_summary="joblib and MLflow pyfunc load in a fresh process and reproduce predictions",
        details={"probes": reports},
    )


def plan(ctx) -> list:
    """The artifact gates, run on the exported files before anything is registered."""
    from gates.results import plan_gate

    g = ctx.cfg.gates
    return [
        *plan_gate("artifact_integrity", Family.ARTIFACT, g.artifact, check_integrity, ctx.exported,
                   g.artifact),
        *plan_gate("artifact_loads", Family.ARTIFACT, g.artifact, check_fresh_load, ctx.exported,
                   ctx.cfg, g.artifact),
    ]
