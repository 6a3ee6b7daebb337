"""Are the night's extracts in? The extracts of business date D are due on D+1 at the hour
NIGHTJAR_EXTRACTS_DUE_HOUR (default 6) in NIGHTJAR_DEFAULT_TIMEZONE; a date is overdue when
its folder is not complete (no _SUCCESS) or lacks an extract by then. Further back, a date
missing between the first folder and the last week is a gap in the history."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from models.landing import list_folders


def latest_due_date(now: dt.datetime, due_hour: int, timezone: str) -> dt.date:
    """The newest business date whose extracts should have landed by `now`."""
    local = now.astimezone(zoneinfo.ZoneInfo(timezone))
    today = local.date()
    return today - dt.timedelta(days=1 if local.hour >= due_hour else 2)


def due_at(day: dt.date, due_hour: int, timezone: str) -> dt.datetime:
    return dt.datetime.combine(
        day + dt.timedelta(days=1), dt.time(due_hour), zoneinfo.ZoneInfo(timezone)
    )


def name_dates(dates: Sequence[dt.date], limit: int = 10) -> str:
    """`2025-11-03, 2025-11-07 and 12 more`: a long run of dates stays one readable line."""
    shown = ", ".join(d.isoformat() for d in dates[:limit])
    more = len(dates) - limit
    return f"{shown} and {more} more" if more > 0 else shown


def missing_dates(landed: set[dt.date], first: dt.date, last: dt.date) -> list[dt.date]:
    """The dates from `first` to `last`, both included, that are not in `landed`."""
    every = (first + dt.timedelta(days=n) for n in range((last - first).days + 1))
    return [day for day in every if day not in landed]


@dataclass(frozen=True)
class Lateness:
    extract: str
    expected: dt.date  # the newest date due
    latest_landed: dt.date | None  # the newest complete folder holding the extract
    overdue: list[dt.date]  # due, and not landed (the newest few)
    hours_late: float
    # not landed, older than the newest few and newer than the first folder: a hole in the
    # history that a catch-up would skip without a word
    gaps: list[dt.date] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.overdue and not self.gaps

    def describe(self, due_hour: int, timezone: str) -> str:
        landed = self.latest_landed.isoformat() if self.latest_landed else "none yet"
        if not self.overdue:
            text = f"{self.extract}: {self.expected} landed on time (latest complete: {landed})."
        else:
            text = (
                f"{self.extract} is overdue for {name_dates(self.overdue)}: due by "
                f"{due_hour}:00 {timezone} the next day, now {self.hours_late:.1f} h late "
                f"(latest complete folder: {landed}). Ask the exporter, or see whether the "
                "folder lacks its _SUCCESS file."
            )
        if self.gaps:
            text += (
                f" Missing from the history: {name_dates(self.gaps)} ({len(self.gaps)} "
                "date(s) between the first folder and the last week never landed complete). "
                "Ask the exporter to land them; a day without data still needs its folder, "
                "its files and _SUCCESS."
            )
        return text


def lateness(
    landing: Path,
    extract: str,
    now: dt.datetime,
    due_hour: int,
    timezone: str,
    look_back_days: int = 7,
) -> Lateness:
    """How late `extract` is: the due dates of the last `look_back_days` without a complete
    folder holding the extract (csv or parquet), and the older dates since the first such
    folder without one (gaps)."""
    expected = latest_due_date(now, due_hour, timezone)
    landed = {
        f.business_date for f in list_folders(landing) if f.complete and f.extract_file(extract)
    }
    since = expected - dt.timedelta(days=look_back_days - 1)
    gaps = []
    if landed:
        # Before the first folder ever landed nothing was due: a new installation starts
        # from its first folder, not a week of alarms.
        since = max(since, min(landed))
        gaps = missing_dates(landed, min(landed), since - dt.timedelta(days=1))
    overdue = missing_dates(landed, since, expected)
    late = (now - due_at(overdue[0], due_hour, timezone)).total_seconds() / 3600 if overdue else 0
    return Lateness(extract, expected, max(landed, default=None), overdue, late, gaps)
