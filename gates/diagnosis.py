"""The diagnosis: from gate results to ranked causes, the way a senior engineer reads them.

Gates report symptoms at different depths of the pipeline. A cause upstream (a missing partition,
a leaked feature) explains the symptoms downstream of it (a metric drop, a "perfect" metric), so
hypotheses are ranked by how far upstream their evidence sits, strongest evidence first, and the
symptoms they explain are listed under them instead of competing with them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from gates import registry
from gates.registry import Bucket, Cause
from gates.results import GateReport, GateResult, Severity, Status

FAMILY_DEFAULT = {"data": ("data", 3), "leakage": ("pipeline", 2), "model": ("model", 6), "artifact": ("pipeline", 4)}


def causes() -> dict[str, Cause]:
    """Per gate (and crashed step): bucket, causal depth, what a failure means, what a pass rules
    out, what to check next; declared with each gate in gates/registry.py."""
    return registry.causes()


def cause_of(result: GateResult) -> Cause:
    """The declared cause; for a gate nobody declared, its family's place in the causal order."""
    known = registry.causes()
    if result.name in known:
        return known[result.name]
    bucket, depth = FAMILY_DEFAULT[result.family.value]
    return Cause(bucket=bucket, depth=depth, meaning=f"gate {result.name} failed",
                 rules_out=f"what {result.name} checks", next_check=result.hint or "See the gate's evidence.")


class Hypothesis(BaseModel):
    """A candidate cause with the evidence for it (`evidence`) and against it (`against`)."""

    bucket: Bucket
    gate: str
    cause: str
    strength: Literal["blocking", "failed (warn severity)", "warning"]
    evidence: list[str] = Field(default_factory=list)
    against: list[str] = Field(default_factory=list)
    explains: list[str] = Field(default_factory=list)
    next_check: str = ""


class Change(BaseModel):
    what: str
    before: Any = None
    after: Any = None


class Diagnosis(BaseModel):
    verdict: str
    root_cause: str
    hypotheses: list[Hypothesis] = Field(default_factory=list)
    ruled_out: list[str] = Field(default_factory=list)
    next_checks: list[str] = Field(default_factory=list)
    changes: list[Change] = Field(default_factory=list)
    compared_with: str | None = None


def _strength(r: GateResult) -> str | None:
    if r.blocks:
        return "blocking"
    if r.status is Status.WARN and r.severity is Severity.WARN and r.details.get("downgraded"):
        return "failed (warn severity)"
    if r.status is Status.WARN:
        return "warning"
    return None


def _evidence(r: GateResult) -> list[str]:
    lines = [f"gate {r.name} ({r.status.value}): {r.summary}"]
    if r.measured:
        shown = list(r.measured.items())[:4]
        lines.append("measured " + ", ".join(f"{k}={_fmt(v)}" for k, v in shown))
    if r.threshold:
        lines.append("threshold " + ", ".join(f"{k}={_fmt(v)}" for k, v in list(r.threshold.items())[:4]))
    return lines


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def diagnose(report: GateReport, changes: list[Change] | None = None,
             compared_with: str | None = None) -> Diagnosis:
    """Rank causes across every gate: strong evidence first, upstream before downstream."""
    findings = [(r, s) for r in report.results if (s := _strength(r))]
    # Only a blocking gate can be the headline cause: a gate configured to warn ranks after every
    # blocking one, however far upstream it is (it may still explain them, said in the headline).
    order = {"blocking": 0, "failed (warn severity)": 1, "warning": 2}
    findings.sort(key=lambda rs: (order[rs[1]], cause_of(rs[0]).depth))
    hypotheses: list[Hypothesis] = []
    depth: dict[str, int] = {}
    for r, strength in findings:
        cause = cause_of(r)
        depth[r.name] = cause.depth
        hypotheses.append(Hypothesis(bucket=cause.bucket, gate=r.name, cause=cause.meaning,
                                     strength=strength, evidence=_evidence(r),
                                     next_check=cause.next_check))
    hypotheses = weigh_model_evidence(report, hypotheses, changes or [])
    # A strong upstream cause explains strong symptoms downstream of it.
    strong = [h for h in hypotheses if h.strength != "warning"]
    if len(strong) > 1:
        top = strong[0]
        for h in strong[1:]:
            if depth[h.gate] > depth[top.gate]:
                top.explains.append(f"{h.gate}: {h.cause}")
    upstream = [h for h in strong if h.strength == "failed (warn severity)" and strong[0].strength == "blocking"
                and depth[h.gate] < depth[strong[0].gate]]
    for h in upstream:
        h.explains.append(f"{strong[0].gate}: {strong[0].cause}")
    ruled_out = [f"{r.name}: rules out {cause_of(r).rules_out}" for r in report.results
                 if r.status is Status.PASS and cause_of(r).rules_out]
    next_checks = list(dict.fromkeys(h.next_check for h in hypotheses if h.next_check))[:5]
    if report.blocked and hypotheses:
        top = hypotheses[0]
        root = (f"Most likely cause ({top.bucket}): {top.cause} — {top.evidence[0].split(': ', 1)[-1]}")
        if top.explains:
            root += f"; this also explains {', '.join(e.split(':')[0] for e in top.explains)}"
        for h in upstream[:1]:
            root += (f"; upstream, {h.gate} failed at warn severity and may explain it — "
                     f"{h.evidence[0].split(': ', 1)[-1]}")
    elif report.blocked:
        root = "Blocked, but no gate recorded evidence"
    else:
        warn = [h for h in hypotheses if h.strength != "blocking"]
        root = "All blocking gates passed" + (f"; {len(warn)} warning(s): " +
                                              ", ".join(h.gate for h in warn) if warn else "")
    return Diagnosis(verdict=report.verdict, root_cause=root, hypotheses=hypotheses,
                     ruled_out=ruled_out, next_checks=next_checks, changes=changes or [],
                     compared_with=compared_with)


