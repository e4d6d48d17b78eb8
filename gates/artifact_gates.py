"""Artifact gates: the exported files are whole, load and predict in a fresh process, accept
what the data contract delivers, and were written by the library versions that will load them.

The two fresh-process loads (joblib and MLflow pyfunc) run once per run, in parallel, and both
the load gate and the library-versions gate read their reports.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import Field

from gates.config import MAX_SECONDS, PipelineConfig
from gates.export import Exported, sha256
from gates.registry import Cause, Gate
from gates.results import Family, GateResult, judge
from gates.settings import GateSettings

LOADERS = ("joblib", "mlflow-pyfunc")
# pandas/numpy dtype in the GE suite -> the MLflow signature type a column of it gets.
CONTRACT_TO_SIGNATURE = {"int64": "long", "int32": "integer", "float64": "double", "float32": "float",
                         "str": "string", "string": "string", "object": "string", "bool": "boolean",
                         "datetime64": "datetime", "datetime64[ns]": "datetime"}
UNPICKLING_ERRORS = {"UnpicklingError", "ModuleNotFoundError", "AttributeError", "ImportError",
                     "EOFError", "ValueError", "KeyError", "TypeError"}


class ArtifactIntegrityGate(GateSettings):
    """Every exported file is whole and has the checksum recorded at export."""


class LibraryVersionsGate(GateSettings):
    """The versions recorded with the model load it (reads artifact_loads' fresh-process loads)."""


class SignatureGate(GateSettings):
    """The MLflow model's input signature matches the data contract."""


class ArtifactLoadsGate(GateSettings):
    """Both exports load in a fresh process and reproduce the golden predictions."""

    timeout_seconds: int = Field(180, ge=5, le=MAX_SECONDS, description="Fresh-process load must finish in this.")
    golden_rows: int = Field(200, ge=1, le=1_000_000, description="Rows whose predictions must reproduce.")
    atol: float = Field(1e-9, ge=0, description="Prediction tolerance for reproduced outputs.")


ARTIFACT_BLOCKS = ("artifact_integrity", "library_versions", "signature", "artifact_loads")


def upgrade_artifact_block(gates: dict) -> dict:
    """An old config's shared `artifact:` block, spread over the four per-gate blocks.

    enabled and severity go to all four, the load settings to artifact_loads. A key given in
    both places is an error naming both, never a silent choice.
    """
    if not isinstance(gates, dict) or "artifact" not in gates:
        return gates
    gates = dict(gates)
    old = gates.pop("artifact") or {}
    if not isinstance(old, dict):
        raise ValueError("gates.artifact: expected a mapping (the old shared block of the artifact gates)")
    for key, value in old.items():
        targets = ARTIFACT_BLOCKS if key in ("enabled", "severity") else ("artifact_loads",)
        for block in targets:
            target = dict(gates.get(block) or {})
            if key in target:
                raise ValueError(f"gates.artifact.{key} and gates.{block}.{key} are both set; "
                                 f"gates.artifact is the old shared block, keep gates.{block}.{key}")
            target[key] = value
            gates[block] = target
    return gates


def _require(exported: Exported | None) -> Exported:
    if exported is None:
        raise ValueError("nothing was exported: the artifact gates have no files to verify")
    return exported


def check_integrity(exported: Exported | None, settings: ArtifactIntegrityGate | None = None) -> GateResult:
    """Every exported file exists, is non-empty, and still has the checksum recorded at export."""
    exported = _require(exported)
    failures = []
    for rel, recorded in exported.checksums.items():
        path = exported.path_of(rel)
        size = exported.sizes.get(rel)
        if not path.is_file():
            failures.append(f"{path}: missing")
        elif path.stat().st_size == 0:
            failures.append(f"{path}: empty (0 bytes" + (f", {size} at export)" if size else ")"))
        elif size is not None and path.stat().st_size < size:
            failures.append(f"{path}: truncated ({path.stat().st_size} of {size} bytes written at export)")
        elif sha256(path) != recorded:
            failures.append(f"{path}: checksum changed since export (corrupted or rewritten)")
    if not exported.checksums:
        failures.append(f"{exported.dir}: no checksums were recorded at export")
    return judge(
        "artifact_integrity", Family.ARTIFACT, failures=failures,
        measured={"files": len(exported.checksums), "bad_files": len(failures),
                  "bytes": sum(exported.sizes.values())},
        hint=ARTIFACT_INTEGRITY.hint,
        ok_summary=f"{len(exported.checksums)} files non-empty, checksums match",
    )


REPO = Path(__file__).resolve().parents[1]


def _reports(returncode: int, stdout: str, stderr: str, bases: list[dict]) -> list[dict]:
    """The probe's JSON line, or, when it exited badly or said nothing, a finding for each export."""
    lines = [line for line in stdout.splitlines() if line.startswith("[")]
    if returncode != 0 or not lines:
        tail = (stderr or stdout).strip().splitlines()[-3:]
        return [{**b, "error": f"exit {returncode}: {' | '.join(tail)}", "error_stage": "load"} for b in bases]
    reports = json.loads(lines[-1])
    if len(reports) != len(bases):
        return [{**b, "error": f"the probe reported {len(reports)} of {len(bases)} loads", "error_stage": "load"}
                for b in bases]
    return reports


def _bases(jobs: list[tuple[str, Path]]) -> list[dict]:
    return [{"loader": loader, "path": str(path), "warnings": [], "versions": {}} for loader, path in jobs]


def _timed_out(bases: list[dict], timeout: int) -> list[dict]:
    return [{**b, "error": f"timed out after {timeout}s", "error_stage": "load"} for b in bases]


class WarmInterpreter:
    """A fresh interpreter started before training (`python -m gates.load_probe --serve`): it
    imports scikit-learn, pandas and MLflow while the model fits, then answers one probe request.
    It shares nothing with the flow and reads the model from the files once they are written;
    only the imports (70-80 % of a cold probe) move off the critical path. Closing it (or the
    flow's exit, which closes its stdin) ends it."""

    def __init__(self, preload: tuple[str, ...] = ()) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "gates.load_probe", "--serve", *preload],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, cwd=REPO)
        self._used = threading.Lock()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def probe(self, jobs: list[tuple[str, Path]], golden: Path, task: str, timeout: int) -> list[dict] | None:
        """The reports, or None when it cannot take the request (gone, or used): probe cold."""
        if not self._used.acquire(blocking=False) or not self.alive():
            return None
        request = {"golden": str(golden), "task": task, "jobs": [f"{loader}={path}" for loader, path in jobs]}
        bases = _bases(jobs)
        try:
            out, err = self.proc.communicate(json.dumps(request) + "\n", timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            return _timed_out(bases, timeout)
        except (BrokenPipeError, OSError):  # it died between the check and the request
            self.close()
            return None
        return _reports(self.proc.returncode, out, err, bases)

    def close(self) -> None:
        if self.alive():
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.communicate(timeout=10)


def preload_modules(cfg: PipelineConfig) -> tuple[str, ...]:
    """The modules the exported pipeline's unpickling will import: the estimator's own, and the
    preprocessing's."""
    module = cfg.model.estimator.rpartition(".")[0]
    return tuple(m for m in (module, "sklearn.pipeline", "sklearn.compose", "sklearn.preprocessing",
                             "sklearn.impute") if m)


def probe_all(jobs: list[tuple[str, Path]], golden: Path, task: str, timeout: int,
              warm: WarmInterpreter | None = None) -> list[dict]:
    """Load every export in one new interpreter (the warm one when it is up); a crash or a
    timeout is a finding for each of them, not a pass."""
    if warm is not None:
        reports = warm.probe(jobs, golden, task, timeout)
        if reports is not None:
            return reports
    cmd = [sys.executable, "-m", "gates.load_probe", str(golden), task,
           *(f"{loader}={path}" for loader, path in jobs)]
    bases = _bases(jobs)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return _timed_out(bases, timeout)
    return _reports(done.returncode, done.stdout, done.stderr, bases)


def probe(loader: str, path: Path, golden: Path, task: str, timeout: int) -> dict:
    """One export in a new interpreter (see probe_all)."""
    return probe_all([(loader, path)], golden, task, timeout)[0]


class LoadProbes:
    """The fresh-process loads of one export: one interpreter for both files, started as soon
    as export wrote them (`start`), so it overlaps the gates that run before the artifact
    gates read it; shared by the gates."""

    def __init__(self, exported: Exported | None, cfg: PipelineConfig, settings: ArtifactLoadsGate,
                 warm: WarmInterpreter | None = None) -> None:
        self.exported, self.cfg, self.settings, self.warm = exported, cfg, settings, warm
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._future = None

    def jobs(self) -> list[tuple[str, Path]]:
        exported = _require(self.exported)
        return [("joblib", exported.joblib_path), ("mlflow-pyfunc", exported.mlflow_model_dir)]

    def start(self) -> "LoadProbes":
        with self._lock:
            if self._future is None:
                exported, jobs = _require(self.exported), self.jobs()
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-probe")
                self._future = self._pool.submit(probe_all, jobs, exported.golden_path, self.cfg.task.value,
                                                 self.settings.timeout_seconds, self.warm)
                self._pool.shutdown(wait=False)
        return self

    def reports(self) -> list[dict]:
        return self.start()._future.result()


def check_fresh_load(probes: LoadProbes, settings: ArtifactLoadsGate) -> GateResult:
    """Both exports load in a fresh process and reproduce the in-memory predictions."""
    failures, measured = [], {}
    reports = probes.reports()
    for (loader, path), report in zip(probes.jobs(), reports):
        if report.get("error"):
            failures.append(f"{loader} {report.get('error_stage') or 'load'} of {path} failed: {report['error']}")
            continue
        diff = report.get("max_abs_diff", float("nan"))
        measured[f"{loader}_max_abs_diff"] = diff
        if not diff <= settings.atol:
            failures.append(f"{loader} predictions of {path} differ from training by up to {diff:.3g} "
                            f"(> atol {settings.atol}) on {report.get('rows')} golden rows")
    return judge(
        "artifact_loads", Family.ARTIFACT, failures=failures, measured=measured,
        threshold={"atol": settings.atol, "timeout_seconds": settings.timeout_seconds},
        hint=ARTIFACT_LOADS.hint,
        ok_summary="joblib and MLflow pyfunc load in a fresh process and reproduce predictions",
        details={"probes": reports},
    )


def contract_types(expectations: Path) -> dict[str, str]:
    """Column -> dtype declared by the GE suite's expect_column_values_to_be_of_type expectations."""
    suite = json.loads(Path(expectations).read_text())
    return {e["kwargs"]["column"]: str(e["kwargs"].get("type_"))
            for e in suite.get("expectations", [])
            if e.get("type") == "expect_column_values_to_be_of_type" and "column" in e.get("kwargs", {})}


def signature_inputs(model_dir: Path) -> dict[str, str] | None:
    """Column -> MLflow type of the exported model's input signature (None: no signature)."""
    from mlflow.models import Model

    signature = Model.load(str(model_dir)).signature
    if signature is None or signature.inputs is None:
        return None
    return {spec.name: getattr(spec.type, "name", str(spec.type)) for spec in signature.inputs.inputs}


def check_signature(inputs: dict[str, str] | None, contract: dict[str, str], features: list[str],
                    model_dir: Path | str = "the model") -> GateResult:
    """The model's input signature has exactly the features, with the contract's types."""
    failures, warnings = [], []
    if inputs is None:
        failures.append(f"{model_dir}: the MLflow model has no input signature")
        inputs = {}
    else:
        missing = [f for f in features if f not in inputs]
        extra = [c for c in inputs if c not in features]
        if missing:
            failures.append(f"signature lacks feature column(s) {missing} ({model_dir}/MLmodel)")
        if extra:
            failures.append(f"signature has column(s) {extra} that are not configured features")
        for column in features:
            if column not in inputs:
                continue
            declared = contract.get(column)
            if declared is None:
                warnings.append(f"column {column!r}: the data contract declares no type, signature says "
                                f"{inputs[column]!r}")
                continue
            expected = CONTRACT_TO_SIGNATURE.get(declared, declared)
            if inputs[column] != expected:
                failures.append(f"column {column!r}: signature type {inputs[column]!r}, but the data "
                                f"contract declares {declared!r} (signature type {expected!r})")
    return judge(
        "signature", Family.ARTIFACT, failures=failures, warnings=warnings,
        measured={"signature_columns": len(inputs), "features": len(features)},
        hint=SIGNATURE.hint,
        ok_summary=f"signature matches the data contract on {len(features)} feature columns",
        details={"signature": inputs, "contract": {f: contract.get(f) for f in features}},
    )


def check_exported_signature(exported: Exported | None, cfg: PipelineConfig,
                             settings: SignatureGate | None = None) -> GateResult:
    """The signature gate on an export: its MLflow model's signature against the data contract."""
    model_dir = _require(exported).mlflow_model_dir
    return check_signature(signature_inputs(model_dir), contract_types(cfg.expectations),
                           cfg.data.features.all, model_dir)


def recorded_requirements(model_dir: Path) -> dict[str, str]:
    """name -> version pinned in the MLflow model's requirements.txt."""
    out = {}
    path = Path(model_dir) / "requirements.txt"
    if path.is_file():
        for line in path.read_text().splitlines():
            match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)", line)
            if match:
                out[match.group(1).lower()] = match.group(2)
    return out


