"""The diagnosis: from gate results to ranked causes, the way a senior engineer reads them.

Gates report symptoms at different depths of the pipeline. A cause upstream (a missing partition,
a leaked feature) explains the symptoms downstream of it (a metric drop, a "perfect" metric), so
hypotheses are ranked by how far upstream their evidence sits, strongest evidence first, and the
symptoms they explain are listed under them instead of competing with them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from gates.results import GateReport, GateResult, Severity, Status

Bucket = Literal["data", "model", "pipeline"]


class Cause(BaseModel):
    """What a gate's failure means, where it sits in the causal order, and what to check."""

    bucket: Bucket
    depth: int  # 0 = furthest upstream; symptoms of several causes sit deepest
    meaning: str
    rules_out: str
    next_check: str


# Per gate: bucket, causal depth, what a failure means, what a pass rules out, what to check next.
CAUSES: dict[str, Cause] = {
    "stage_ingest": Cause(bucket="pipeline", depth=0, meaning="the ingest step crashed",
                          rules_out="", next_check="Read the flow run's logs for the traceback."),
    "partitions": Cause(bucket="data", depth=1, meaning="upstream data delivery is incomplete",
                        rules_out="missing, empty, stale, duplicated or unreadable partitions",
                        next_check="Check the upstream job that writes the partitions for the dates named."),
    "contract": Cause(bucket="data", depth=2, meaning="the data no longer matches its contract (schema or values)",
                      rules_out="schema changes, type changes, null bursts, out-of-range values and unknown categories",
                      next_check="Diff the upstream schema and the failing columns against expectations/; "
                                 "ask the producer whether the change was intended."),
    "label_shift": Cause(bucket="data", depth=3, meaning="the label's distribution shifted",
                         rules_out="a shift in the label's base rate",
                         next_check="Check how labels are produced (definition, delay, join) for the new window."),
    "drift": Cause(bucket="data", depth=3, meaning="feature distributions drifted from the last promoted run",
                   rules_out="covariate drift beyond the block thresholds",
                   next_check="Look at the drift plots; decide whether the change is real-world (retrain and "
                              "accept) or an upstream bug (fix the source)."),
    "split_drift": Cause(bucket="data", depth=4, meaning="train and test windows differ strongly",
                         rules_out="a sharp break between the train and test periods",
                         next_check="Look for a change in the data around the split date."),
    "stage_split": Cause(bucket="pipeline", depth=1, meaning="the split step crashed",
                         rules_out="", next_check="Check split settings against the window length."),
    "time_order": Cause(bucket="pipeline", depth=2, meaning="the split is not in time order (test rows older than train rows)",
                        rules_out="a shuffled or overlapping time split",
                        next_check="Check split.strategy and the timestamp column."),
    "row_overlap": Cause(bucket="pipeline", depth=2, meaning="rows are shared between train and test",
                         rules_out="duplicated rows across the split",
                         next_check="Look for duplicated rows upstream and for entities that straddle the split."),
    "target_leakage": Cause(bucket="pipeline", depth=2, meaning="a feature nearly determines the label (target leakage)",
                            rules_out="single features that give the label away",
                            next_check="Find how the named feature is computed; drop it or allow-list it if legitimate."),
    "serving_availability": Cause(bucket="pipeline", depth=2, meaning="the model uses features not available at prediction time",
                                  rules_out="features from the future or missing at serving",
                                  next_check="Compare the feature list with serving_features and the feature timestamps."),
    "preprocessing_fit": Cause(bucket="pipeline", depth=2, meaning="preprocessing was fitted on more than the training split",
                               rules_out="scalers, imputers or encoders fitted before the split",
                               next_check="Move every fitted step inside the sklearn Pipeline that is fitted on train."),
    "stage_train": Cause(bucket="model", depth=3, meaning="training crashed", rules_out="",
                         next_check="Read the traceback; check model params and the training frame."),
    "stage_evaluate": Cause(bucket="model", depth=3, meaning="evaluation crashed", rules_out="",
                            next_check="Read the traceback; check the test split and the champion model."),
    "metric_sanity": Cause(bucket="model", depth=4, meaning="the candidate's metrics are not finite",
                           rules_out="NaN or infinite metrics",
                           next_check="Look for NaN/inf predictions or a one-class test split."),
    "perfect_metric": Cause(bucket="model", depth=6, meaning="the metric is suspiciously perfect (likely leakage)",
                            rules_out="suspiciously perfect metrics",
                            next_check="Look for a leaked feature or test rows seen in training."),
    "baseline": Cause(bucket="model", depth=6, meaning="the candidate does not beat a simple baseline",
                      rules_out="a candidate no better than a baseline",
                      next_check="Check the hyperparameters and that features reach the model."),
    "champion": Cause(bucket="model", depth=6, meaning="the candidate is worse than the champion on the same new data",
                      rules_out="a regression against the production model",
                      next_check="Diff params and code against the champion's run (gates compare)."),
    "slices": Cause(bucket="model", depth=6, meaning="the candidate collapses on a slice",
                    rules_out="a collapse on any slice with enough rows",
                    next_check="Look at the slice's rows in the new data and its share of the training set."),
    "predictions": Cause(bucket="model", depth=6, meaning="the candidate's predictions are constant or shifted",
                         rules_out="constant or shifted predictions",
                         next_check="Check the prediction distribution and the decision threshold."),
    "stage_export": Cause(bucket="pipeline", depth=3, meaning="the export step crashed", rules_out="",
                          next_check="Check disk space and the export folder's permissions."),
    "artifact_integrity": Cause(bucket="pipeline", depth=3, meaning="an exported file is empty, truncated or corrupted",
                                rules_out="empty or corrupted model files",
                                next_check="Check what writes to the export folder after export; re-export."),
    "library_versions": Cause(bucket="pipeline", depth=3, meaning="the model was serialized under other library versions",
                              rules_out="library-version mismatches on load",
                              next_check="Pin the training and serving environments to the same versions."),
    "signature": Cause(bucket="pipeline", depth=4, meaning="the model's input signature does not match the data contract",
                       rules_out="signature/contract mismatches",
                       next_check="Compare the model's signature with expectations/."),
    "artifact_loads": Cause(bucket="pipeline", depth=4, meaning="the exported model does not load or reproduce its predictions",
                            rules_out="models that do not load in a fresh process or change their predictions",
                            next_check="Load the file by hand in a fresh interpreter; check serialization and versions."),
    # Depth 4: it reads the exported files, so a damaged file (depth 3) explains its failure too.
    "serving_skew": Cause(bucket="pipeline", depth=4, meaning="what the model sees at serving differs from training (preprocessing outside the pipeline)",
                          rules_out="training/serving skew from steps outside the model pipeline",
                          next_check="Move every transformation of raw columns into the model pipeline."),
    "stage_promote": Cause(bucket="pipeline", depth=3, meaning="promotion crashed", rules_out="",
                           next_check="Check the registry; the alias was not moved."),
}
FAMILY_DEFAULT = {"data": ("data", 3), "leakage": ("pipeline", 2), "model": ("model", 6), "artifact": ("pipeline", 4)}


def cause_of(result: GateResult) -> Cause:
    if result.name in CAUSES:
        return CAUSES[result.name]
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
    for r, strength in findings:
        cause = cause_of(r)
        hypotheses.append(Hypothesis(bucket=cause.bucket, gate=r.name, cause=cause.meaning,
                                     strength=strength, evidence=_evidence(r),
                                     next_check=cause.next_check))
    # A strong upstream cause explains strong symptoms downstream of it.
    strong = [h for h in hypotheses if h.strength != "warning"]
    if len(strong) > 1:
        top = strong[0]
        for h in strong[1:]:
            if cause_of_name(h.gate).depth > cause_of_name(top.gate).depth:
                top.explains.append(f"{h.gate}: {h.cause}")
    upstream = [h for h in strong if h.strength == "failed (warn severity)" and strong[0].strength == "blocking"
                and cause_of_name(h.gate).depth < cause_of_name(strong[0].gate).depth]
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


def cause_of_name(name: str) -> Cause:
    return CAUSES.get(name) or Cause(bucket="model", depth=6, meaning=name, rules_out="", next_check="")


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
