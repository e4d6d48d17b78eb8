"""Ours against Deepchecks and Evidently on the same parquet files, in one bench run (#13, #14).

Data: the 20-column demo data (bench.workload.write_wide), 60 daily partitions, at ~200k and
~1.1M rows; a clean case and a shifted one (feature `x0` moved by 0.3 of its SD in the 7 newest
partitions, the test split). Ours: the model-free gates (the data and leakage stages, as the
flow plans them, each stage's gates in parallel threads) in this process. Peers: bench/
peer_runner.py in their own venv (.bench-peers/, from bench/peers.lock: they need numpy < 2) on
the split's train and test rows written to parquet: Deepchecks' data_integrity and
train_test_validation suites, Evidently's DataDriftPreset with its dataset drift test.
Seconds exclude imports, reading and Deepchecks' Dataset construction (reported apart).

Model checks (#14): one demo model trained on the ~1.1M clean rows and a champion (another seed);
our evidence against Deepchecks' WeakSegmentsPerformance, CalibrationScore and PredictionDrift on
the same test rows. Our sklearn pipeline is not unpickled under the peers' older numpy: the
peers get both models' probabilities in the parquet.
Run: `python -m bench.run peers`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.workload import EXTRA, REPO, RUN_DATE, demo_raw_config, write_config, write_wide

DAYS = 60
SIZES = (("200k", 3_000), ("1.1M", 16_700))  # rows per day; the demo generator adds ~10 %
SHIFTED, SHIFT_SD = "x0", 0.3
VENV = REPO / ".bench-peers"
LOCK = REPO / "bench" / "peers.lock"
RUNNER = REPO / "bench" / "peer_runner.py"
OURS = "ours (data + leakage gates)"  # our row's name in a case (bench/goals.py finds it by it)
TIMEOUT = int(os.environ.get("PEERS_TIMEOUT", "1500"))  # seconds per peer job
PEER_ENV = {"DISABLE_DEEPCHECKS_ANONYMOUS_TELEMETRY": "True", "DO_NOT_TRACK": "1",
            "EVIDENTLY_DISABLE_TELEMETRY": "1", "PYTHONWARNINGS": "ignore"}


# --------------------------------------------------------------------------- the peers' venv


def peers_python(venv: Path = VENV, lock: Path = LOCK) -> tuple[Path | None, str]:
    """The peers' interpreter, installed once from the lock (a marker holds the lock's hash).

    Returns (None, what failed) when the venv cannot be made, so the section skips the peers.
    The base interpreter is python3.11 (PEERS_PYTHON overrides it).
    """
    python, marker = venv / "bin" / "python", venv / ".installed"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    if marker.exists() and marker.read_text().strip() == digest and python.exists():
        return python, "reused"
    base = os.environ.get("PEERS_PYTHON", "python3.11")
    steps = [[base, "-m", "venv", "--clear", str(venv)],
             [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-r", str(lock)]]
    for cmd in steps:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as exc:
            return None, f"`{' '.join(cmd[:4])} ...` could not start: {exc}"
        if done.returncode:
            tail = " | ".join(line for line in (done.stderr or done.stdout).splitlines()
                              if not line.startswith("WARNING: Location"))[-600:]
            return None, f"`{' '.join(cmd[:4])} ...` exited {done.returncode}: {tail}"
    marker.write_text(digest + "\n")
    return python, "installed from bench/peers.lock"


def run_peers(python: Path | None, job: dict, work: Path, name: str) -> dict:
    """bench/peer_runner.py on one job; a failure becomes the stated reason of every peer row."""
    if python is None:
        return {"error": job.get("skip", "no peers venv")}
    job_path, out_path = work / f"job-{name}.json", work / f"peers-{name}.json"
    job_path.write_text(json.dumps(job))
    try:
        done = subprocess.run([str(python), str(RUNNER), str(job_path), str(out_path)], capture_output=True,
                              text=True, env={**os.environ, **PEER_ENV}, cwd=work, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {TIMEOUT} s (so slower than that; PEERS_TIMEOUT sets it)"}
    if done.returncode or not out_path.exists():
        return {"error": f"peer_runner exited {done.returncode}: {done.stderr[-600:]}"}
    return json.loads(out_path.read_text())


# --------------------------------------------------------------------------- data and ours


def _load_average() -> str:
    """`uptime`'s load average (1, 5, 15 min): other workers share the machine."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _prepare(work: Path, rows_per_day: int):
    """Clean and shifted partitions, the config (suite inferred on the clean data) and the
    champion's reference profile (the clean window's, as bench/data_gates.py)."""
    import numpy as np

    from gates.config import load_config
    from gates.ingest import ingest
    from gates.profile import profile_run_frame
    from gates.suite_init import infer_suite, write_suite

    clean, shifted = work / "clean", work / "shifted"
    write_wide(clean, rows_per_day, DAYS)
    raw = demo_raw_config(work, clean, window_days=DAYS, serving_features=None)
    raw["data"]["features"]["numeric"] += EXTRA
    raw["expectations"] = str(work / "suite.json")
    (work / "suite.json").write_text("{}")
    cfg = load_config(write_config(raw, work / "clean.yaml"))
    write_suite(infer_suite(cfg, RUN_DATE - dt.timedelta(days=DAYS), RUN_DATE - dt.timedelta(days=1)),
                work / "suite.json")
    frame = ingest(cfg, RUN_DATE).combined()
    reference = profile_run_frame(frame, cfg, cfg.gates.drift)
    move = SHIFT_SD * float(np.std(frame[SHIFTED]))
    shutil.copytree(clean, shifted)
    import pandas as pd

    for k in range(1, cfg.split.test_days + 1):  # the newest partitions: the test split
        day = RUN_DATE - dt.timedelta(days=k)
        for path in (shifted / f"date={day.isoformat()}").glob("*.parquet"):
            part = pd.read_parquet(path)
            part[SHIFTED] = (part[SHIFTED] + move).round(3)
            part.to_parquet(path, index=False)
    shifted_cfg = load_config(write_config({**raw, "data": {**raw["data"], "path": str(shifted)}},
                                           work / "shifted.yaml"))
    return {"clean": cfg, "shifted": shifted_cfg}, reference, move


