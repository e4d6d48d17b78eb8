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
from typing import Literal

from pydantic import Field

from gates.config import PipelineConfig
from gates.ingest import file_sha256
from gates.registry import Cause, Gate
from gates.results import Family, GateResult, Status, judge
from gates.settings import GateSettings

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


class ChampionIntegrityGate(GateSettings):
    """The champion's model files against the sha256 recorded when it was promoted."""

    unverified: Literal["warn", "block"] = Field(
        "warn", description="A champion promoted before checksums were recorded is never loaded; "
        "warn: the run compares with absolute thresholds only and says so; block: the run stops.")


def verify_champion(ctx) -> None:
    """Check the champion's files before anything loads them; the gate judges the outcome.

    Called by the ingest step (after your after_ingest hooks, before the data gates and before
    evaluation loads the champion). The private copy lives in `ctx.workdir` (made here when the
    caller gave none; the flow removes it at the end of the run).
    """
    if ctx.champion is None or ctx.champion_model is not None:
        return  # no champion, or one this process holds in memory (a backtest): no store is read
    try:
        if ctx.workdir is None:
            ctx.workdir = tempfile.mkdtemp(prefix="gates-run-")
        ctx.champion_verified = verify(ctx.cfg, ctx.champion.version, Path(ctx.workdir))
    except Exception as exc:  # noqa: BLE001 - the champion_integrity gate blocks on it (fail closed)
        ctx.champion_verify_error = f"{type(exc).__name__}: {exc}"


def check_champion_integrity(champion_verified: Verified | None, champion_verify_error: str | None,
                             settings: ChampionIntegrityGate | None = None) -> GateResult:
    """Blocks when the champion's files differ from what was promoted (they were not loaded).

    `settings.unverified` (warn or block): what a champion without recorded checksums gets.
    """
    checked, error = champion_verified, champion_verify_error
    unverified = (settings or ChampionIntegrityGate()).unverified
    if checked is None and error is None:
        return judge("champion_integrity", Family.ARTIFACT, failures=[],
                     ok_summary="no champion files to verify (first run, or a champion held in memory)")
    if error is not None:
        raise RuntimeError(f"the champion's files could not be verified: {error}")
    threshold = {"rule": "sha256 of every file == tag " + CHECKSUM_TAG, "unverified": unverified}
    if checked.recorded is None and not checked.mismatches:
        statement = (f"champion v{checked.version} was promoted before checksums were recorded "
                     f"({CHECKSUM_TAG}): it was not loaded; absolute thresholds only")
        status = Status.FAIL if unverified == "block" else Status.WARN
        return GateResult(name="champion_integrity", family=Family.ARTIFACT, status=status,
                          summary=statement, evidence=[statement], threshold=threshold,
                          measured={"files_checked": 0},
                          hint=CHAMPION_INTEGRITY.hint if status is Status.FAIL else
                          "The next promoted model carries checksums.")
    return judge(
        "champion_integrity", Family.ARTIFACT,
        failures=[f"champion v{checked.version} ({checked.model_uri}) was modified after promotion; "
                  f"not loaded: {m}" for m in checked.mismatches],
        measured={"files_checked": len(checked.recorded or {}), "files_bad": len(checked.mismatches)},
        threshold=threshold, hint=CHAMPION_INTEGRITY.hint,
        ok_summary=f"champion v{checked.version}: {len(checked.recorded or {})} files match the "
        "checksums recorded at promotion",
    )


# --------------------------------------------------------------------------- declaration
# Judged with the data gates: the ingest step verified the files, nothing has loaded them yet.

CHAMPION_INTEGRITY = Gate(
    name="champion_integrity", family=Family.ARTIFACT, stage="data", settings=ChampionIntegrityGate,
    inputs=("champion_verified", "champion_verify_error"), check=check_champion_integrity,
    # Depth 0: nothing the run computed can be trusted to explain anything while it stands.
    cause=Cause(bucket="pipeline", depth=0,
                meaning="the champion's model files were modified after promotion",
                rules_out="a champion whose files changed since it was promoted",
                next_check="Find who wrote to the artifact store; restore the champion's files or "
                           "register a verified model."),
    hint="Someone or something rewrote the registered model's files in the artifact store. "
    "Restore them from the export folder or a backup, or register a verified model; "
    "find out who can write to the artifact store.",
    blocks_when="the champion's model files differ from the sha256 recorded when it was promoted "
    "(a rewritten artifact store): it is never loaded (`unverified: warn` states a champion "
    "promoted before checksums were recorded and does not load it)",
    faults=("tampered_champion",),
)
GATES = [CHAMPION_INTEGRITY]
