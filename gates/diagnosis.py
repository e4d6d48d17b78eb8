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
    bucket: Bucket
    gate: str
    cause: str
    strength: Literal["blocking", "failed (warn severity)", "warning"]
    evidence: list[str] = Field(default_factory=list)
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
