"""The sample landing's calendar (pipelines/demo/sample_data.py): the window of dates it
covers, how busy each day is (weekday, month, Black Friday, Christmas), the hour of day
people shop at, and date arithmetic on arrays of days since the epoch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

DAY = 86_400
EPOCH = date(1970, 1, 1)


# Online retail traffic by UTC hour: quiet nights, evening peak.
HOURLY = np.array(
    [2, 1.5, 1, 1, 1, 1.5, 2.5, 3.5, 4.5, 5, 5.5, 6, 6.5, 6, 5.5, 5.5, 6, 6.5, 7.5, 8, 8, 7, 5, 3]
)
HOURLY_P = HOURLY / HOURLY.sum()
WEEKDAY = (1.0, 0.97, 0.95, 0.97, 1.02, 1.08, 1.12)
MONTH = (0.85, 0.85, 0.95, 0.95, 1.0, 0.95, 0.95, 1.0, 1.0, 1.05, 1.35, 1.55)


@dataclass(frozen=True)
class Window:
    start: date
    end: date
    days: int
    season: np.ndarray

    @classmethod
    def ending(cls, end: date, days: int) -> Window:
        start = end - timedelta(days=days - 1)
        return cls(start, end, days, _season(start, days))

    @property
    def start_s(self) -> int:
        return (self.start - EPOCH).days * DAY

    def day_start(self, d: int) -> int:
        return self.start_s + d * DAY

    def date(self, d: int) -> date:
        return self.start + timedelta(days=d)


def _season(start: date, days: int) -> np.ndarray:
    out = np.empty(days)
    for d in range(days):
        day = start + timedelta(days=d)
        out[d] = WEEKDAY[day.weekday()] * MONTH[day.month - 1] * _holiday_factor(day)
    return out


def _holiday_factor(day: date) -> float:
    if day.month == 12:
        return 0.7 if day.day >= 25 else 1.0
    if day.month != 11:
        return 1.0
    first_thursday = 1 + (3 - date(day.year, 11, 1).weekday()) % 7
    after_black_friday = day.day - (first_thursday + 22)
    return {0: 2.5, 1: 1.6, 2: 1.6, 3: 2.0}.get(after_black_friday, 1.0)


def time_of_day(rng: np.random.Generator, k: int) -> np.ndarray:
    return rng.choice(24, size=k, p=HOURLY_P) * 3600 + rng.integers(0, 3600, size=k)


def shift_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a common year
        return day.replace(year=day.year + years, day=28)


def ymd_days(y: np.ndarray, m: np.ndarray | int, d: np.ndarray | int) -> np.ndarray:
    years = (np.asarray(y) - 1970).astype("datetime64[Y]")
    months = years.astype("datetime64[M]") + (np.asarray(m) - 1)
    return (months.astype("datetime64[D]") + (np.asarray(d) - 1)).astype(np.int64)


def leap_years(rng: np.random.Generator, k: int, end_year: int) -> np.ndarray:
    y = end_year - rng.integers(20, 80, size=k)
    y -= y % 4
    return y - np.where((y % 100 == 0) & (y % 400 != 0), 4, 0)
