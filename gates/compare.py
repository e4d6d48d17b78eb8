"""Two runs side by side: metrics, parameters, gate verdicts and data fingerprints, from MLflow.

Runs may be named by a prefix of their id (as git does with commits): unique within the
pipeline's experiment, or the error lists the candidates.

`gates compare RUN_A RUN_B` renders these rows; a row whose values differ is marked, so the
question "what changed between the champion's run and this one?" has a one-command answer.
"""

from __future__ import annotations

from typing import Any

from gates.config import PipelineConfig

FINGERPRINT_KEYS = ("content_sha256", "rows", "partitions", "window_start", "window_end")


def _fingerprint(cfg: PipelineConfig, run) -> dict[str, Any]:
    from gates import tracking

    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    out: dict[str, Any] = {"content_sha256": tags.get("data.content_sha256"),
                           "rows": metrics.get("data.rows"), "partitions": metrics.get("data.partitions"),
                           "window_start": params.get("data.window_start"),
                           "window_end": params.get("data.window_end")}
    try:
        stored = tracking.run_snapshot(cfg, run.info.run_id).get("fingerprint") or {}
    except Exception:  # noqa: BLE001 - tags and params still describe the data
        stored = {}
    for key in FINGERPRINT_KEYS:
        if out.get(key) is None and key in stored:
            out[key] = stored[key]
    return out


class AmbiguousRun(ValueError):
    """A run-id prefix that matches no run or more than one."""


def resolve_run_id(cfg: PipelineConfig, prefix: str) -> str:
    """The full id of the run of this pipeline's experiment whose id starts with `prefix`."""
    from gates import tracking

    client = tracking.client(cfg)
    if len(prefix) == 32:
        return prefix
    experiment = client.get_experiment_by_name(cfg.mlflow.experiment)
    if experiment is None:
        raise AmbiguousRun(f"no experiment {cfg.mlflow.experiment!r} in {tracking.tracking_uri(cfg)}")
    matches, token = [], None
    while True:  # MLflow's search has no prefix operator on run ids: page through the ids
        page = client.search_runs([experiment.experiment_id], max_results=1000, page_token=token)
        matches += [r.info.run_id for r in page if r.info.run_id.startswith(prefix)]
        token = page.token
        if not token:
            break
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise AmbiguousRun(f"no run of experiment {cfg.mlflow.experiment!r} starts with {prefix!r}")
    raise AmbiguousRun(f"{prefix!r} matches {len(matches)} runs: {', '.join(m[:12] for m in matches[:8])}"
                       " …; give more characters")


def compare_rows(cfg: PipelineConfig, run_a: str, run_b: str) -> list[tuple[str, str, Any, Any]]:
    """(section, key, value in A, value in B) for every metric, parameter, gate verdict and
    fingerprint field."""
    from gates import tracking

    client = tracking.client(cfg)
    a, b = client.get_run(resolve_run_id(cfg, run_a)), client.get_run(resolve_run_id(cfg, run_b))
    rows: list[tuple[str, str, Any, Any]] = [
        ("run", "verdict", a.data.tags.get("gates.verdict"), b.data.tags.get("gates.verdict")),
        ("run", "run_date", a.data.tags.get("run_date"), b.data.tags.get("run_date")),
        ("run", "code_version", a.data.tags.get("code_version"), b.data.tags.get("code_version")),
        ("run", "champion.run_id", a.data.tags.get("champion.run_id"), b.data.tags.get("champion.run_id")),
    ]
    prefixes = ("test.", "delta.", "baseline.", "champion.")
    keys = sorted(k for k in {*a.data.metrics, *b.data.metrics} if k.startswith(prefixes))
    rows += [("metric", k, a.data.metrics.get(k), b.data.metrics.get(k)) for k in keys]
    params = sorted({*a.data.params, *b.data.params})
    rows += [("param", k, a.data.params.get(k), b.data.params.get(k)) for k in params]
    gates = sorted({k for k in {*a.data.tags, *b.data.tags} if k.startswith("gate.") and k.endswith(".status")})
    rows += [("gate", k[5:-7], a.data.tags.get(k), b.data.tags.get(k)) for k in gates]
    fa, fb = _fingerprint(cfg, a), _fingerprint(cfg, b)
    rows += [("data", k, fa.get(k), fb.get(k)) for k in FINGERPRINT_KEYS]
    return rows


def compare_table(cfg: PipelineConfig, run_a: str, run_b: str, diff_only: bool = False):
    """A rich Table of `compare_rows`, differing values highlighted; `diff_only`: only those."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"{cfg.name}: run A {run_a[:12]} vs run B {run_b[:12]}"))
    for column in ("", "key", "A", "B", "B − A"):
        table.add_column(column, overflow="fold")
    for section, key, va, vb in compare_rows(cfg, run_a, run_b):
        if diff_only and va == vb:
            continue
        numeric = isinstance(va, int | float) and isinstance(vb, int | float)
        delta = f"{vb - va:+.4g}" if numeric else ""
        style = "yellow" if va != vb else None
        table.add_row(section, escape(key), escape(_show(va)), escape(_show(vb)), delta, style=style)
    return table


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 1 else f"{value:.4g}"
    from gates.safety import rich

    return rich(value)  # tags and params are shown as text, never as rich markup