def _damaged(exported: Exported, loader: str) -> bool:
    """Whether a loader's files changed since export (then the load error is not about versions)."""
    keys = [k for k in exported.checksums if (k.startswith("mlflow/") == (loader != "joblib"))]
    return any(not exported.path_of(k).is_file() or sha256(exported.path_of(k)) != exported.checksums[k]
               for k in keys)


def check_library_versions(probes: LoadProbes, exported: Exported | None,
                           settings: LibraryVersionsGate | None = None) -> GateResult:
    """The versions recorded with the model are the ones that load it.

    Blocks on: a version pinned in the export (manifest or requirements.txt) that differs from
    the loading interpreter's; scikit-learn's InconsistentVersionWarning (its own pickled version
    field); an unpickling error. Each finding names the library and both versions.
    """
    exported = _require(exported)
    reports = probes.reports()
    runtime = next((r["versions"] for r in reports if r.get("versions")), {})
    recorded = {**{k.lower(): v for k, v in exported.versions.items()},
                **recorded_requirements(exported.mlflow_model_dir)}
    failures, seen = [], set()
    for name, version in sorted(recorded.items()):
        now = runtime.get(name)
        if now is not None and now != "not installed" and now != version:
            failures.append(f"{name}: recorded {version} at export, runtime has {now}")
    for report in reports:
        for w in report.get("warnings", []):
            if w.get("category") == "InconsistentVersionWarning":
                key = (w.get("original_sklearn_version"), w.get("current_sklearn_version"))
                if key in seen:
                    continue
                seen.add(key)
                failures.append(f"scikit-learn: the model was pickled by scikit-learn {key[0]}, loaded "
                                f"with {key[1]} (InconsistentVersionWarning on {w.get('estimator_name')}, "
                                f"{report['loader']} load of {report['path']})")
        if report.get("error") and report.get("error_stage") == "load" and _damaged(exported, report["loader"]):
            continue  # an empty or corrupted file is artifact_integrity's finding, not a version problem
        if report.get("error") and report.get("error_type") in UNPICKLING_ERRORS and report.get("error_stage") == "load":
            pairs = ", ".join(f"{n} {recorded.get(n, '?')} recorded / {runtime.get(n, '?')} runtime"
                              for n in ("scikit-learn", "numpy", "cloudpickle", "joblib"))
            failures.append(f"unpickling error on {report['loader']} load of {report['path']}: "
                            f"{report['error'][:300]} ({pairs})")
    measured = {f"runtime_{k}": v for k, v in runtime.items() if k in ("scikit-learn", "numpy", "pandas")}
    return judge(
        "library_versions", Family.ARTIFACT, failures=failures, measured=measured,
        threshold={"rule": "recorded == runtime"},
        hint=LIBRARY_VERSIONS.hint,
        ok_summary=f"{len(recorded)} recorded library versions match the runtime; no version warnings on load",
        details={"recorded": recorded, "runtime": runtime},
    )


