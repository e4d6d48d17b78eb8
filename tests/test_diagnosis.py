"""The diagnosis ranks causes, not symptoms (issue #6)."""

from __future__ import annotations

from gates.diagnosis import Change, changes_between, diagnose
from gates.results import Family, GateReport, GateResult, Severity, Status, run_gate


def _r(name, family, status, severity=Severity.BLOCK, summary="", **details):
    return GateResult(name=name, family=family, status=status, severity=severity,
                      summary=summary or f"{name} {status.value}", details=details)


def test_missing_partition_is_named_as_the_cause_of_a_metric_drop():
    report = GateReport(results=[
        _r("partitions", Family.DATA, Status.WARN, Severity.WARN, "missing partitions: 2026-06-27",
           downgraded=True),
        _r("contract", Family.DATA, Status.PASS),
        _r("champion", Family.MODEL, Status.FAIL, summary="roc_auc dropped by 0.04"),
        _r("baseline", Family.MODEL, Status.PASS),
    ])
    d = diagnose(report)
    # Only a blocking gate is the headline (issue #15.6); the warn-severity partition finding
    # upstream is named in it as what may explain the drop.
    assert d.hypotheses[0].gate == "champion" and d.hypotheses[0].strength == "blocking"
    assert d.root_cause.startswith("Most likely cause (model)")
    partitions = d.hypotheses[1]
    assert partitions.gate == "partitions" and partitions.bucket == "data"
    assert "champion" in partitions.explains[0]
    assert "partitions failed at warn severity" in d.root_cause and "2026-06-27" in d.root_cause
    assert any(r.startswith("contract") for r in d.ruled_out)


def test_leaked_feature_not_perfect_metric_is_the_cause():
    report = GateReport(results=[
        _r("perfect_metric", Family.LEAKAGE, Status.FAIL, summary="roc_auc 0.9999 >= 0.995"),
        _r("target_leakage", Family.LEAKAGE, Status.FAIL, summary="feature 'refund_flag' alone AUC 0.999"),
    ])
    d = diagnose(report)
    assert d.hypotheses[0].gate == "target_leakage"
    assert "refund_flag" in d.root_cause
    assert d.hypotheses[0].explains and "perfect_metric" in d.hypotheses[0].explains[0]


def test_benign_warning_never_outranks_a_blocking_cause():
    report = GateReport(results=[
        _r("drift", Family.DATA, Status.WARN, summary="usage_minutes PSI 0.12"),
        _r("champion", Family.MODEL, Status.FAIL, summary="roc_auc dropped"),
    ])
    d = diagnose(report)
    assert d.hypotheses[0].gate == "champion" and d.hypotheses[1].strength == "warning"


def test_warn_severity_failure_upstream_is_never_the_headline():
    report = GateReport(results=[
        _r("partitions", Family.DATA, Status.WARN, Severity.WARN, "short partitions: 2026-06-27",
           downgraded=True),
        _r("row_overlap", Family.LEAKAGE, Status.FAIL, summary="3% of test rows also in train"),
    ])
    d = diagnose(report)
    assert [h.gate for h in d.hypotheses] == ["row_overlap", "partitions"]
    assert d.root_cause.split(";")[0].endswith("3% of test rows also in train"), d.root_cause


def test_passed_run_lists_warnings_and_has_no_blocking_cause():
    report = GateReport(results=[_r("drift", Family.DATA, Status.WARN), _r("contract", Family.DATA, Status.PASS)])
    d = diagnose(report)
    assert d.verdict == "passed" and "drift" in d.root_cause


def test_gate_crash_is_a_pipeline_cause():
    result = run_gate("contract", Family.DATA, lambda: 1 / 0)
    d = diagnose(GateReport(results=[result]))
    assert d.hypotheses[0].strength == "blocking" and "ZeroDivisionError" in d.root_cause


