"""Demo data: daily partitions of a churn problem with weekly and seasonal cycles.

Each partition is generated from (seed, date) alone, so a partition is the same whenever and in
whatever order it is written: appending tomorrow's partition never changes yesterday's. The
cycles are there on purpose: clean runs must see benign drift (weekends, seasons, growth) and
pass, so the gates are tested for discrimination, not only for alarm.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REGIONS = np.array(["north", "south", "east", "west"])
REGION_P = np.array([0.35, 0.25, 0.25, 0.15])
PLANS = np.array(["basic", "standard", "premium"])
PLAN_P = np.array([0.5, 0.35, 0.15])
PLAN_PRICE = np.array([29.0, 59.0, 99.0])
CUSTOMERS = 50_000

NUMERIC = ["tenure_months", "monthly_charges", "support_calls", "usage_minutes", "days_since_login",
           "month", "weekday"]
CATEGORICAL = ["region", "plan", "is_promo", "is_holiday"]
TREND_START = dt.date(2024, 1, 1)  # prices and usage grow from here, a few percent a year


def us_federal_holidays(year: int) -> set[dt.date]:
    """Fixed-date and Monday/Thursday US federal holidays of a year (a calendar, not a library)."""

    def nth(month: int, weekday: int, n: int) -> dt.date:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))

    last_may = dt.date(year, 5, 31)
    return {dt.date(year, 1, 1), dt.date(year, 7, 4), dt.date(year, 11, 11), dt.date(year, 12, 25),
            nth(9, 0, 1), nth(11, 3, 4), nth(1, 0, 3), nth(2, 0, 3), nth(10, 0, 2),
            last_may - dt.timedelta(days=last_may.weekday())}
COLUMNS = ["event_time", "customer_id", *NUMERIC, *CATEGORICAL, "churned"]


@dataclass(frozen=True)
class Customers:
    """Attributes that belong to a customer, not to a day."""

    region: np.ndarray
    plan: np.ndarray
    signup_age_days: np.ndarray
    loyalty: np.ndarray

    @classmethod
    def make(cls, seed: int, n: int = CUSTOMERS) -> Customers:
        rng = np.random.default_rng([seed, 0])
        return cls(
            region=rng.choice(len(REGIONS), size=n, p=REGION_P),
            plan=rng.choice(len(PLANS), size=n, p=PLAN_P),
            signup_age_days=rng.gamma(2.0, 300.0, size=n),
            loyalty=rng.normal(0.0, 1.0, size=n),
        )


def rows_for_day(day: dt.date, rows_per_day: int, seed: int) -> int:
    """Rows vary by weekday (quieter weekends), season and slow growth, plus noise."""
    rng = np.random.default_rng([seed, day.toordinal(), 1])
    weekday = 0.8 if day.weekday() >= 5 else 1.05
    season = 1.0 + 0.1 * np.sin(2 * np.pi * day.timetuple().tm_yday / 365.25)
    growth = 1.0 + 0.0005 * (day.toordinal() - dt.date(2026, 1, 1).toordinal())
    return max(1, int(rows_per_day * weekday * season * growth * rng.normal(1.0, 0.03)))


def generate_day(day: dt.date, rows_per_day: int = 2000, seed: int = 7,
                 customers: Customers | None = None) -> pd.DataFrame:
    """One day's events; the label depends on the features with noise."""
    customers = customers or Customers.make(seed)
    n = rows_for_day(day, rows_per_day, seed)
    rng = np.random.default_rng([seed, day.toordinal(), 2])
    ids = rng.integers(0, len(customers.region), size=n)
    region = customers.region[ids]
    plan = customers.plan[ids]
    loyalty = customers.loyalty[ids]
    doy = day.timetuple().tm_yday
    season = np.sin(2 * np.pi * doy / 365.25)  # a yearly cycle: peaks in spring, lows in autumn
    winter = np.cos(2 * np.pi * doy / 365.25)  # a second phase: high in winter
    weekend = day.weekday() >= 5
    holiday = day in us_federal_holidays(day.year)
    years = (day - TREND_START).days / 365.25  # trend: prices and usage creep up

    tenure = np.clip((customers.signup_age_days[ids] + (day.toordinal() % 30)) / 30.4, 0, 120).astype("int64")
    charges = (PLAN_PRICE[plan] * (1.0 + 0.03 * years) * rng.normal(1.0, 0.08, size=n)
               + rng.normal(0, 3, size=n))
    support = rng.poisson(np.exp(0.2 + 0.15 * winter - 0.35 * loyalty).clip(0.05, 5.0))
    usage = rng.gamma(4.0, 45.0 * (1.25 if weekend or holiday else 1.0) * (1.0 + 0.15 * season)
                      * (1.0 + 0.04 * years), size=n)
    login = rng.exponential(np.exp(1.2 - 0.4 * loyalty + 0.15 * winter), size=n)
    login[rng.random(n) < 0.02] = np.nan
    promo = rng.random(n) < (0.12 + 0.04 * season)

    logit = (
        -2.3
        - 0.035 * np.minimum(tenure, 48)
        + 0.012 * (charges - 50)
        + 0.42 * support
        - 0.004 * (usage - 180)
        + 0.18 * np.log1p(np.nan_to_num(login, nan=3.0))
        - 0.5 * promo
        + 0.2 * (plan == 0)
        - 0.35 * loyalty
        + 0.3 * winter  # churn peaks after the winter bills
        + 0.25 * holiday
        # Non-linear effects a tree model finds and a linear baseline misses.
        + 1.3 * (tenure < 6)
        + 1.1 * ((support >= 3) & (plan == 0))
        + 0.9 * ((usage < 50) | (usage > 420))
        - 0.9 * ((charges > 90) & (tenure > 24))
    )
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int64")
    seconds = np.sort(rng.integers(0, 86_400, size=n))
    start = pd.Timestamp(day)
    return pd.DataFrame(
        {
            "event_time": start + pd.to_timedelta(seconds, unit="s"),
            "customer_id": ids.astype("int64"),
            "tenure_months": tenure,
            "monthly_charges": charges.round(2),
            "support_calls": support.astype("int64"),
            "usage_minutes": usage.round(1),
            "days_since_login": login.round(2),
            "region": pd.array(REGIONS[region], dtype="str"),
            "plan": pd.array(PLANS[plan], dtype="str"),
            "is_promo": promo,
            "month": np.full(n, day.month, dtype="int64"),
            "weekday": np.full(n, day.weekday(), dtype="int64"),
            "is_holiday": np.full(n, holiday, dtype=bool),
            "churned": churned,
        }
    )


def partition_path(root: Path, day: dt.date, key: str = "date", fmt: str = "parquet") -> Path:
    return Path(root) / f"{key}={day.isoformat()}" / f"part-0.{fmt}"


def write_frame(frame: pd.DataFrame, path: Path, fmt: str = "parquet") -> Path:
    """Write atomically: a reader never sees a half-written partition."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    tmp.replace(path)
    return path


def write_demo_data(
    root: Path,
    end: dt.date,
    days: int = 90,
    rows_per_day: int = 2000,
    seed: int = 7,
    fmt: str = "parquet",
    key: str = "date",
    overwrite: bool = False,
) -> list[Path]:
    """Write `days` daily partitions ending at `end` (inclusive); existing ones are kept."""
    customers = Customers.make(seed)
    written = []
    for offset in range(days - 1, -1, -1):
        day = end - dt.timedelta(days=offset)
        path = partition_path(root, day, key, fmt)
        if path.exists() and not overwrite:
            continue
        write_frame(generate_day(day, rows_per_day, seed, customers), path, fmt)
        written.append(path)
    return written
