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
