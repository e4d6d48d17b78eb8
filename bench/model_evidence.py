"""The added cost of the model debugging evidence (#14) at 1M rows, against the run it is part of.

In one process, on the demo pipeline with ~1M rows (60 daily partitions): ingest, split, train
and evaluate the candidate (the run's own work, timed), then a champion (another seed; not
timed), then the evidence (`evidence_gates.collect`), its three gates, the report section and
the MLflow logging with plots (timed). The share is evidence / (ingest + split + train +
evaluate + evidence): a lower bound on the run (the flow adds the gates, export and Prefect),
so the true share is smaller. Run: `python -m bench.run model_evidence`.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from bench.workload import RUN_DATE, demo_raw_config

ROWS_PER_DAY = 16_700  # x 60 days ~ 1M rows, as bench/flow.py


def run(work: Path, rows_per_day: int = ROWS_PER_DAY) -> list[dict]:
    import mlflow

    from gates import evidence_gates, evidence_report
    from gates.config import parse_config
    from gates.demo_data import write_demo_data
    from gates.evaluation import evaluate
    from gates.ingest import ingest
    from gates.split import split_data
    from gates.training import build_pipeline, fit

    data = work / "data"
    write_demo_data(data, RUN_DATE - dt.timedelta(days=1), days=60, rows_per_day=rows_per_day)
    raw = demo_raw_config(work, data)
    cfg = parse_config(raw)
    stages: dict[str, float] = {}

    def timed(name, fn):
        started = time.perf_counter()
        out = fn()
        stages[name] = round(time.perf_counter() - started, 3)
        return out

    frame = timed("ingest", lambda: ingest(cfg, RUN_DATE).combined())
    split = timed("split", lambda: split_data(frame, cfg, RUN_DATE))
    model = timed("train", lambda: fit(build_pipeline(cfg), split.train, cfg))
    metrics, scores = timed("evaluate", lambda: evaluate(model, split.test, cfg))
    champ_raw = {**raw, "model": {**raw["model"], "params": {**raw["model"]["params"], "random_state": 1}}}
    champ_cfg = parse_config(champ_raw)
    champion = fit(build_pipeline(champ_cfg), split.train, champ_cfg)
    champion_metrics, champion_scores = evaluate(champion, split.test, champ_cfg)

    ev = timed("evidence.collect", lambda: evidence_gates.collect(
        split.test, scores, cfg, model=model, champion_model=champion, champion_scores=champion_scores,
        champion_metrics=champion_metrics))
    g = cfg.gates
    verdicts = timed("evidence.gates", lambda: {
        "weak_segments": evidence_gates.check_weak_segments(ev, g.weak_segments).status.value,
        "calibration": evidence_gates.check_calibration(ev, g.calibration).status.value,
        "reliance_shift": evidence_gates.check_reliance_shift(ev, g.reliance_shift).status.value})
    timed("evidence.report", lambda: evidence_report.markdown(ev))
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment(  # artifacts in the bench's temp dir
        "bench-evidence", artifact_location=(work / "mlartifacts").as_uri()))
    with mlflow.start_run():
        timed("evidence.log_and_plots", lambda: evidence_report.log(ev, scores, cfg.task, metrics))
    evidence = sum(v for k, v in stages.items() if k.startswith("evidence."))
    run_part = sum(v for k, v in stages.items() if not k.startswith("evidence."))
    row = {"section": "model_evidence", "case": f"{len(frame):,} rows ({len(split.test):,} test rows)",
           "rows": len(frame), "seconds": round(evidence, 3), "run_seconds": round(run_part, 3),
           "share_of_run": round(evidence / (evidence + run_part), 3),
           "within_issue_14_bar": "yes (<= 0.10)" if evidence / (evidence + run_part) <= 0.10 else "no (> 0.10)",
           "segment_sample_rows": ev.segments.sample_rows, "reliance_sample_rows": ev.reliance_rows,
           "verdicts": ",".join(f"{k}={v}" for k, v in verdicts.items())}
    row.update({f"s.{k}": v for k, v in stages.items()})
    row.update({f"e.{k}": v for k, v in ev.seconds.items()})
    return [row]


if __name__ == "__main__":
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-evidence-") as tmp:
        for r in run(Path(tmp), int(sys.argv[1]) if len(sys.argv) > 1 else ROWS_PER_DAY):
            print(r)
