"""Export the model twice (MLflow model and joblib file), atomically, with checksums.

The artifact gates then prove, in a fresh process, that these exact files load and predict
what the model predicted in memory. Promotion registers only what they verified.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from gates.config import PipelineConfig
from gates.ingest import file_sha256
from gates.evaluation import predict_scores


@dataclass
class Exported:
    dir: Path
    joblib_path: Path
    mlflow_model_dir: Path
    model_uri: str
    golden_path: Path
    checksums: dict[str, str] = field(default_factory=dict)  # relative name -> sha256 at export
    sizes: dict[str, int] = field(default_factory=dict)  # relative name -> bytes at export
    versions: dict[str, str] = field(default_factory=dict)

    def path_of(self, rel: str) -> Path:
        """The file a checksum key names: 'mlflow/<file>' in the MLflow model, else in `dir`."""
        if rel.startswith("mlflow/"):
            return self.mlflow_model_dir / rel.removeprefix("mlflow/")
        return self.dir / rel


sha256 = file_sha256


def checksums(paths: list[Path], root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256(p) for p in sorted(paths)}


def atomic_write_bytes(path: Path, write) -> Path:
    """Write through a temporary file in the same folder, then rename: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def library_versions() -> dict[str, str]:
    """The libraries a pickled model depends on, pinned into the MLflow model's requirements.txt
    (the same names the fresh-process probe reports, so the library_versions gate can compare)."""
    from gates.load_probe import runtime_versions

    return {k: v for k, v in runtime_versions().items() if v != "not installed"}


def export_model(model, test: pd.DataFrame, cfg: PipelineConfig, run_id: str, golden_rows: int) -> Exported:
    """Log the MLflow model to the active run and write a joblib copy plus a golden sample."""
    import mlflow
    from mlflow.models import infer_signature

    out = Path(cfg.export.dir).resolve() / run_id
    out.mkdir(parents=True, exist_ok=True)
    X = test[cfg.data.features.all]
    golden = X.sample(n=min(golden_rows, len(X)), random_state=0).reset_index(drop=True)
    scores = predict_scores(model, golden, cfg.task)
    golden_path = out / "golden.parquet"
    atomic_write_bytes(golden_path, lambda tmp: golden.assign(__expected__=scores).to_parquet(tmp, index=False))

    joblib_path = atomic_write_bytes(out / "model.joblib", lambda tmp: joblib.dump(model, tmp))
    signature = infer_signature(golden, scores)
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        input_example=golden.head(5),
        serialization_format="cloudpickle",
        pip_requirements=[f"{k}=={v}" for k, v in library_versions().items()],
    )
    # A local artifact store returns the stored files themselves, so the gates verify what is registered.
    local_model_dir = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    files = [p for p in local_model_dir.rglob("*") if p.is_file()]
    sums = {f"mlflow/{k}": v for k, v in checksums(files, local_model_dir).items()}
    sums["model.joblib"] = sha256(joblib_path)
    sizes = {f"mlflow/{p.relative_to(local_model_dir)}": p.stat().st_size for p in files}
    sizes["model.joblib"] = joblib_path.stat().st_size
    versions = library_versions()
    manifest = json.dumps({"model_uri": info.model_uri, "checksums": sums, "sizes": sizes,
                           "versions": versions}, indent=2)
    atomic_write_bytes(out / "manifest.json", lambda tmp: Path(tmp).write_text(manifest))
    return Exported(dir=out, joblib_path=joblib_path, mlflow_model_dir=local_model_dir,
                    model_uri=info.model_uri, golden_path=golden_path, checksums=sums, sizes=sizes,
                    versions=versions)
