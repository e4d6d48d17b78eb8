"""Partition and contract gates on real demo partitions, one test per fault they exist for."""

from __future__ import annotations

import datetime as dt
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from gates.config import load_config
from gates.data_gates import check_contract, check_partitions
from gates.faults import FAULTS, FaultTarget
from gates.ingest import ingest
from gates.results import Status
from tests.conftest import RUN_DATE, demo_config


@pytest.fixture
def broken(tmp_path, data_dir):
    """Apply a registered fault to a private copy of the data; return (cfg, ingested, target)."""

    def apply(name: str | None = None):
        raw = demo_config(tmp_path, data_dir)
        target = FaultTarget(data_path=data_dir, config=raw, run_date=RUN_DATE)
        if name:
            FAULTS[name].apply(target)
        path = tmp_path / "pipeline.yaml"
        path.write_text(yaml.safe_dump(raw))
        cfg = load_config(path)
        return cfg, ingest(cfg, RUN_DATE), target

    return apply


def _partitions(cfg, ingested):
    return check_partitions(ingested, cfg.gates.partitions, cfg.data.cadence, cfg)


def _contract(cfg, ingested):
    return check_contract(ingested, cfg, cfg.gates.contract)


def test_clean_demo_passes_partitions_and_contract(broken):
    cfg, ingested, _ = broken()
    result = _partitions(cfg, ingested)
    assert result.status is Status.PASS, result.evidence
    assert result.measured["missing"] == 0 and result.measured["lag_days"] == 1
    result = _contract(cfg, ingested)
    assert result.status is Status.PASS, result.evidence
    assert result.measured["partitions_validated"] == 30
    # GE runs on the window (row counts, the whole frame, one call per column), not per partition;
    # a column runs again only to name unexpected rows (a `mostly` expectation's tolerated nulls).
    columns = len(ingested.partition_frame(ingested.expected[0]).columns)
    assert result.measured["ge_calls"] - result.measured["ge_reruns"] <= 2 + columns
    assert result.measured["ge_reruns"] < columns / 2


def test_memoised_configuration_leaves_ge_results_as_ge_makes_them():
    """The contract memoises GE's per-expectation configuration inside its own calls: the results
    (successes, counts, unexpected rows and values) equal GE's own, clean and faulty."""
    import great_expectations as gx

    from gates import contract

    frame = pd.DataFrame({"x": np.r_[np.arange(1000.0), [np.nan, -5.0, 2e6]],
                          "plan": ["a", "b"] * 501 + ["zz"]})
    suite = [gx.expectations.ExpectColumnValuesToNotBeNull(column="x", mostly=0.99),
             gx.expectations.ExpectColumnValuesToBeBetween(column="x", min_value=0, max_value=1e6),
             gx.expectations.ExpectColumnValuesToBeInSet(column="plan", value_set=["a", "b"]),
             gx.expectations.ExpectColumnMeanToBeBetween(column="x", min_value=0, max_value=1e3)]
    fmt = {"result_format": "COMPLETE", "partial_unexpected_count": 5}

    def plain(results):
        return sorted((r.expectation_config.type, r.success, repr(sorted((r.result or {}).items())))
                      for r in results)

    memoised = contract._validate(frame, suite, fmt)
    batch = contract._batch_definition().get_batch(batch_parameters={"dataframe": frame})
    unmemoised = batch.validate(contract._suite(suite), result_format=fmt).results  # no memo here
    assert plain(memoised) == plain(unmemoised)
    assert [r.success for r in sorted(memoised, key=lambda r: r.expectation_config.type)] == \
        [False, False, False, True]  # mean (the 2e6 outlier), between, in_set fail; not-null's mostly holds
    assert getattr(contract._local, "configurations", None) is None  # the memo ends with the call


@pytest.mark.parametrize("fault, words", [
    ("missing_partition", ["missing partitions"]),
    ("empty_partition", ["empty partitions"]),
    ("stale_data", ["stale data", "newest partition"]),
    ("duplicated_partition", ["duplicated rows in partition", "part-1.parquet"]),
    ("short_partition", ["short partitions", "trailing median"]),
    ("unreadable_file", ["unreadable file", "part-0.parquet"]),
])
def test_partition_faults_block_naming_the_partition(broken, fault, words):
    cfg, ingested, target = broken(fault)
    result = _partitions(cfg, ingested)
    assert result.name == "partitions" and result.status is Status.FAIL and result.blocks
    text = " ".join(result.evidence)
    for word in words:
        assert word in text, text
    named = {d.isoformat() for d in target.window()} & set(re.findall(r"\d{4}-\d{2}-\d{2}", text))
    assert named, f"no partition date named in: {text}"


