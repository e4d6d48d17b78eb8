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


def _segment_report(outside: float, overall: float = 0.30):
    return GateReport(results=[
        _r("drift", Family.DATA, Status.PASS),
        _r("champion", Family.MODEL, Status.FAIL, summary="roc_auc 0.7575 vs champion v1 0.8434"),
        _r("weak_segments", Family.MODEL, Status.FAIL, summary="segment 4 <= weekday < 5: loss 0.39 vs champion 0.18",
           segments=[{"segment": "4 <= weekday < 5", "excess": 1.08, "relative_increase": 1.16}],
           overall={"relative_increase": overall, "outside_top_rows": 1224,
                    "outside_top_relative_increase": outside}),
    ])


def test_a_parameter_change_whose_drop_goes_beyond_the_worst_segment_names_the_parameters_first():
    """Births, summer: max_bins=2 hurts Fridays most (+116 %) but the other 1224 rows lost +13 %
    too (0.43 of the overall +30 %): a training-configuration change, not one broken segment.
    A planted broken segment leaves +1 % outside it: the segment stays the cause."""
    changes = [Change(what="param model.params", before='{"max_bins": 255}', after='{"max_bins": 2}')]
    d = diagnose(_segment_report(outside=0.13), changes)
    top = d.hypotheses[0]
    assert top.gate == "champion" and "beyond its worst segment" in top.cause and "max_bins" in top.cause
    assert any("outside its worst segment" in e and "+13%" in e for e in top.evidence)
    segments = next(h for h in d.hypotheses if h.gate == "weak_segments")
    assert any("not confined" in a for a in segments.against)
    confined = diagnose(_segment_report(outside=0.01), changes)
    assert confined.hypotheses[0].gate == "weak_segments"
    assert diagnose(_segment_report(outside=0.13)).hypotheses[0].gate == "weak_segments"  # no change: a segment


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


def _collapsed_west(west=0.198, others=(0.004, 0.0, 0.008), plans=(0.024, 0.021, 0.0295)):
    regions = dict(zip(["west", "east", "north", "south"], [west, *others]))
    table = {f"region={r}": {"rows": rows, "candidate": 0.76 - loss, "champion": 0.76, "regression": loss}
             for (r, loss), rows in zip(regions.items(), [1160, 1793, 2583, 1859])}
    table |= {f"plan={p}": {"rows": rows, "candidate": 0.75 - loss, "champion": 0.75, "regression": loss}
              for p, loss, rows in zip(["standard", "basic", "premium"], plans, [2634, 3676, 1085])}
    return table


def _model_report(slices_table, change, uniform):
    report = GateReport(results=[
        _r("drift", Family.DATA, Status.PASS),
        _r("slices", Family.MODEL, Status.FAIL, summary="slice region=west: roc_auc 0.56 vs champion 0.76",
           slices=slices_table),
        _r("baseline", Family.MODEL, Status.FAIL, summary="roc_auc 0.753 vs baseline 'simple' 0.762"),
        _r("champion", Family.MODEL, Status.FAIL, summary=f"roc_auc change {change}"),
        _r("weak_segments", Family.MODEL, Status.WARN, Severity.BLOCK, uniform=uniform,
           overall={"relative_increase": 0.03}),
    ])
    report.results[1].threshold.update(metric="roc_auc", max_regression=0.03, min_count=200)
    report.results[3].measured.update(change=change)
    return report


def test_one_collapsed_slice_explains_the_aggregate_losses_even_with_a_pipeline_change():
    """slice_collapse: region=west blind (its ROC AUC -0.2), the other regions hold; the loss search
    calls the drop uniform (a blind slice's log loss grows little) and model.pipeline changed. The
    slice is the cause; champion and baseline are its symptoms."""
    report = _model_report(_collapsed_west(), change=-0.0227, uniform=True)
    changes = [Change(what="param model.pipeline", before=None, after="gates.faults:slice_collapse_pipeline")]
    d = diagnose(report, changes)
    top = d.hypotheses[0]
    assert top.gate == "slices" and "region=west" in top.cause and "symptoms" in top.cause
    assert {e.split(":")[0] for e in top.explains} == {"champion", "baseline"}
    assert any("held" in e and "aggregate loss" in e for e in top.evidence)
    assert any("model.pipeline" in e for e in top.evidence)
    assert not any("uniform" in a or "not one segment" in a for a in top.against)
    champion = next(h for h in d.hypotheses if h.gate == "champion")
    assert "parameters changed" not in champion.cause
    assert any("one slice explains" in a for a in champion.against)
    assert "this also explains" in d.root_cause and "champion" in d.root_cause


