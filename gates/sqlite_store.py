"""A new SQLite tracking store starts as a copy of an empty, already migrated one.

MLflow creates a SQLite store by replaying every Alembic migration, 4.3 s on this machine class
before the first run can log anything. Backtests, scenarios and every first run of a pipeline
make new stores, so the empty store MLflow builds is kept once per MLflow version in the user's
cache and copied. The copy is what MLflow would have built, except the default experiment's
artifact location, which is set to what MLflow would have chosen (`./mlruns/0` of this process).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from importlib import metadata
from pathlib import Path

PREFIX = "sqlite:///"


def cache_dir() -> Path:
    root = os.environ.get("GATES_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "retrain-gates"


def template_path() -> Path:
    versions = "-".join(metadata.version(p) for p in ("mlflow", "sqlalchemy", "alembic"))
    return cache_dir() / f"mlflow-store-{versions}.db"


def _build_template(target: Path) -> None:
    """Let MLflow build an empty store in a temporary file, then move it into place atomically
    (two processes building at once each move a complete file)."""
    from mlflow.tracking import MlflowClient

    target.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(dir=target.parent, suffix=".db.tmp")
    os.close(handle)
    os.unlink(scratch)  # MLflow must create it itself
    try:
        MlflowClient(PREFIX + scratch).search_experiments()
        os.replace(scratch, target)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)


def seed(uri: str) -> None:
    """Before MLflow first opens a SQLite store that does not exist yet, copy the empty template.
    Anything else (a store that exists, a server, a cache that cannot be written) is left to
    MLflow, which then builds the store itself."""
    if not uri.startswith(PREFIX + "/"):
        return
    db = Path(uri[len(PREFIX):])
    if db.exists() or not db.parent.is_dir():
        return
    scratch: str | None = None
    try:
        template = template_path()
        if not template.is_file():
            _build_template(template)
        handle, scratch = tempfile.mkstemp(dir=db.parent, suffix=".db.tmp")
        os.close(handle)
        shutil.copyfile(template, scratch)
        conn = sqlite3.connect(scratch)
        try:
            with conn:  # commits the update
                conn.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                             (str(Path.cwd() / "mlruns" / "0"),))
        finally:
            conn.close()
        os.link(scratch, db)  # never over a store another process made meanwhile: theirs stands
    except (OSError, sqlite3.Error):
        pass  # MLflow builds the store itself, only slower
    finally:
        if scratch is not None and os.path.exists(scratch):
            os.unlink(scratch)