def test_partition_with_another_dates_content_is_a_duplicate(broken, data_dir):
    cfg, _, target = broken()
    day, copy_of = target.window()[-3], target.window()[-4]
    shutil.copyfile(target.files(copy_of)[0], target.files(day)[0])
    result = _partitions(cfg, ingest(cfg, RUN_DATE))
    assert result.status is Status.FAIL
    assert f"identical content: {copy_of.isoformat()}, {day.isoformat()}" in result.summary


def test_weekly_cadence_allows_a_week_of_lag(tmp_path, clean_data):
    raw = demo_config(tmp_path, clean_data, **{"data.cadence": "weekly"})
    (tmp_path / "weekly.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(tmp_path / "weekly.yaml")
    result = check_partitions(ingest(cfg, RUN_DATE), cfg.gates.partitions, cfg.data.cadence)
    assert result.status is Status.PASS, result.evidence
    assert result.measured["expected"] == 4 and result.measured["lag_days"] == 7


@pytest.mark.parametrize("fault, words", [
    ("renamed_column", ["table columns to match set", "monthly_charge"]),
    ("dropped_column", ["table columns to match set", "missing ['{column}']"]),
    ("dtype_change", ["column 'tenure_months'", "of type", "float64"]),
    ("null_burst", ["column 'monthly_charges'", "not be null", "unexpected"]),
    ("out_of_range", ["column 'monthly_charges'", "between", "unexpected", "e.g."]),
    ("new_category", ["column 'region'", "in set", "North", "Basic plan"]),
    ("bool_as_string", ["column 'is_promo'", "of type"]),
])
def test_contract_faults_block_naming_partition_column_and_values(broken, fault, words):
    cfg, ingested, target = broken(fault)
    assert _partitions(cfg, ingested).status is Status.PASS  # only the contract sees it
    result = _contract(cfg, ingested)
    assert result.name == "contract" and result.status is Status.FAIL and result.blocks
    text = " ".join(result.evidence)
    for word in words:
        if "{column}" in word:  # the configured column the fault picked
            (column,) = target.columns
            word = word.format(column=column)
        assert word in text, text
    broken_days = set(result.details["failures_by_partition"])
    newest = target.window()[-1].isoformat()
    assert newest in broken_days and newest in text
    assert target.window()[0].isoformat() not in broken_days  # clean partitions are not blamed


def test_mostly_is_judged_per_partition(broken, data_dir):
    """days_since_login may be 10% null (mostly 0.9): a burst in one day fails that day only,
    although the window as a whole stays under 10%."""
    cfg, _, target = broken()
    day = target.window()[-2]

    def burst(f: pd.DataFrame) -> pd.DataFrame:
        f = f.copy()
        f.loc[f.index[: len(f) // 2], "days_since_login"] = float("nan")
        return f

    target.rewrite(burst, [day])
    result = _contract(cfg, ingest(cfg, RUN_DATE))
    assert result.status is Status.FAIL
    assert list(result.details["failures_by_partition"]) == [day.isoformat()]
    assert "days_since_login" in result.summary


def test_row_count_expectation_names_the_partition(broken):
    cfg, _, target = broken()
    day = target.window()[-5]
    target.rewrite(lambda f: f.iloc[:50], [day])  # suite: at least 100 rows per partition
    result = _contract(cfg, ingest(cfg, RUN_DATE))
    assert result.status is Status.FAIL
    assert list(result.details["failures_by_partition"]) == [day.isoformat()]
    assert "50 rows" in result.summary


def test_contract_data_docs_show_the_failure_and_never_change_the_verdict(broken, tmp_path, monkeypatch):
    """In a run (a workdir), GE's Data Docs of the validation: a site whose page names the failing
    column and GE's sentence for its expectation, hostile values escaped; a failure to build them
    is said in the result and changes nothing else."""
    from gates import data_docs

    cfg, _, target = broken("null_burst")
    day = target.window()[-1]

    def hostile(f: pd.DataFrame) -> pd.DataFrame:
        region = f["region"].astype(object)
        region.iloc[0], region.iloc[1] = "<script>alert(1)</script>", "W" * 100_000
        return f.assign(region=region.astype(str))

    target.rewrite(hostile, [day])
    ingested = ingest(cfg, RUN_DATE)
    without = _contract(cfg, ingested)
    result = check_contract(ingested, cfg, cfg.gates.contract, workdir=tmp_path / "run")
    same = ("status", "summary", "evidence", "threshold")
    assert [getattr(result, k) for k in same] == [getattr(without, k) for k in same]
    assert result.status is Status.FAIL and "data_docs_error" not in result.details
    index = tmp_path / "run" / "data_docs" / "index.html"
    assert result.details["data_docs"] == str(index) and index.is_file()
    (page,) = index.parent.glob("validations/**/*.html")  # one schema group: one page
    html = page.read_text()
    assert "monthly_charges" in html and "values must never be null" in html and "Failed" in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "W" * 400 not in html and len(html) < 500_000  # clipped, as in the report
    assert day.isoformat() in html
    assert result.measured["data_docs_seconds"] < 30

    def fails(*args, **kwargs):
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(data_docs, "build", fails)
    broken_docs = check_contract(ingested, cfg, cfg.gates.contract, workdir=tmp_path / "run2")
    assert [getattr(broken_docs, k) for k in same] == [getattr(without, k) for k in same]
    assert broken_docs.details["data_docs_error"] == "RuntimeError: renderer exploded"
    assert "data_docs" not in broken_docs.details
    off = check_contract(ingested, cfg, cfg.gates.contract.model_copy(update={"data_docs": False}),
                         workdir=tmp_path / "run3")
    assert "data_docs_seconds" not in off.measured and not (tmp_path / "run3").exists()


def test_suite_init_infers_a_suite_the_clean_data_passes(tmp_path, clean_data):
    from gates.suite_init import infer_suite

    raw = demo_config(tmp_path, clean_data)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(tmp_path / "p.yaml")
    suite = infer_suite(cfg, RUN_DATE - dt.timedelta(days=30), RUN_DATE - dt.timedelta(days=1))
    kinds = {e["type"] for e in suite["expectations"]}
    assert {"expect_table_columns_to_match_set", "expect_column_values_to_be_of_type",
            "expect_column_values_to_be_between", "expect_column_values_to_be_in_set",
            "expect_table_row_count_to_be_between"} <= kinds
    types = {e["kwargs"]["column"]: e["kwargs"]["type_"] for e in suite["expectations"]
             if e["type"] == "expect_column_values_to_be_of_type"}
    assert types["region"] == "str" and types["is_promo"] == "bool"
    inferred = tmp_path / "inferred.json"
    inferred.write_text(__import__("json").dumps(suite))
    raw["expectations"] = str(inferred)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(tmp_path / "p.yaml")
    result = check_contract(ingest(cfg, RUN_DATE), cfg, cfg.gates.contract)
    assert result.status is Status.PASS, result.evidence


def test_ingest_holds_the_window_once_with_each_file_a_view_of_it(broken):
    """Issue 13.6: one frame for the window; a partition's frame is a view of it, equal to its
    file read alone; the run's frame is a shallow copy a hook cannot write through."""
    from gates.ingest import read_file

    cfg, ingested, _ = broken()
    window = ingested.window
    assert ingested.views and len(window) == sum(ingested.rows(d) for d in ingested.expected)
    for day in ingested.expected[:3]:
        (part,) = ingested.frames[day]
        assert np.shares_memory(part["monthly_charges"].to_numpy(), window["monthly_charges"].to_numpy())
        pd.testing.assert_frame_equal(part, read_file(ingested.files[day][0], cfg.data.format))
    frame = ingested.combined()
    assert frame is not window and frame.equals(window)
    frame["monthly_charges"] = 0.0  # what an after_ingest hook may do
    assert window["monthly_charges"].ne(0.0).any()
    assert ingested.frames[ingested.expected[0]][0]["monthly_charges"].ne(0.0).any()


def test_files_that_differ_in_dtype_are_each_kept_as_read(broken):
    """A file whose integer column has a null (float in pandas) is not cast with the others: the
    contract judges every partition as delivered."""
    from gates.ingest import read_file

    cfg, _, target = broken()
    day = RUN_DATE - dt.timedelta(days=3)
    (path,) = sorted((target.data_path / f"date={day.isoformat()}").glob("*.parquet"))
    frame = pd.read_parquet(path)
    integer = next(c for c in frame.columns if pd.api.types.is_integer_dtype(frame[c])
                   and c != cfg.data.target)
    frame[integer] = frame[integer].astype("float64")
    frame.loc[0, integer] = float("nan")
    frame.to_parquet(path, index=False)
    ingested = ingest(cfg, RUN_DATE)
    assert not ingested.views
    assert ingested.frames[day][0][integer].dtype == "float64"
    other = ingested.frames[ingested.expected[0]][0]
    pd.testing.assert_frame_equal(other, read_file(ingested.files[ingested.expected[0]][0], cfg.data.format))
    assert pd.api.types.is_integer_dtype(other[integer])


def test_ingest_gives_arrow_an_allocator_that_returns_memory_unless_the_user_chose_one():
    """mimalloc kept ~0.7x the frame of freed decode buffers at 10M rows; ingest switches Arrow to
    jemalloc returning pages at once, and leaves a pool the user named in the environment alone."""
    import os
    import subprocess
    import sys

    code = ("import pyarrow as pa; from gates.ingest import use_returning_allocator; "
            "print(use_returning_allocator(), pa.default_memory_pool().backend_name)")
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    ours = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert ours.stdout.split() == ["jemalloc", "jemalloc"]
    chosen = subprocess.run([sys.executable, "-c", code], env={**env, "ARROW_DEFAULT_MEMORY_POOL": "system"},
                            capture_output=True, text=True, check=True)
    assert chosen.stdout.split() == ["system", "system"]