# --------------------------------------------------------------------------- what changed


def changes_between(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """Compare two run snapshots (see `tracking.run_snapshot`): data, schema, code, params, libraries."""
    out: list[Change] = []
    fb, fa = before.get("fingerprint") or {}, after.get("fingerprint") or {}
    for key, label in (("window_start", "data window start"), ("window_end", "data window end"),
                       ("partitions", "partitions"), ("rows", "rows")):
        if fb.get(key) != fa.get(key):
            out.append(Change(what=label, before=fb.get(key), after=fa.get(key)))
    if fb.get("content_sha256") and fb.get("content_sha256") == fa.get("content_sha256"):
        out.append(Change(what="data content", before="identical", after="identical"))
    sb, sa = before.get("schema") or {}, after.get("schema") or {}
    for col in sorted(set(sb) | set(sa)):
        if sb.get(col) != sa.get(col):
            out.append(Change(what=f"schema: column {col}", before=sb.get(col, "absent"),
                              after=sa.get(col, "absent")))
    if before.get("code_version") != after.get("code_version"):
        out.append(Change(what="code version", before=before.get("code_version"), after=after.get("code_version")))
    pb, pa = before.get("params") or {}, after.get("params") or {}
    for key in sorted(set(pb) | set(pa)):
        if key.startswith("data.window_") or key == "data.path":
            continue
        if pb.get(key) != pa.get(key):
            out.append(Change(what=f"param {key}", before=pb.get(key), after=pa.get(key)))
    lb, la = before.get("libraries") or {}, after.get("libraries") or {}
    for lib in sorted(set(lb) | set(la)):
        if lb.get(lib) != la.get(lib):
            out.append(Change(what=f"library {lib}", before=lb.get(lib), after=la.get(lib)))
    return out


# --------------------------------------------------------------------------- model evidence (#14)
# Clarify -> hypothesise -> test -> conclude: each model hypothesis is tested against the model
# debugging evidence (gates.evidence_gates) and what changed, and re-ranked when the evidence
# points elsewhere: a uniform drop plus a parameter change is a training-configuration change, not
# a slice collapse; one slice collapsing while the others hold is the cause of the aggregate
# losses (champion, baseline), not one of them; a champion that itself scores much worse on the
# new rows than in its own evaluation points at the data (labels), not at the candidate.

MODEL_GATES_SEGMENTED = ("slices", "weak_segments")
AGGREGATE_GATES = ("champion", "baseline")  # whole-test-set comparisons: symptoms of a slice collapse
DATA_GATES = ("contract", "drift", "label_shift", "partitions")
LABEL_DROP_MIN = 0.02  # the champion's own drop on the new rows that counts as "the data changed"
# A slice collapsed (rather than the model getting worse everywhere) when, within one slice column,
# it failed while at least as many slices held (within max_regression), it lost at least
# COLLAPSE_RATIO times the median loss of those that held, and its rows' share of its loss covers
# at least COLLAPSE_EXPLAINS of the champion comparison's aggregate loss (it can explain it).
COLLAPSE_RATIO = 3.0
COLLAPSE_EXPLAINS = 0.5
# A collapsed slice that lost at least this share of the champion's skill over the dummy baseline
# there is broken as a whole: weak segments found inside it are parts of it, not a narrower cause
# (a defect confined to part of a slice takes roughly that part's share of the slice's skill).
SLICE_SKILL_LOST = 2 / 3


class SliceCollapse(BaseModel):
    """One slice column where a few slices collapsed while the others held (see slice_collapse)."""

    column: str
    collapsed: dict[str, float]  # slice -> its regression against the champion
    held: dict[str, float]
    max_regression: float
    explained: float | None = None  # the collapsed rows' share-weighted loss / the aggregate loss
    aggregate: float | None = None  # the champion comparison's loss on the whole test set
    skill_lost: dict[str, float] = {}  # slice -> its loss / the champion's skill over the dummy there

    def describe(self) -> str:
        lost = ", ".join(f"{k} lost {v:.3f}" for k, v in self.collapsed.items())
        held = max(self.held.values())
        line = (f"slices: {lost} while the other {len(self.held)} {self.column} slices held "
                f"(at most {held:.3f}, within max_regression {self.max_regression:g})")
        if self.explained is not None and self.aggregate is not None:
            line += (f"; weighted by its rows it accounts for {self.explained:.0%} of the aggregate "
                     f"loss of {self.aggregate:.4f}")
        return line

    def whole(self) -> bool:
        """Every collapsed slice lost most of its skill: broken as a whole, not in a part of it."""
        return bool(self.skill_lost) and set(self.skill_lost) == set(self.collapsed) \
            and min(self.skill_lost.values()) >= SLICE_SKILL_LOST

    def skill(self) -> str:
        return ", ".join(f"{k} lost {v:.0%} of the champion's skill over the dummy baseline there"
                         for k, v in self.skill_lost.items())


def _slices_limit(result: GateResult) -> float:
    limit = (result.threshold or {}).get("max_regression")
    if isinstance(limit, (int, float)) and not isinstance(limit, bool):
        return float(limit)
    gate = registry.by_name()["slices"]
    return float((gate.default or gate.settings)().max_regression)  # the gate's default


def slice_collapse(report: GateReport) -> SliceCollapse | None:
    """One slice (or a few) of a slice column collapsed while that column's other slices held,
    by enough to explain the aggregate loss (None when no column shows that)."""
    sl = report.by_name("slices")
    if sl is None or sl.status is Status.PASS:
        return None
    table = sl.details.get("slices") or {}
    limit = _slices_limit(sl)
    min_count = (sl.threshold or {}).get("min_count") or 0
    champ = report.by_name("champion")
    change = champ.measured.get("change") if champ is not None else None
    aggregate = -change if isinstance(change, float) and change < 0 else None
    base = report.by_name("baseline")
    dummy = base.measured.get(f"dummy_{(sl.threshold or {}).get('metric')}") if base is not None else None
    columns: dict[str, dict[str, dict]] = {}
    for key, entry in table.items():
        columns.setdefault(str(key).split("=", 1)[0], {})[key] = entry
    found: list[SliceCollapse] = []
    for column, entries in columns.items():
        losses = {k: e["regression"] for k, e in entries.items()
                  if isinstance(e.get("regression"), float) and e.get("rows", 0) >= min_count}
        collapsed = {k: v for k, v in losses.items() if v > limit}
        held = {k: v for k, v in losses.items() if v <= limit}
        if not collapsed or len(collapsed) > len(held):
            continue
        typical = sorted(held.values())[len(held) // 2]
        if min(collapsed.values()) < COLLAPSE_RATIO * max(typical, 0.0):
            continue
        rows = sum(e.get("rows", 0) for e in entries.values())
        explained = None
        if aggregate is not None and rows:
            share_loss = sum(entries[k]["rows"] / rows * v for k, v in collapsed.items())
            explained = share_loss / aggregate
            if explained < COLLAPSE_EXPLAINS:
                continue
        skill_lost = {}
        for k, v in collapsed.items():
            over = entries[k].get("champion")
            if isinstance(dummy, float) and isinstance(over, float) and abs(over - dummy) > 0:
                skill_lost[k] = v / abs(over - dummy)
        found.append(SliceCollapse(column=column, collapsed=collapsed, held=held, max_regression=limit,
                                   explained=explained, aggregate=aggregate, skill_lost=skill_lost))
    # the column whose collapse stands out most (its collapsed slices against those that held)
    return max(found, key=lambda c: min(c.collapsed.values()) - max(c.held.values()), default=None)


def _segments_inside(report: GateReport, collapse: SliceCollapse) -> bool:
    """Every blocking segment of weak_segments lies inside a collapsed slice (one of its conditions)."""
    ws = report.by_name("weak_segments")
    if ws is None:
        return False
    t = ws.threshold or {}
    rows = [r for r in ws.details.get("segments") or [] if isinstance(r.get("segment"), str)]
    blocking = [r["segment"] for r in rows
                if isinstance(r.get("excess"), (int, float)) and r["excess"] >= t.get("block_excess", 0)
                and isinstance(r.get("relative_increase"), (int, float))
                and r["relative_increase"] >= t.get("block_relative_increase", 0)] or [r["segment"] for r in rows[:1]]
    return bool(blocking) and all(any(part in collapse.collapsed for part in seg.split(" & ")) for seg in blocking)


def drop_beyond_segment(report: GateReport, share: float = 0.3, least: float = 0.05) -> str | None:
    """Why the candidate's drop is not confined to its worst segment (None when it is): outside
    that segment it still lost at least `share` of its overall relative loss to the champion, and
    at least `least` (5 %). On births a planted broken segment leaves +1-4 % outside it (0.04-0.16
    of the overall loss); coarser hyperparameters leave +13-14 % (0.43-0.61)."""
    ws = report.by_name("weak_segments")
    overall = (ws.details.get("overall") or {}) if ws is not None else {}
    rel, outside = overall.get("relative_increase"), overall.get("outside_top_relative_increase")
    top = (ws.details.get("segments") or [{}])[0] if ws is not None else {}
    if not isinstance(rel, float) or not isinstance(outside, float) or rel <= 0 \
            or outside < max(share * rel, least):
        return None
    return (f"weak_segments: outside its worst segment ({top.get('segment')}) the candidate still lost "
            f"+{outside:.0%} to the champion on {overall.get('outside_top_rows')} rows (overall +{rel:.0%}): "
            "the drop is not confined to the segment")


def uniform_drop(report: GateReport) -> str | None:
    """Why the candidate's drop looks uniform across segments (None when it does not)."""
    ws = report.by_name("weak_segments")
    if ws is not None and ws.details.get("uniform"):
        rel = (ws.details.get("overall") or {}).get("relative_increase")
        return (f"weak_segments: the loss grew about equally in the {ws.measured.get('searched')} segments "
                f"searched (overall +{rel:.0%}), no segment stands out" if isinstance(rel, float)
                else "weak_segments: no segment stands out from the overall drop")
    sl = report.by_name("slices")
    table = (sl.details.get("slices") or {}) if sl is not None else {}
    losses = [e["regression"] for e in table.values() if isinstance(e.get("regression"), float)]
    if len(losses) >= 3 and min(losses) > 0 and max(losses) <= 2.5 * float(sorted(losses)[len(losses) // 2]):
        return (f"slices: every one of {len(losses)} slices lost between {min(losses):.3f} and "
                f"{max(losses):.3f}, a uniform drop")
    return None


def _label_drop(report: GateReport) -> str | None:
    """The champion lost more on the new rows (against its own evaluation) than the candidate lost to it."""
    pred, champ = report.by_name("predictions"), report.by_name("champion")
    if pred is None or champ is None:
        return None
    then, now = pred.measured.get("champion_metric_own_evaluation"), pred.measured.get("champion_metric_now")
    change = champ.measured.get("change")
    if not all(isinstance(v, float) for v in (then, now)):
        return None
    drop = then - now if pred.measured.get("greater_is_better", True) else now - then
    if drop >= LABEL_DROP_MIN and (not isinstance(change, float) or drop >= 2 * abs(change)):
        return (f"the champion itself scores {now:.4f} on the new rows against {then:.4f} in its own "
                f"evaluation (a drop of {drop:.4f}, more than the candidate's change against it)")
    return None


def weigh_model_evidence(report: GateReport, hypotheses: list[Hypothesis],
                         changes: list[Change]) -> list[Hypothesis]:
    """Add evidence for and against each hypothesis, and re-rank model causes on it."""
    passed = {r.name for r in report.results if r.status is Status.PASS}
    data_ok = [g for g in DATA_GATES if g in passed]
    params = [c for c in changes if c.what.startswith("param model")]
    collapse = slice_collapse(report)
    # A slice that collapsed while the others held contradicts "the model got worse everywhere",
    # even when the loss-based segment search calls the drop uniform (a blind slice's log loss
    # grows far less than its ranking metric falls).
    uniform = None if collapse else uniform_drop(report)
    reliance = report.by_name("reliance_shift")
    label = _label_drop(report)
    for h in hypotheses:
        if h.bucket == "model" and data_ok:
            h.against.append(f"data gates passed ({', '.join(data_ok)}): the new data looks like the champion's")
        if h.bucket == "data" and "champion" in passed:
            h.against.append("champion passed: the candidate still matches the champion on the new rows")
        if h.gate in MODEL_GATES_SEGMENTED and uniform:
            h.against.append(uniform + ": the whole model got worse, not one segment")
        if h.gate in ("champion", "baseline") and params:
            h.evidence.append("parameters changed: " + "; ".join(f"{c.what} {c.before} → {c.after}" for c in params))
        if h.gate in ("champion", "baseline", "target_leakage") and reliance is not None and reliance.evidence:
            h.evidence.append("reliance_shift: " + "; ".join(reliance.evidence[:2]))
        if h.gate == "reliance_shift":
            leak = report.by_name("target_leakage")
            if leak is not None and leak.status is Status.PASS:
                h.against.append("target_leakage passed: no single feature gives the label away on its own")
    strong = [h for h in hypotheses if h.strength != "warning"]
    model = [h for h in strong if h.bucket == "model"]
    if label and model:
        first = model[0]
        data = Hypothesis(bucket="data", gate=first.gate, strength=first.strength,
                          cause="the new rows' labels (or their link to the features) changed: a data "
                          "problem, not a worse model",
                          evidence=[label, *first.evidence[:1]],
                          against=[f"{g} passed" for g in ("label_shift",) if g in passed],
                          next_check="Audit how the labels of the new window were produced (definition, "
                          "delay, join); relabel a sample of the failure set (evidence/failure_set.parquet).")
        hypotheses.insert(hypotheses.index(first), data)
        first.against.append(label)
    elif collapse and model and (slices := next((h for h in model if h.gate == "slices"), None)):
        # The slice is the cause; the aggregate comparisons' losses are its symptoms. It moves ahead
        # of them only: a more specific finding (a weak segment, depth 5) may still explain it.
        line = collapse.describe()
        names = ", ".join(collapse.collapsed)
        how = ("collapses on a slice" if not collapse.skill_lost or collapse.whole()
               else "lost part of its skill on a slice")
        slices.cause = (f"the candidate {how} ({names}) while the other {collapse.column} slices held: "
                        "the aggregate losses are its symptoms")
        slices.evidence.insert(1, line)
        if params:
            slices.evidence.append("changed since the champion: " + "; ".join(
                f"{c.what} {c.before} → {c.after}" for c in params))
        symptoms = [h for h in model if h.gate in AGGREGATE_GATES]
        for h in symptoms:
            slices.explains.append(f"{h.gate}: {h.cause}")
            h.against.append(line + ": one slice explains the aggregate loss")
        segments = next((h for h in model if h.gate == "weak_segments"), None)
        inside = _segments_inside(report, collapse) if segments is not None else False
        if inside and collapse.whole():
            # the searched segments are pieces of the blind slice: the slice explains them too
            symptoms.insert(0, segments)
            slices.explains.insert(0, f"weak_segments: {segments.cause}")
            slices.evidence.insert(2, collapse.skill())
            segments.against.append(f"{collapse.skill()}; every blocking segment lies inside it: parts "
                                    "of the slice collapse, not a narrower defect")
        elif segments is not None and inside and collapse.skill_lost:
            segments.evidence.insert(1, f"{collapse.skill()}: less than the whole slice, so the defect "
                                     "is narrower than the slice (the segment)")
        ahead = [hypotheses.index(h) for h in symptoms if hypotheses.index(h) < hypotheses.index(slices)]
        if ahead:
            hypotheses.remove(slices)
            hypotheses.insert(min(ahead), slices)
    elif params and model and (spread := uniform or drop_beyond_segment(report)):
        target = next((h for h in model if h.gate == "champion"), model[0])
        change = "; ".join(f"{c.what} {c.before} → {c.after}" for c in params)
        target.cause = (f"the model's parameters changed ({change}) and the candidate got worse "
                        + ("about equally everywhere" if uniform else "beyond its worst segment too")
                        + ": a training-configuration change, not a segment or data problem")
        target.evidence.insert(1, spread)
        segments = next((h for h in model if h.gate == "weak_segments"), None)
        if segments is not None and not uniform:
            segments.against.append(spread)
        target.next_check = ("Revert or justify the parameter change (gates compare RUN_A RUN_B shows both "
                             "runs' params); rerun with the champion's parameters to confirm.")
        position = hypotheses.index(model[0])
        hypotheses.remove(target)
        hypotheses.insert(position, target)
    return hypotheses
