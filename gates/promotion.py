"""Promotion: one run at a time moves the champion alias, and a crash never leaves it half-moved.

Two runs of one pipeline may pass their gates at the same time. Only one may promote at once:
the second waits (up to `promotion.wait_seconds`) for a lock, and is refused when the wait runs
out or when the champion it was compared against has moved meanwhile (it would replace a
model it never beat). The lock is a file lock next to a local MLflow store (`filelock`, an
flock: the kernel drops it when the holder dies, even by SIGKILL), or a Prefect global
concurrency limit of one slot for a remote store, where runs share no disk (its slot is leased:
a killed holder's slot is freed when the lease runs out, LEASE_SECONDS).

A crash between registering and moving the alias leaves a version tagged
`gates.promotion=pending` and no alias change; the next promotion deletes such versions first.
The version carries the sha256 of every model file the artifact gates verified (tag
`gates.checksums`, gates/model_integrity.py), and the run's verdict tag is written before the
alias moves, so the champion is never a version whose run has no verdict.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from filelock import FileLock, Timeout
from mlflow.exceptions import MlflowException

from gates import tracking
from gates.config import PipelineConfig
from gates.interrupts import held
from gates.model_integrity import CHECKSUM_TAG, tag_value
from gates.pause import pause_point

PENDING_TAG = "gates.promotion"
LEASE_SECONDS = 60.0
PREFECT_WAIT_SECONDS = 0.5  # a Prefect slot acquired faster than this was free (API round trips)


class PromotionRefused(RuntimeError):
    """The run passed its gates but must not move the alias; the message says why."""


@dataclass
class Promotion:
    version: str | None
    lock: str
    waited_seconds: float
    notes: list[str] = field(default_factory=list)
    refused: str | None = None


def lock_file(cfg: PipelineConfig) -> Path | None:
    """The lock file beside a local MLflow store, or None for a remote store."""
    uri = tracking.tracking_uri(cfg)
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).resolve().parent / f".{cfg.mlflow.registered_model}.promote.lock"
    if uri.startswith("file:") or "://" not in uri:
        root = Path(uri.removeprefix("file://").removeprefix("file:")).resolve()
        return root / f".{cfg.mlflow.registered_model}.promote.lock"
    return None


def lock_kind(cfg: PipelineConfig) -> str:
    if cfg.promotion.lock != "auto":
        return cfg.promotion.lock
    return "file" if lock_file(cfg) is not None else "prefect"


def _log(message: str) -> None:
    """To the Prefect run's log when inside a run (so the UI shows it), else Python logging."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        get_run_logger().info(message)
    except MissingContextError:
        logging.getLogger(__name__).info(message)


def waiting_file(lock: Path) -> Path:
    """Present while this process waits for `lock` (its content: who waits)."""
    return lock.with_name(f"{lock.name}.waiting.{os.getpid()}")


def _holder_of(path: Path) -> str:
    """Who holds the lock, as its holder wrote it into the lock file."""
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextlib.contextmanager
def _file_lock(path: Path, wait_seconds: float, holder: dict) -> Iterator[float]:
    """`filelock.FileLock` (flock on `path`): the kernel drops it when the holder dies, even by
    SIGKILL. The holder writes who it is into the file once it holds it (`on_acquired`; filelock
    never truncates the file of a lock it did not get). Yields the seconds spent waiting for
    another run: 0 when the lock was free."""

    def write_holder(fd: int) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)

    path.parent.mkdir(parents=True, exist_ok=True)
    # on_acquired (and a mode without group write) keep it an flock: filelock never falls back to
    # its soft (marker file) lock, which a SIGKILLed holder would leave behind
    lock = FileLock(path, mode=0o644, on_acquired=write_holder)
    waiter = waiting_file(path)  # who waits is visible on disk (operators, tests), not only in logs
    started, waited = time.monotonic(), 0.0
    try:
        try:
            lock.acquire(blocking=False)
        except Timeout:
            waiter.write_text(json.dumps(holder))
            _log(f"waiting up to {wait_seconds:g} s for the promotion lock {path}, held by "
                 f"{_holder_of(path)}")
            try:
                lock.acquire(timeout=max(0.0, wait_seconds - (time.monotonic() - started)),
                             poll_interval=0.2)
            except Timeout:
                raise PromotionRefused(
                    f"another run is promoting (lock {path}, held by {_holder_of(path)}); waited "
                    f"{wait_seconds:g} s (promotion.wait_seconds)") from None
            waited = time.monotonic() - started
            waiter.unlink(missing_ok=True)  # no longer waiting
        try:
            yield waited
        finally:
            lock.release()
    finally:
        waiter.unlink(missing_ok=True)


