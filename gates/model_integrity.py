"""Load only what was verified: a registered model's files must still be the ones promoted.

The MLflow model is a pickle, and unpickling runs code. Whoever can write to the artifact store
could otherwise run code in every retraining process (champion re-evaluation loads the
champion). So promotion records the sha256 of every model file, the files the artifact gates
verified, in the model version's tag `gates.checksums`; before a registered model is loaded its
files are downloaded into a private folder, hashed, compared with that tag, and only then loaded
from that folder (no window between check and load). A mismatch is the blocking finding
`champion_integrity`; nothing from the tampered files is deserialized.

A champion promoted before checksums were recorded is a stated case: it is not loaded (nothing
proves what it is), the run compares with absolute thresholds only and says so, unless
`gates.champion_integrity.unverified: block`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from gates.config import PipelineConfig
from gates.ingest import file_sha256
from gates.results import Family, GateResult, Status, judge

CHECKSUM_TAG = "gates.checksums"
# MLflow rewrites this file when the model is registered (the registered name and version, YAML
# it reads with a safe loader): it is metadata, not the model, so it is neither recorded nor checked.
REWRITTEN_BY_REGISTRY = frozenset({"registered_model_meta"})


class IntegrityError(RuntimeError):
    """A registered model's files differ from the checksums recorded when it was promoted."""


@dataclass
class Verified:
    """Outcome of checking one registered version; `model_dir` is set only when it matched."""

    version: str
    model_uri: str
    recorded: dict[str, str] | None = None
    mismatches: list[str] = field(default_factory=list)
    model_dir: Path | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.model_dir is not None


def recorded_checksums(exported_checksums: dict[str, str]) -> dict[str, str]:
    """The MLflow model's files among an export's verified checksums, relative to the model."""
    return {k.removeprefix("mlflow/"): v for k, v in exported_checksums.items()
            if k.startswith("mlflow/") and k.removeprefix("mlflow/") not in REWRITTEN_BY_REGISTRY}


def tag_value(checksums: dict[str, str]) -> str:
    return json.dumps(checksums, sort_keys=True, separators=(",", ":"))


def _compare(recorded: dict[str, str], folder: Path) -> list[str]:
    actual = {str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*"))
              if p.is_file() and str(p.relative_to(folder)) not in REWRITTEN_BY_REGISTRY}
    recorded = {k: v for k, v in recorded.items() if k not in REWRITTEN_BY_REGISTRY}
    out = [f"{rel}: missing" for rel in recorded if rel not in actual]
    out += [f"{rel}: sha256 {actual[rel][:12]}… differs from {sha[:12]}… recorded at promotion"
            for rel, sha in recorded.items() if rel in actual and actual[rel] != sha]
    out += [f"{rel}: not part of the promoted model (added later)" for rel in actual if rel not in recorded]
    return out


def verify(cfg: PipelineConfig, version: str, workdir: Path) -> Verified:
    """Download version `version` of the registered model into `workdir` and check its files."""
    import mlflow

    from gates import tracking

    name = cfg.mlflow.registered_model
    uri = f"models:/{name}/{version}"
    result = Verified(version=str(version), model_uri=uri)
    mv = tracking.client(cfg).get_model_version(name, str(version))
    raw = (mv.tags or {}).get(CHECKSUM_TAG)
    if not raw:
        return result  # promoted before checksums were recorded: stated by the gate
    try:
        result.recorded = {str(k): str(v) for k, v in json.loads(raw).items()}
    except (ValueError, AttributeError):
        result.mismatches = [f"tag {CHECKSUM_TAG} of version {version} is not a JSON object of checksums"]
        return result
    folder = workdir / f"v{version}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder)))
    result.mismatches = _compare(result.recorded, local)
    if not result.mismatches:
        result.model_dir = local
    return result


def load_verified(cfg: PipelineConfig, version: str, workdir: Path | None = None):
    """The registered model, loaded from a verified private copy; IntegrityError otherwise."""
    import mlflow

    folder = workdir or Path(tempfile.mkdtemp(prefix="gates-verified-"))
    checked = verify(cfg, version, folder)
    if checked.recorded is None and not checked.mismatches:
        raise IntegrityError(f"{checked.model_uri} has no recorded checksums ({CHECKSUM_TAG}); "
                             "not loaded, since nothing proves its files are the promoted ones")
    if not checked.ok:
        raise IntegrityError(f"{checked.model_uri}: {'; '.join(checked.mismatches[:5])}")
    return mlflow.sklearn.load_model(str(checked.model_dir))


def plan(ctx) -> list:
    """The champion_integrity gate, judged with the data gates (before anything loads the model)."""
    from gates.results import plan_gate

    settings = ctx.cfg.gates.champion_integrity
    return plan_gate("champion_integrity", Family.ARTIFACT, settings, check_champion_integrity,
                     ctx.champion_verified, ctx.champion_verify_error, settings.unverified)


def check_champion_integrity(checked: Verified | None, error: str | None,
                             unverified: str = "warn") -> GateResult:
    """Blocks when the champion's files differ from what was promoted (they were not loaded).

    `unverified` (warn or block): what a champion without recorded checksums gets.
    """
    if checked is None and error is None:
        return judge("champion_integrity", Family.ARTIFACT, failures=[],
                     ok_summary="first run: no champion to verify")
    if error is not None:
        raise RuntimeError(f"the champion's files could not be verified: {error}")
    threshold = {"rule": "sha256 of every file == tag " + CHECKSUM_TAG, "unverified": unverified}
    hint = ("Someone or something rewrote the registered model's files in the artifact store. "
            "Restore them from the export folder or a backup, or register a verified model; "
            "find out who can write to the artifact store.")
    if checked.recorded is None and not checked.mismatches:
        statement = (f"champion v{checked.version} was promoted before checksums were recorded "
                     f"({CHECKSUM_TAG}): it was not loaded; absolute thresholds only")
        status = Status.FAIL if unverified == "block" else Status.WARN
        return GateResult(name="champion_integrity", family=Family.ARTIFACT, status=status,
                          summary=statement, evidence=[statement], threshold=threshold,
                          measured={"files_checked": 0}, hint=hint if status is Status.FAIL else
                          "The next promoted model carries checksums.")
    return judge(
        "champion_integrity", Family.ARTIFACT,
        failures=[f"champion v{checked.version} ({checked.model_uri}) was modified after promotion; "
                  f"not loaded: {m}" for m in checked.mismatches],
        measured={"files_checked": len(checked.recorded or {}), "files_bad": len(checked.mismatches)},
        threshold=threshold, hint=hint,
        ok_summary=f"champion v{checked.version}: {len(checked.recorded or {})} files match the "
        "checksums recorded at promotion",
    )