# --------------------------------------------------------------------------- declarations
# One config block each; library_versions and artifact_loads share one LoadProbes per export,
# configured by gates.artifact_loads. Old configs' shared `artifact:` block still reads.


ARTIFACT_INTEGRITY = Gate(
    name="artifact_integrity", family=Family.ARTIFACT, stage="artifact", settings=ArtifactIntegrityGate,
    inputs=("exported",), check=check_integrity,
    cause=Cause(bucket="pipeline", depth=3, meaning="an exported file is empty, truncated or corrupted",
                rules_out="empty or corrupted model files",
                next_check="Check what writes to the export folder after export; re-export."),
    hint="Re-export the model; if it happens again, check the disk and whatever writes to "
    "the export folder between export and verification.",
    blocks_when="an exported file is missing, empty, truncated or its checksum changed",
    faults=("empty_artifact", "corrupted_artifact"),
)

LIBRARY_VERSIONS = Gate(
    name="library_versions", family=Family.ARTIFACT, stage="artifact", settings=LibraryVersionsGate,
    inputs=("probes", "exported"), check=check_library_versions,
    cause=Cause(bucket="pipeline", depth=3, meaning="the model was serialized under other library versions",
                rules_out="library-version mismatches on load",
                next_check="Pin the training and serving environments to the same versions."),
    hint="Load the model with the versions it was trained with (requirements.txt of the MLflow "
    "model), or retrain under the runtime's versions.",
    blocks_when="loading raises scikit-learn's `InconsistentVersionWarning` or an unpickling error "
    "(names library and versions)",
    faults=("library_version_mismatch",),
)