@contextlib.contextmanager
def _prefect_lock(name: str, wait_seconds: float) -> Iterator[float]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    started = time.monotonic()
    try:
        # the slot is leased and renewed while held: a killed holder frees it within LEASE_SECONDS
        with concurrency(name, occupy=1, timeout_seconds=wait_seconds, strict=True,
                         lease_duration=LEASE_SECONDS):
            waited = time.monotonic() - started
            # a free slot still costs API round trips: only a longer wait was for another run
            yield waited if waited >= PREFECT_WAIT_SECONDS else 0.0
    except TimeoutError:
        raise PromotionRefused(
            f"another run is promoting (Prefect global concurrency limit {name!r} is taken); waited "
            f"{wait_seconds:g} s (promotion.wait_seconds)") from None


@contextlib.contextmanager
def promotion_lock(cfg: PipelineConfig, run_id: str) -> Iterator[tuple[str, float]]:
    """Hold the pipeline's promotion lock; yields (lock description, seconds waited)."""
    kind = lock_kind(cfg)
    wait = cfg.promotion.wait_seconds
    if kind == "file":
        path = lock_file(cfg)
        if path is None:
            raise PromotionRefused(f"promotion.lock: file needs a local MLflow store, got "
                                   f"{tracking.tracking_uri(cfg)}; use prefect or auto")
        holder = {"pid": os.getpid(), "mlflow_run_id": run_id,
                  "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        with _file_lock(path, wait, holder) as waited:
            yield f"file lock {path}", waited
    else:
        name = f"promote-{cfg.mlflow.registered_model}"
        with _prefect_lock(name, wait) as waited:
            yield f"Prefect global concurrency limit {name!r}", waited


def discard_unfinished(cfg: PipelineConfig) -> list[str]:
    """Delete versions a crashed promotion registered but never made champion. Call under the lock."""
    client = tracking.client(cfg)
    name, alias = cfg.mlflow.registered_model, cfg.mlflow.champion_alias
    discarded = []
    for mv in client.search_model_versions(f"name = '{name}' and tag.`{PENDING_TAG}` = 'pending'"):
        full = client.get_model_version(name, mv.version)
        if alias in (full.aliases or []):  # crashed after moving the alias: the promotion happened
            client.set_model_version_tag(name, mv.version, PENDING_TAG, "done")
            continue
        client.delete_model_version(name, mv.version)
        discarded.append(str(mv.version))
    return discarded


def promote(cfg: PipelineConfig, model_uri: str, run_id: str, compared_with: str | None,
            checksums: dict[str, str] | None = None) -> Promotion:
    """Register the verified model and move the alias, under the lock, if the champion is unchanged.

    `compared_with` is the champion version the gates compared the candidate against (None on a
    first run); a different champion now means another run promoted meanwhile. `checksums`
    (model file -> sha256, as verified by the artifact gates) are recorded with the version.
    """
    try:
        with promotion_lock(cfg, run_id) as (lock, waited):
            result = Promotion(version=None, lock=lock, waited_seconds=round(waited, 3))
            if waited > 0:
                result.notes.append(f"promotion waited {waited:.1f} s for another run of "
                                    f"{cfg.name} ({lock})")
            discarded = discard_unfinished(cfg)
            if discarded:
                result.notes.append(f"discarded version(s) {', '.join(discarded)} left registered but "
                                    "never promoted by a crashed run")
            now = tracking.champion(cfg)
            now_version = now.version if now else None
            if now_version != compared_with:
                raise PromotionRefused(
                    f"the champion moved from {_v(compared_with)} to {_v(now_version)} while this run "
                    "was being validated (another run promoted); this candidate was never compared "
                    "with the new champion")
            result.version = _register_and_alias(cfg, model_uri, run_id, checksums)
            return result
    except PromotionRefused as exc:
        return Promotion(version=None, lock=lock_kind(cfg), waited_seconds=0.0, refused=str(exc))


def _v(version: str | None) -> str:
    return f"version {version}" if version else "none"


def _register_and_alias(cfg: PipelineConfig, model_uri: str, run_id: str,
                        checksums: dict[str, str] | None = None) -> str:
    client = tracking.client(cfg)
    name = cfg.mlflow.registered_model
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    tags = {"run_id": run_id, PENDING_TAG: "pending"}
    if checksums:
        tags[CHECKSUM_TAG] = tag_value(checksums)
    mv = mlflow.register_model(model_uri, name, tags=tags)
    pause_point("promote")
    # Every gate passed (promotion is only called then): the verdict is written before the alias moves.
    client.set_tag(run_id, "gates.verdict", "passed")
    with held():  # a signal now is delivered after the alias and its tag are both set
        client.set_registered_model_alias(name, cfg.mlflow.champion_alias, mv.version)
        client.set_model_version_tag(name, mv.version, PENDING_TAG, "done")
    return str(mv.version)