def _stage(specs) -> tuple[dict, float]:
    """One gate stage as the flow runs it: its gates in parallel threads."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(len(specs), 1)) as pool:
        futures = {spec.name: pool.submit(spec.run) for spec in specs}
        results = {name: f.result() for name, f in futures.items()}
    return results, time.perf_counter() - started


def ours(cfg, reference: dict, work: Path, case: str) -> dict:
    """Profile + data gates + split + leakage gates; the split's rows written for the peers."""
    from gates import registry
    from gates.context import RunContext
    from gates.ingest import ingest
    from gates.profile import profile_run_frame
    from gates.split import split_data

    ctx = RunContext(cfg=cfg, run_date=RUN_DATE)
    ctx.ingested = ingest(cfg, RUN_DATE)
    ctx.frame = ctx.ingested.combined()
    ctx.reference = reference
    started = time.perf_counter()
    ctx.profile = profile_run_frame(ctx.frame, cfg, cfg.gates.drift, ctx.reference)
    profile_s = time.perf_counter() - started
    data, data_s = _stage(registry.plan("data", cfg, ctx.values()))
    started = time.perf_counter()
    ctx.split = split_data(ctx.frame, cfg, RUN_DATE)
    split_s = time.perf_counter() - started
    leakage, leakage_s = _stage(registry.plan("leakage", cfg, ctx.values()))
    results = {**data, **leakage}
    columns = cfg.data.features.all + [cfg.data.target]
    paths = {part: work / f"{case}-{part}.parquet" for part in ("train", "test")}
    ctx.split.train[columns].to_parquet(paths["train"], index=False)
    ctx.split.test[columns].to_parquet(paths["test"], index=False)
    not_pass = {n: r.status.value + (f" ({r.summary[:160]})" if r.status.value == "error" else "")
                for n, r in results.items() if r.status.value != "pass"}
    verdict = ("block" if any(v.startswith(("fail", "error")) for v in not_pass.values())
               else "warn" if not_pass else "pass")
    return {"seconds": profile_s + data_s + leakage_s, "profile": profile_s, "data": data_s, "split": split_s,
            "leakage": leakage_s, "verdict": verdict, "flagged": not_pass, "rows": len(ctx.frame),
            "train_rows": len(ctx.split.train), "test_rows": len(ctx.split.test), "paths": paths,
            "columns": columns, "drift": _our_drift(results)}


def _our_drift(results: dict) -> str:
    """What our drift gates measured on the shifted feature (drift: against the champion's
    reference; split_drift: train against test)."""
    found = []
    for name in ("drift", "split_drift"):
        r = results.get(name)
        if r is None:
            continue
        fd = ((r.details or {}).get("features") or {}).get(SHIFTED) or {}
        stats = fd.get("stats") or {}
        found.append(f"{name} {r.status.value} ({SHIFTED}: {fd.get('level', '?')}, "
                     + ", ".join(f"{k} {stats[k]:.3f}" for k in ("ks", "psi") if stats.get(k) is not None) + ")")
    return "; ".join(found)


# --------------------------------------------------------------------------- rows


