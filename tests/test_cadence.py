"""Monthly cadence (issue 11.7): `date=YYYY-MM` and month-end partitions, completeness judged per month."""

from __future__ import annotations

import datetime as dt
import shutil

import pandas as pd
import pytest

from gates.cadence import monthly_partitions, partition_date
from gates.config import Cadence, parse_config
from gates.data_gates import check_partitions
from gates.demo_data import Customers, generate_day, write_frame
from gates.ingest import ingest
from tests.conftest import demo_config

RUN_DATE = dt.date(2026, 7, 15)
MONTHS = [dt.date(2025, m, 1) for m in range(7, 13)] + [dt.date(2026, m, 1) for m in range(1, 7)]


def test_partition_values_map_to_their_month():
    assert partition_date("2026-05", Cadence.MONTHLY) == dt.date(2026, 5, 1)
    assert partition_date("2026-05-31", Cadence.MONTHLY) == dt.date(2026, 5, 1)
    assert partition_date("2026-05-31", Cadence.DAILY) == dt.date(2026, 5, 31)
    assert partition_date("2026-13", Cadence.MONTHLY) is None
    assert partition_date("latest", Cadence.MONTHLY) is None


def test_a_run_trains_on_the_complete_months_before_it():
    assert monthly_partitions(RUN_DATE, 365) == MONTHS  # July 2026 is not over: June is the newest
    assert monthly_partitions(dt.date(2026, 1, 1), 60) == [dt.date(2025, 11, 1), dt.date(2025, 12, 1)]


def _month_end(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)


@pytest.fixture(scope="module", params=["YYYY-MM", "month-end"])
def monthly_data(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"monthly-{request.param}") / "churn"
    customers = Customers.make(7)
    for month in MONTHS:
        end = _month_end(month)
        days = [month + dt.timedelta(days=k) for k in range((end - month).days + 1)]
        frame = pd.concat([generate_day(d, 40, 7, customers) for d in days], ignore_index=True)
        value = month.strftime("%Y-%m") if request.param == "YYYY-MM" else end.isoformat()
        write_frame(frame, root / f"date={value}" / "part-0.parquet")
    return root


def _check(tmp_path, data):
    raw = demo_config(tmp_path, data, **{"data.cadence": "monthly", "data.window_days": 365,
                                         "split.test_days": 30})
    cfg = parse_config(raw)
    return check_partitions(ingest(cfg, RUN_DATE), cfg.gates.partitions, cfg.data.cadence)


def test_complete_months_pass(tmp_path, monthly_data):
    result = _check(tmp_path, monthly_data)
    assert result.status == "pass", result.summary
    assert result.measured["expected"] == 12 and result.measured["present"] == 12


def test_a_missing_month_blocks_naming_it(tmp_path, monthly_data):
    data = tmp_path / "churn"
    shutil.copytree(monthly_data, data)
    gone = next(p for p in data.iterdir() if p.name.startswith("date=2026-03"))
    shutil.rmtree(gone)
    result = _check(tmp_path, data)
    assert result.blocks and "missing partitions: 2026-03-01" in result.summary, result.summary


def test_last_month_not_delivered_is_stale(tmp_path, monthly_data):
    data = tmp_path / "churn"
    shutil.copytree(monthly_data, data)
    shutil.rmtree(next(p for p in data.iterdir() if p.name.startswith("date=2026-06")))
    result = _check(tmp_path, data)
    assert result.blocks and "stale data" in result.summary, result.summary
