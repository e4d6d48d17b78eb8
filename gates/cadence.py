"""Partition periods per cadence: daily, weekly and monthly (issue 11.7).

A monthly partition is named `date=YYYY-MM`, or by a date inside the month (month-end dates
like `date=2026-05-31` are common); it stands for its whole month and is keyed by the month's
first day. A run trains on complete months only: the newest expected month is the last one that
ended before the run date, and the window holds round(window_days / 30.44) months.
"""

from __future__ import annotations

import datetime as dt
import re

from gates.config import Cadence

DAYS_PER_MONTH = 365.25 / 12
PARTITION_VALUE = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def partition_date(value: str, cadence: Cadence | None = None) -> dt.date | None:
    """The date a partition value stands for, or None if it is not a date.

    `YYYY-MM` is a month (its first day) whatever the cadence; with the monthly cadence any date
    of a month (a month-end date, say) stands for that month.
    """
    match = PARTITION_VALUE.match(value.strip())
    if not match:
        return None
    year, month, day = match.groups()
    try:
        date = dt.date(int(year), int(month), int(day) if day else 1)
    except ValueError:
        return None
    return month_start(date) if cadence is Cadence.MONTHLY else date


def monthly_partitions(run_date: dt.date, window_days: int) -> list[dt.date]:
    """The complete months before the run date that the window covers (at least one)."""
    months = max(1, round(window_days / DAYS_PER_MONTH))
    newest = add_months(month_start(run_date), -1)
    return [add_months(newest, -k) for k in range(months - 1, -1, -1)]