def _peer_rows(size: str, case: str, mine: dict, peers: dict, load: str) -> list[dict]:
    """One row per peer tool: its seconds, ours ÷ its, both verdicts (flagged or not)."""
    base = {"section": "peers", "rows": mine["rows"], "test_rows": mine["test_rows"], "load_avg": load}
    ours_flag = mine["verdict"] != "pass"
    rows = [{**base, "case": f"{size} {case}: {OURS}", "seconds": round(mine["seconds"], 3),
             "verdict": mine["verdict"], "flagged": ",".join(f"{k}={v}" for k, v in mine["flagged"].items()) or "-",
             "note": f"profile {mine['profile']:.2f} s + data {mine['data']:.2f} s + leakage {mine['leakage']:.2f} s"
                     f" (split {mine['split']:.2f} s not counted); {mine['drift']}"}]
    tools = []
    dc, ev = peers.get("deepchecks", {}), peers.get("evidently", {})
    for suite in ("data_integrity", "train_test_validation"):
        got = dc.get(suite)
        tools.append((f"deepchecks {suite}", got, None if got is None else not got["passed"],
                      ",".join(got["not_passed"]) if got else None, dc.get("error") or peers.get("error")))
    tools.append(("evidently DataDriftPreset", ev if "seconds" in ev else None,
                  None if "seconds" not in ev else not ev["dataset_drift_passed"],
                  (f"{ev.get('dataset_drift_test')}; drifted columns: {','.join(ev.get('drifted_columns', [])) or '-'}"
                   if "seconds" in ev else None), ev.get("error") or peers.get("error")))
    for name, got, flag, what, error in tools:
        if got is None:
            rows.append({**base, "case": f"{size} {case}: {name}", "seconds": "-", "verdict": "skipped",
                         "flagged": "-", "note": f"skipped: {error}"})
            continue
        note = f"import {dc.get('import_seconds', ev.get('import_seconds'))} s not counted"
        if name.endswith("train_test_validation") and got.get("feature_drift"):
            fd = got["feature_drift"]
            note += f"; Feature Drift score of {SHIFTED}: {fd.get('shifted_feature_score')}"
        rows.append({**base, "case": f"{size} {case}: {name}", "seconds": got["seconds"],
                     "verdict": "flagged" if flag else "pass", "flagged": what or "-",
                     "ours_over_peer": round(mine["seconds"] / got["seconds"], 4) if got["seconds"] else "-",
                     "peer_over_ours": round(got["seconds"] / mine["seconds"], 1),
                     "same_verdict": "yes" if flag == ours_flag else "no", "note": note})
    return rows


def run(work: Path, sizes: tuple[tuple[str, int], ...] = SIZES) -> list[dict]:
    work.mkdir(parents=True, exist_ok=True)
    python, how = peers_python()
    skip = None if python else f"peers venv not made: {how}"
    rows: list[dict] = []
    model_inputs = None
    for size, per_day in sizes:
        size_dir = work / size
        size_dir.mkdir()
        cfgs, reference, move = _prepare(size_dir, per_day)
        for case, cfg in cfgs.items():
            load = _load_average()
            mine = ours(cfg, reference, size_dir, case)
            job = {"kind": "data", "train": str(mine["paths"]["train"]), "test": str(mine["paths"]["test"]),
                   "columns": mine["columns"], "label": cfg.data.target,
                   "categorical": list(cfg.data.features.categorical), "shifted_feature": SHIFTED,
                   "skip": skip}
            peers = run_peers(python, job, size_dir, case)
            label = case if case == "clean" else f"{SHIFTED} +{SHIFT_SD} SD ({move:.2f}) in the 7 newest partitions"
            rows += _peer_rows(size, label, mine, peers, load)
        if size == sizes[-1][0]:  # the model checks on the largest clean case
            model_inputs = (cfgs["clean"], size_dir)
    rows += model_rows(*model_inputs, python, skip)
    for row in rows:
        row.setdefault("peers_venv", how if python else "not made")
    return rows


# --------------------------------------------------------------------------- model checks