SIGNATURE = Gate(
    name="signature", family=Family.ARTIFACT, stage="artifact", settings=SignatureGate,
    inputs=("exported", "cfg"), check=check_exported_signature,
    cause=Cause(bucket="pipeline", depth=4, meaning="the model's input signature does not match the data contract",
                rules_out="signature/contract mismatches",
                next_check="Compare the model's signature with expectations/."),
    hint="Serving validates requests against this signature: re-export from data that matches "
    "the contract, or update the contract (expectations suite) if the type change is intended.",
    blocks_when="the model's input signature does not match the data contract",
)

ARTIFACT_LOADS = Gate(
    name="artifact_loads", family=Family.ARTIFACT, stage="artifact", settings=ArtifactLoadsGate,
    inputs=("probes",), check=check_fresh_load,
    cause=Cause(bucket="pipeline", depth=4,
                meaning="the exported model does not load or reproduce its predictions",
                rules_out="models that do not load in a fresh process or change their predictions",
                next_check="Load the file by hand in a fresh interpreter; check serialization and versions."),
    hint="The exported files do not hold the model that was evaluated: check the export "
    "step, the serialization format and the library versions of the loading environment.",
    blocks_when="the MLflow model or the joblib file does not load in a fresh interpreter or does "
    "not reproduce the golden predictions",
)

GATES = [ARTIFACT_INTEGRITY, LIBRARY_VERSIONS, SIGNATURE, ARTIFACT_LOADS]
CONFIG_UPGRADES = [upgrade_artifact_block]