def test_changes_between_runs():
    before = {"fingerprint": {"window_start": "2026-05-01", "rows": 100, "partitions": 30},
              "schema": {"a": "int64", "b": "str"}, "code_version": "abc",
              "params": {"model.params": '{"max_iter": 150}'}, "libraries": {"scikit-learn": "1.9.1"}}
    after = {"fingerprint": {"window_start": "2026-05-02", "rows": 90, "partitions": 29},
             "schema": {"a": "float64"}, "code_version": "def",
             "params": {"model.params": '{"max_iter": 3}'}, "libraries": {"scikit-learn": "1.9.1"}}
    whats = {c.what: c for c in changes_between(before, after)}
    assert whats["rows"].after == 90 and whats["schema: column a"].after == "float64"
    assert whats["schema: column b"].after == "absent" and "param model.params" in whats
    assert "code version" in whats and "library scikit-learn" not in whats
    assert isinstance(whats["partitions"], Change)


# --------------------------------------------------------------------------- model evidence (#14)


def _uniform_slices(drop=0.09):
    return {f"region={r}": {"rows": 900, "candidate": 0.70, "champion": 0.70 + drop, "regression": drop + i * 0.004}
            for i, r in enumerate(["north", "south", "east", "west", "basic", "standard", "premium"])}


def test_uniform_drop_with_a_parameter_change_names_the_parameter_change_first():
    """max_iter 150 → 5 with ~0.09 lost on every slice: not "collapses on a slice"."""
    report = GateReport(results=[
        _r("drift", Family.DATA, Status.PASS),
        _r("predictions", Family.MODEL, Status.PASS),
        _r("slices", Family.MODEL, Status.FAIL, summary="slice region=north: roc_auc 0.70 vs champion 0.79",
           slices=_uniform_slices()),
        _r("champion", Family.MODEL, Status.FAIL, summary="roc_auc 0.69 vs champion v1 0.78"),
        _r("weak_segments", Family.MODEL, Status.PASS, uniform=True, overall={"relative_increase": 0.11}),
    ])
    changes = [Change(what="param model.params", before='{"max_iter": 150}', after='{"max_iter": 5}')]
    d = diagnose(report, changes)
    top = d.hypotheses[0]
    assert top.gate == "champion" and "parameters changed" in top.cause and "max_iter" in top.cause
    assert any("equally" in e or "uniform" in e for e in top.evidence)
    slices = next(h for h in d.hypotheses if h.gate == "slices")
    assert any("not one segment" in a for a in slices.against)
    assert any("drift" in a for a in top.against)  # evidence against a model cause: the data looks alike
    assert "parameters changed" in d.root_cause


def test_a_real_slice_collapse_without_a_parameter_change_stays_a_slice_collapse():
    table = _uniform_slices(0.0)
    table["region=west"]["regression"] = 0.2
    report = GateReport(results=[
        _r("slices", Family.MODEL, Status.FAIL, summary="slice region=west: roc_auc 0.55", slices=table),
        _r("champion", Family.MODEL, Status.FAIL, summary="roc_auc dropped"),
    ])
    d = diagnose(report, [Change(what="param model.params", before="a", after="b")])
    assert d.hypotheses[0].gate == "slices" and "collapses" in d.hypotheses[0].cause
    assert not d.hypotheses[0].against


def test_a_champion_that_got_worse_itself_points_at_the_labels():
    """Flipped labels: the champion loses far more against its own evaluation than the candidate
    loses against it, so the data (labels) is the first hypothesis, not a model regression."""
    report = GateReport(results=[
        _r("label_shift", Family.DATA, Status.PASS),
        _r("predictions", Family.MODEL, Status.PASS),
        _r("champion", Family.MODEL, Status.FAIL, summary="roc_auc 0.60 vs champion v1 0.61"),
    ])
    report.results[1].measured.update(champion_metric_own_evaluation=0.78, champion_metric_now=0.61,
                                      greater_is_better=True)
    report.results[2].measured.update(change=-0.01)
    d = diagnose(report)
    top = d.hypotheses[0]
    assert top.bucket == "data" and "labels" in top.cause and "0.7800" in top.evidence[0]
    assert top.against == ["label_shift passed"]
    model = next(h for h in d.hypotheses if h.bucket == "model")
    assert any("champion itself" in a for a in model.against)