def model_rows(cfg, work: Path, python: Path | None, skip: str | None) -> list[dict]:
    """Our #14 evidence against Deepchecks' model checks on the same test rows and scores.

    Training and our evidence on one thread (as #13 measures training): on a shared, loaded
    2-core machine OpenMP's threads in HistGradientBoosting otherwise spin against each other.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _model_rows(cfg, work, python, skip)


def _model_rows(cfg, work: Path, python: Path | None, skip: str | None) -> list[dict]:

    from gates import evidence_gates
    from gates.config import parse_config
    from gates.evaluation import evaluate
    from gates.ingest import ingest
    from gates.split import split_data
    from gates.training import build_pipeline, fit

    frame = ingest(cfg, RUN_DATE).combined()
    split = split_data(frame, cfg, RUN_DATE)
    started = time.perf_counter()
    model = fit(build_pipeline(cfg), split.train, cfg)
    train_s = time.perf_counter() - started
    _, scores = evaluate(model, split.test, cfg)
    raw = cfg.model_dump(mode="json")
    raw["model"]["params"] = {**raw["model"]["params"], "random_state": 1}
    champ_cfg = parse_config(raw)
    champion = fit(build_pipeline(champ_cfg), split.train, champ_cfg)
    champion_metrics, champion_scores = evaluate(champion, split.test, champ_cfg)
    load = _load_average()
    ev = evidence_gates.collect(split.test, scores, cfg, model=model, champion_model=champion,
                                champion_scores=champion_scores, champion_metrics=champion_metrics)
    features = cfg.data.features.all
    scored = split.test[features + [cfg.data.target]].copy()
    scored["candidate_score"], scored["champion_score"] = scores, champion_scores
    scored_path = work / "scored.parquet"
    scored.to_parquet(scored_path, index=False)
    peers = run_peers(python, {"kind": "model", "scored": str(scored_path), "label": cfg.data.target,
                               "categorical": list(cfg.data.features.categorical), "features": features,
                               "candidate_score": "candidate_score", "champion_score": "champion_score",
                               "skip": skip}, work, "model")
    dc = peers.get("deepchecks", {})
    error = dc.get("error") or peers.get("error")
    seg = ev.segments.segments
    by_excess = seg.iloc[0] if len(seg) else None
    by_lift = seg.sort_values("lift", ascending=False).iloc[0] if len(seg) else None
    cal = ev.calibration["candidate"]
    dist = ev.distribution
    base = {"section": "peers", "rows": len(split.test), "load_avg": load,
            "note_model": f"demo HistGradientBoosting trained on {len(split.train):,} rows in {train_s:.1f} s "
                          "(one thread); "
                          "peers get both models' probabilities in parquet (our sklearn pipeline, pickled "
                          "under numpy 2, is not loaded under the peers' numpy 1.26)"}
    pairs = [
        ("weak segments", ev.seconds["weak_segments"],
         f"top by excess vs champion: {by_excess.segment} (excess {by_excess.excess:+.3f}, {int(by_excess.support)} rows); "
         f"top by lift (candidate alone): {by_lift.segment} (loss x{by_lift.lift:.2f}); "
         f"{ev.segments.searched} segments on {ev.segments.sample_rows:,} rows" if by_excess is not None else "none",
         "weak_segments", lambda d: (f"top: {_segment_text(d.get('top', {}))}; avg accuracy {d.get('avg_score')}; "
                                     f"{d.get('segments_found')} segments (n_samples 10,000)")),
        ("calibration", ev.seconds["calibration"],
         f"ECE {cal['ece']:.4f}, Brier {cal['brier']:.4f}, slope {cal['slope']:.2f} "
         f"(champion ECE {ev.calibration['champion']['ece']:.4f})",
         "calibration", lambda d: f"Brier {d.get('brier')} (no ECE)"),
        ("prediction drift", ev.seconds["distribution"],
         f"PSI of scores vs champion on the same rows {dist.get('psi_vs_champion', float('nan')):.4f}; "
         f"predicted classes {dist.get('predicted_classes')}",
         "prediction_drift", lambda d: (f"{d.get('method')} {d.get('drift_score')} (champion's scores as "
                                        f"train, candidate's as test), condition passed={d.get('passed')}")),
    ]
    rows = []
    for name, our_s, our_text, key, peer_text in pairs:
        got = dc.get(key)
        row = {**base, "case": f"model: {name}", "seconds": round(our_s, 4), "ours": our_text}
        if got is None:
            row.update(peer_seconds="-", deepchecks=f"skipped: {error}")
        else:
            row.update(peer_seconds=got["seconds"], deepchecks=peer_text(got),
                       ours_over_peer=round(our_s / got["seconds"], 4) if got["seconds"] else "-")
        rows.append(row)
    rows.append({**base, "case": "model: all evidence (ours incl. failure set, reliance shift)",
                 "seconds": round(sum(ev.seconds.values()), 3), "ours": ", ".join(f"{k} {v:.2f} s" for k, v in ev.seconds.items()),
                 "peer_seconds": round(sum(dc[k]["seconds"] for k in ("weak_segments", "calibration", "prediction_drift")), 3)
                 if not error else "-", "deepchecks": f"import {dc.get('import_seconds')} s not counted" if not error else f"skipped: {error}"})
    return rows


def _segment_text(top: dict) -> str:
    parts = [f"{top.get(f'Feature{i}')} in {top.get(f'Feature{i} Range')}" for i in (1, 2) if top.get(f"Feature{i}")]
    score = next((f"{k} {v}" for k, v in top.items() if k.endswith("Score")), "")
    return " & ".join(parts) + (f" ({score}, {top.get('% of Data')} % of rows)" if parts else "none")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        for r in run(Path(tmp)):
            print(r)
    sys.exit(0)
