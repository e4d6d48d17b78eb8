"""The pipeline as data: its steps in order, each followed by the gates that judge what it made.

    ingest → (data gates) → split → (leakage gates) → train → evaluate → (model gates)
           → export → (artifact gates) → promote

`run_until` is the one loop over them. The flow runs it to `promote` with Prefect tasks and an
MLflow publisher; tests, benches and `gates backtest` run it to any step in-process, with no
Prefect task and nothing logged (the defaults).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gates import evidence_gates, model_integrity, reference, registry
from gates import progress as events
from gates.artifact_gates import LoadProbes, WarmInterpreter, preload_modules
from gates.config import PipelineConfig, import_object
from gates.context import RunContext
from gates.evaluation import evaluate, evaluate_champion
from gates.export import export_model
from gates.ingest import ingest
from gates.pause import pause_point
from gates.promotion import promote
from gates.results import GateReport, GateResult, Status
from gates.split import split_data
from gates.metric_noise import noise_for_run
from gates.training import build_baselines, build_pipeline, fit


def run_hooks(paths: list[str], ctx: RunContext) -> None:
    for path in paths:
        import_object(path, field="hooks")(ctx)


# --------------------------------------------------------------------------- steps
# Each fills in its part of the run context; the I/O of a step is its own (reading partitions,
# writing the export, loading the champion), logging is the publisher's.


def ingest_step(ctx: RunContext) -> None:
    """Read the window (unless the caller already did: a backtest's cached partitions); your
    after_ingest hooks; profile it, load the champion's profile and verify the champion's files."""
    if ctx.ingested is None:
        ctx.ingested = ingest(ctx.cfg, ctx.run_date)
    ctx.frame = ctx.ingested.combined()
    ctx.schema = {c: str(t) for c, t in ctx.frame.dtypes.items()}  # as delivered, before hooks
    run_hooks(ctx.cfg.hooks.after_ingest, ctx)
    reference.prepare(ctx)
    # The champion's files against the checksums recorded when it was promoted, before anything
    # loads it (evaluation loads only the verified private copy; champion_integrity judges it).
    model_integrity.verify_champion(ctx)


def split_step(ctx: RunContext) -> None:
    # Without after_ingest hooks the frame holds the window's rows as delivered: its row hashes
    # (already computed by the duplicates gate) serve row_overlap too.
    hashes = ctx.ingested.row_hashes if ctx.ingested is not None and not ctx.cfg.hooks.after_ingest else None
    ctx.split = split_data(ctx.frame, ctx.cfg, ctx.run_date, row_hashes=hashes)


def train_step(ctx: RunContext) -> None:
    ctx.model = fit(build_pipeline(ctx.cfg), ctx.split.train, ctx.cfg)
    ctx.baselines = {name: fit(p, ctx.split.train, ctx.cfg) for name, p in build_baselines(ctx.cfg).items()}


def evaluate_step(ctx: RunContext) -> None:
    """The candidate, the baselines and the champion, on the same test rows; then the model
    debugging evidence (failure set, weak segments, reliability, score distribution, reliance)."""
    ctx.metrics, ctx.scores = evaluate(ctx.model, ctx.split.test, ctx.cfg)
    for name, baseline in ctx.baselines.items():
        ctx.baseline_metrics[name], ctx.baseline_scores[name] = evaluate(baseline, ctx.split.test, ctx.cfg)
    evaluate_champion(ctx)
    ctx.metric_noise = noise_for_run(ctx.split.test[ctx.cfg.data.target].to_numpy(), ctx.scores,
                                     {"champion": ctx.champion_scores, **ctx.baseline_scores},
                                     ctx.cfg.task, ctx.cfg.model.primary_metric)
    try:  # without it the gates that judge it error (fail closed); the run still reports the rest
        ctx.evidence = evidence_gates.collect_for_run(ctx)
    except Exception as exc:  # noqa: BLE001
        ctx.evidence = None
        ctx.notes.append(f"model evidence could not be computed: {type(exc).__name__}: {exc}")


def export_step(ctx: RunContext) -> None:
    """Your before_export hooks, the export (joblib + MLflow model), your after_export hooks."""
    run_hooks(ctx.cfg.hooks.before_export, ctx)
    ctx.exported = export_model(ctx.model, ctx.split.test, ctx.cfg, ctx.run_id,
                                ctx.cfg.gates.artifact_loads.golden_rows)
    run_hooks(ctx.cfg.hooks.after_export, ctx)
    ctx.probes = LoadProbes(ctx.exported, ctx.cfg, ctx.cfg.gates.artifact_loads, warm=ctx.warm_probe)
    if probes_enabled(ctx.cfg):
        ctx.probes.start()  # one fresh interpreter, overlapping the gates that come first


def probes_enabled(cfg: PipelineConfig) -> bool:
    return cfg.gates.artifact_loads.enabled or cfg.gates.library_versions.enabled


def warm_up_probe(ctx: RunContext) -> None:
    """Before training, on a run that will export: start the fresh interpreter the artifact
    gates load the model in, so its imports overlap the fit (gates/artifact_gates.py)."""
    if ctx.warm_probe is None and probes_enabled(ctx.cfg):
        try:
            ctx.warm_probe = WarmInterpreter(preload_modules(ctx.cfg))
        except OSError as exc:  # the artifact gates start a cold one
            ctx.notes.append(f"could not pre-start the load probe: {exc}")


def close_warm_probe(ctx: RunContext) -> None:
    if ctx.warm_probe is not None:
        ctx.warm_probe.close()
        ctx.warm_probe = None


def promote_step(ctx: RunContext) -> None:
    """Under the pipeline's promotion lock; refused if the champion moved since it was compared.
    The version records the sha256 of the model files the artifact gates verified."""
    compared_with = ctx.champion.version if ctx.champion else None
    ctx.promotion = promote(ctx.cfg, ctx.exported.model_uri, ctx.run_id, compared_with,
                            model_integrity.recorded_checksums(ctx.exported.checksums))
    ctx.notes.extend(ctx.promotion.notes)


def promotion_verdict(ctx: RunContext) -> list[GateResult]:
    """A promotion the lock refused blocks the run (declared as `promotion_lock`)."""
    outcome = ctx.promotion
    if outcome is None or not outcome.refused:
        return []
    return [GateResult(
        name="promotion_lock", family=registry.family_of("promotion_lock"), status=Status.FAIL,
        summary=outcome.refused, evidence=[outcome.lock],
        threshold={"wait_seconds": ctx.cfg.promotion.wait_seconds},
        hint="Runs of one pipeline promote one at a time; rerun to compare with the new champion.")]


# --------------------------------------------------------------------------- the stages


@dataclass(frozen=True)
class Stage:
    name: str  # the step, its Prefect task and its key in stage_seconds
    step: Callable[[RunContext], None]
    gates: str | None = None  # the gate stage (gates/registry.py) judging what the step made
    verdict: Callable[[RunContext], list[GateResult]] | None = None  # the step's own findings


STAGES: tuple[Stage, ...] = (
    Stage("ingest", ingest_step, gates="data"),
    Stage("split", split_step, gates="leakage"),
    Stage("train", train_step),
    Stage("evaluate", evaluate_step, gates="model"),
    Stage("export", export_step, gates="artifact"),
    Stage("promote", promote_step, verdict=promotion_verdict),
)
STAGE_NAMES = tuple(s.name for s in STAGES)
# The pause point after a step or gate stage (gates/pause.py) is named after it, except after
# promote: the point "promote" is inside that step, between registering and moving the alias.
PAUSE_AFTER = {"promote": "promoted"}


@dataclass
class Progress:
    """Which steps ran, how long each step and each gate stage took, and what is under way.

    `current` is the step (a crash is reported as stage_<current>); `step` is the step or gate
    stage (`gates.<stage>`) last started, or "start": where an interrupted run stopped.

    Each step and gate stage also emits `stage-started` / `stage-finished`, each verdict a `gate`
    event (gates/progress.py: the CLI's live display listens; no listener, nothing happens).
    """

    stages_run: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    current: str = STAGES[0].name
    step: str = "start"

    def timed(self, key: str, fn: Callable[[], Any]) -> Any:
        self.step = key
        started = time.perf_counter()
        events.emit("stage-started", key)
        ok = False
        try:
            result = fn()
            ok = True
            return result
        finally:
            secs = time.perf_counter() - started
            self.seconds[key] = round(self.seconds.get(key, 0.0) + secs, 4)
            events.emit("stage-finished", key, seconds=secs, ok=ok)

    def judged(self, results: list[GateResult]) -> None:
        for r in results:
            events.emit("gate", r.name, status=r.status.value, blocks=r.blocks, summary=r.summary)


class Publisher:
    """Where a run's progress is recorded. This one records nothing (tests, benches, backtests);
    flows/publisher.py logs to MLflow and Prefect."""

    def after_step(self, stage: str, ctx: RunContext) -> None:
        pass

    def gates_judged(self, stage: str, results: list[GateResult]) -> None:
        pass


def run_in_process(stage: str, ctx: RunContext) -> list[GateResult]:
    """A gate stage run one gate after the other in this process."""
    return [spec.run() for spec in registry.plan(stage, ctx.cfg, ctx.values())]


def no_gates(stage: str, ctx: RunContext) -> list[GateResult]:
    """For callers that only want the steps' outputs (tests, benches)."""
    return []


def run_until(ctx: RunContext, until: str = "promote", *, since: str | None = None,
              report: GateReport | None = None,
              progress: Progress | None = None, publisher: Publisher | None = None,
              call: Callable[[Stage, RunContext], None] | None = None,
              run_gates: Callable[[str, RunContext], list[GateResult]] = run_in_process,
              review: Callable[[str, RunContext, list[GateResult]], None] | None = None) -> bool:
    """Run the stages up to and including `until`; stop at the first whose gates block.

    True when every gate on the way passed. `since` resumes a context whose earlier steps ran.
    `call` runs a step (the flow: as a Prefect task), `run_gates` a gate stage (the flow: as
    parallel gate tasks; `no_gates` skips them). A step that raises propagates;
    `progress.current` names it. After every step and gate stage there is a pause point
    (gates/pause.py), in the caller's thread: crash tests signal the run exactly there.
    `review` is shown a gate stage's results when some block, before they stop the run (the
    flow: pause for a person when every blocking gate is reviewable, gates/review.py; an
    approval turns them into warnings).
    """
    for name in (until, since):
        if name is not None and name not in STAGE_NAMES:
            raise ValueError(f"unknown stage {name!r}; the stages are {', '.join(STAGE_NAMES)}")
    first = STAGE_NAMES.index(since) if since else 0
    report = report if report is not None else GateReport()
    progress = progress if progress is not None else Progress()
    publisher = publisher or Publisher()
    call = call or (lambda stage, c: stage.step(c))
    exports = STAGE_NAMES.index(until) >= STAGE_NAMES.index("export")
    try:
        for stage in STAGES[first:]:
            if stage.name == "train" and exports:
                warm_up_probe(ctx)
            progress.current = stage.name
            progress.timed(stage.name, lambda: call(stage, ctx))
            progress.stages_run.append(stage.name)
            pause_point(PAUSE_AFTER.get(stage.name, stage.name))
            publisher.after_step(stage.name, ctx)
            results: list[GateResult] = []
            if stage.gates:
                results = progress.timed(f"gates.{stage.gates}", lambda: run_gates(stage.gates, ctx))
                if review is not None and any(r.blocks for r in results):
                    progress.timed(f"review.{stage.gates}", lambda: review(stage.gates, ctx, results))
                publisher.gates_judged(stage.gates, results)
                pause_point(f"gates.{stage.gates}")
            if stage.verdict:
                results += stage.verdict(ctx)
            progress.judged(results)
            report.extend(results)
            if any(r.blocks for r in results):
                return False
            if stage.name == until:
                break
        return True
    finally:
        close_warm_probe(ctx)
