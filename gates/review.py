"""A reviewed override, inside Prefect (issue 11.8).

Some blocks are judgement calls: a real shift in the population (drift, label shift), or a
candidate a hair worse than the champion. When every blocking gate of a stage is one of those
(config `review.gates`; the champion only within `review.champion_margin` beyond its tolerance),
the flow run pauses with Prefect's `pause_flow_run(wait_for_input=ReviewDecision)`: the Prefect UI
shows a form (approve, reason, reviewer), and `gates approve RUN --reason ...` / `gates reject`
resume it from the command line with `resume_flow_run(run_id, run_input=...)`. Without a decision
within `review.timeout_seconds` the run stays blocked. Contract, partition, duplicate, leakage and
artifact failures, and any gate error, are never reviewable: they are bugs, not judgement calls.

An approval turns the reviewed failures into warnings (the evidence says who approved and why),
so the run goes on and, if every later gate passes, is promoted: its profile then becomes the
drift reference of the next run (the re-baseline). The decision goes to MLflow tags
(`review.*`) and, on promotion, to the model version's tags.
"""

from __future__ import annotations

import getpass
from functools import cache
from typing import Any

from gates.results import Family, GateResult, Severity, Status

NEVER_REVIEWABLE = frozenset({"contract", "partitions", "duplicates", "metric_sanity", "perfect_metric"})
NEVER_FAMILIES = frozenset({Family.LEAKAGE, Family.ARTIFACT})


def reviewable_gates() -> list[str]:
    """The declared gates a person may be allowed to override (config `review.gates` picks from these)."""
    from gates import registry

    return [g.name for g in registry.gates()
            if g.name not in NEVER_REVIEWABLE and g.family not in NEVER_FAMILIES]


@cache
def decision_input() -> type:
    """The RunInput a paused run waits for (built on first use: parsing a config imports no Prefect)."""
    from prefect.input import RunInput

    class ReviewDecision(RunInput):
        """What a person decides about a reviewable block (the form in the Prefect UI)."""

        approve: bool
        reason: str
        reviewer: str = ""

    return ReviewDecision


def why_not_reviewable(result: GateResult, cfg: Any) -> str | None:
    """None when a person may override this blocking result; else the reason they may not."""
    if result.status is Status.ERROR:
        return f"{result.name} errored (fail closed)"
    if result.name in NEVER_REVIEWABLE or result.family in NEVER_FAMILIES:
        return f"{result.name} failures are never reviewable"
    if result.name not in cfg.review.gates:
        return f"{result.name} is not in review.gates"
    if result.name == "champion":
        change = result.measured.get("change")
        tolerance = cfg.gates.champion.max_regression
        if not isinstance(change, int | float) or abs(change) - tolerance > cfg.review.champion_margin:
            return (f"champion regression {change} is beyond tolerance {tolerance} + review margin "
                    f"{cfg.review.champion_margin}")
    return None


def reviewable(blocking: list[GateResult], cfg: Any) -> bool:
    return bool(blocking) and cfg.review.enabled and all(why_not_reviewable(r, cfg) is None for r in blocking)


def hold(ctx: Any, stage: str, blocking: list[GateResult]) -> dict[str, Any]:
    """Pause the flow run for a person's decision and apply it to the blocking results (the
    publisher records it in MLflow)."""
    from prefect import get_run_logger
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    cfg = ctx.cfg
    names = ",".join(r.name for r in blocking)
    get_run_logger().warning(
        "stage %s blocked by reviewable gates (%s): waiting up to %ss for a decision in the Prefect UI "
        "or `gates approve RUN --reason ...` / `gates reject RUN --reason ...`", stage, names,
        cfg.review.timeout_seconds)
    try:
        decision = pause_flow_run(wait_for_input=decision_input().with_initial_data(
            description=f"Blocked by {names}: approve (with a reason) or reject.", approve=False,
            reason=""), timeout=cfg.review.timeout_seconds, poll_interval=cfg.review.poll_seconds,
            key=f"review-{stage}")
        outcome = {"decision": "approved" if decision.approve else "rejected", "reason": decision.reason,
                   "reviewer": decision.reviewer or "unknown"}
    except FlowPauseTimeout:
        outcome = {"decision": "timeout", "reason": f"no decision within {cfg.review.timeout_seconds}s",
                   "reviewer": ""}
    outcome.update(stage=stage, gates=names)
    if outcome["decision"] == "approved":
        for result in blocking:
            result.severity = Severity.WARN
            result.evidence.append(f"approved by {outcome['reviewer']}: {outcome['reason']}")
            result.details["review"] = outcome
    ctx.notes.append(f"review of {names}: {outcome['decision']} by {outcome['reviewer'] or '-'} "
                     f"({outcome['reason']})")
    ctx.review = outcome
    return outcome


def resume(run: str, approve: bool, reason: str, reviewer: str | None = None) -> str:
    """Resume a paused flow run (its id, or its name) with a decision; returns the run id."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.flow_runs import resume_flow_run

    try:
        run_id = UUID(run)
    except ValueError:
        with get_client(sync_client=True) as client:
            found = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run])))
        if not found:
            raise LookupError(f"no flow run with id or name {run!r}") from None
        run_id = found[0].id
    decision = decision_input()(approve=approve, reason=reason, reviewer=reviewer or getpass.getuser())
    resume_flow_run(run_id, run_input=decision.model_dump(mode="json"))
    return str(run_id)
