"""The drift reference, read at the pipeline's edge: this run's profile, and the champion's,
loaded from its MLflow run. The ingest step calls `prepare`; the drift gates only read the
profiles it leaves in the run context (and the publisher logs this run's)."""

from __future__ import annotations

from typing import Any

REFERENCE_ARTIFACT = "profile/reference.json"


def prepare(ctx) -> None:
    """Profile this run's window and load the champion's profile (the publisher logs this one's).

    Never raises: a problem is kept in ctx.reference_error and the drift gates report it.
    """
    from gates import profile as profiles

    cfg = ctx.cfg
    try:
        if ctx.reference is None:  # a backtest hands over its champion's profile from memory
            ctx.reference = _load_reference(ctx)
    except Exception as exc:  # noqa: BLE001 - reported by the drift gate (fail closed)
        ctx.reference, ctx.reference_error = None, f"{type(exc).__name__}: {exc}"
    try:
        window = (ctx.ingested.expected[0].isoformat(), ctx.ingested.expected[-1].isoformat()) \
            if ctx.ingested is not None and ctx.ingested.expected else None
        ctx.profile = profiles.profile_run_frame(ctx.frame, cfg, cfg.gates.drift, ctx.reference, window)
    except Exception as exc:  # noqa: BLE001
        ctx.profile = None
        ctx.reference_error = (ctx.reference_error or "") + f" profile failed: {type(exc).__name__}: {exc}"


def _load_reference(ctx) -> dict[str, Any] | None:
    from gates import tracking

    champ = ctx.champion  # resolved once at the start of the run
    if champ is None:
        ctx.notes.append("drift: first run (no champion yet), nothing to compare with; this run's "
                         "profile becomes the reference once it is promoted")
        return None
    if not champ.run_id:
        raise LookupError(f"champion version {champ.version} has no MLflow run to read its profile from")
    import mlflow

    folder, _, _ = REFERENCE_ARTIFACT.rpartition("/")
    stored = [a.path for a in tracking.client(ctx.cfg).list_artifacts(champ.run_id, folder)]
    if REFERENCE_ARTIFACT not in stored:
        # A champion promoted before profiles were logged: stated, like a first run.
        ctx.notes.append(f"drift: champion version {champ.version} (run {champ.run_id}) has no "
                         f"{REFERENCE_ARTIFACT}, nothing to compare with; this run's profile becomes "
                         "the reference once it is promoted")
        return None
    return mlflow.artifacts.load_dict(f"runs:/{champ.run_id}/{REFERENCE_ARTIFACT}")