def test_a_slice_failing_in_a_uniform_drop_does_not_count_as_a_collapse():
    """max_iter lowered: every slice lost ~0.015-0.02 and one region just crossed max_regression.
    It neither stands out from the slices that held nor explains the aggregate loss: the
    parameter change stays first."""
    table = _collapsed_west(west=0.034, others=(0.016, 0.012, 0.02), plans=(0.014, 0.018, 0.022))
    report = _model_report(table, change=-0.0175, uniform=True)
    changes = [Change(what="param model.params.max_iter", before="150", after="10")]
    d = diagnose(report, changes)
    top = d.hypotheses[0]
    assert top.gate == "champion" and "parameters changed" in top.cause
    assert not top.against or not any("one slice explains" in a for a in top.against)


def _with_segments(report, segments, dummy=0.5):
    ws = report.by_name("weak_segments")
    ws.status = Status.FAIL
    ws.threshold.update(block_excess=0.5, block_relative_increase=0.5)
    ws.details["uniform"] = False
    ws.details["segments"] = [{"segment": name, "features": 2, "support": 400, "excess": excess,
                               "relative_increase": rel} for name, excess, rel in segments]
    report.by_name("baseline").measured["dummy_roc_auc"] = dummy
    return report


def test_weak_segments_inside_a_blind_slice_are_parts_of_the_slice_collapse():
    """slice_collapse on larger data: the search blocks on 'tenure_months < 8 & region=west' and
    other pieces of the blind slice, which lost ~90% of its skill: the slice explains them."""
    table = _collapsed_west(west=0.27)
    for entry in table.values():
        entry["champion"] = 0.80
    report = _with_segments(_model_report(table, change=-0.026, uniform=False), [
        ("tenure_months < 8 & region=west", 0.70, 0.58), ("support_calls >= 2 & region=west", 0.56, 0.46),
        ("days_since_login >= 6.37 & region=west", 0.55, 0.52)])
    report.results.insert(1, report.results.pop(4))  # weak_segments (depth 5) ranks before slices
    d = diagnose(report, [Change(what="param model.pipeline", before=None, after="x")])
    top = d.hypotheses[0]
    assert top.gate == "slices" and "collapses" in top.cause
    assert [e.split(":")[0] for e in top.explains][:1] == ["weak_segments"]
    assert any("90% of the champion's skill" in e for e in top.evidence)
    segments = next(h for h in d.hypotheses if h.gate == "weak_segments")
    assert any("parts of the slice collapse" in a for a in segments.against)


def test_a_weak_segment_that_took_part_of_a_slice_stays_first():
    """weak_segment: region=west & plan=basic broke; region=west lost ~27% of its skill, so the
    segment is narrower than the slice and explains it (and the aggregate losses)."""
    table = _collapsed_west(west=0.08)
    for entry in table.values():
        entry["champion"] = 0.80
    report = _with_segments(_model_report(table, change=-0.019, uniform=False), [
        ("region=west & plan=basic", 0.68, 0.74), ("monthly_charges < 30.54 & region=west", 0.69, 0.78)])
    report.results.insert(1, report.results.pop(4))
    d = diagnose(report, [Change(what="param model.pipeline", before=None, after="y")])
    top = d.hypotheses[0]
    assert top.gate == "weak_segments"
    assert {e.split(":")[0] for e in top.explains} >= {"slices", "champion", "baseline"}
    assert any("narrower than the slice" in e for e in top.evidence)
    slices = next(h for h in d.hypotheses if h.gate == "slices")
    assert "part of its skill" in slices.cause


def test_a_small_slice_that_cannot_explain_the_aggregate_loss_is_not_its_cause():
    """A tiny slice collapsed but, weighted by its rows, covers little of a large aggregate loss."""
    table = _collapsed_west(west=0.2, others=(0.01, 0.012, 0.015))
    table["region=west"]["rows"] = 250
    report = _model_report(table, change=-0.06, uniform=True)
    d = diagnose(report, [Change(what="param model.params.max_iter", before="150", after="10")])
    assert d.hypotheses[0].gate == "champion" and "parameters changed" in d.hypotheses[0].cause


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
