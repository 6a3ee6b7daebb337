"""Are the night's extracts in? The extracts of business date D are due on D+1 at the hour
NIGHTJAR_EXTRACTS_DUE_HOUR (default 6) in NIGHTJAR_DEFAULT_TIMEZONE; a date is overdue when
its folder is not complete (no _SUCCESS) or lacks an extract by then."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

from pipelines.landing import list_folders


def latest_due_date(now: dt.datetime, due_hour: int, timezone: str) -> dt.date:
    """The newest business date whose extracts should have landed by `now`."""
    local = now.astimezone(zoneinfo.ZoneInfo(timezone))
    today = local.date()
    return today - dt.timedelta(days=1 if local.hour >= due_hour else 2)


def due_at(day: dt.date, due_hour: int, timezone: str) -> dt.datetime:
    return dt.datetime.combine(
        day + dt.timedelta(days=1), dt.time(due_hour), zoneinfo.ZoneInfo(timezone)
    )


@dataclass(frozen=True)
class Lateness:
    extract: str
    expected: dt.date  # the newest date due
    latest_landed: dt.date | None  # the newest complete folder holding the extract
    overdue: list[dt.date]  # due, and not landed (the newest few)
    hours_late: float

    @property
    def ok(self) -> bool:
        return not self.overdue

    def describe(self, due_hour: int, timezone: str) -> str:
        landed = self.latest_landed.isoformat() if self.latest_landed else "none yet"
        if self.ok:
            return f"{self.extract}: {self.expected} landed on time (latest complete: {landed})."
        dates = ", ".join(d.isoformat() for d in self.overdue)
        return (
            f"{self.extract} is overdue for {dates}: due by {due_hour}:00 {timezone} the next "
            f"day, now {self.hours_late:.1f} h late (latest complete folder: {landed}). "
            "Ask the exporter, or see whether the folder lacks its _SUCCESS file."
        )


def lateness(
    landing: Path,
    extract: str,
    now: dt.datetime,
    due_hour: int,
    timezone: str,
    look_back_days: int = 7,
) -> Lateness:
    """How late `extract` is: the due dates of the last `look_back_days` without a complete
    folder holding the extract (csv or parquet)."""
    expected = latest_due_date(now, due_hour, timezone)
    landed = {
        f.business_date for f in list_folders(landing) if f.complete and f.extract_file(extract)
    }
    since = expected - dt.timedelta(days=look_back_days - 1)
    if landed:
        # Before the first folder ever landed nothing was due: a new installation starts
        # from its first folder, not a week of alarms.
        since = max(since, min(landed))
    overdue = [
        since + dt.timedelta(days=n)
        for n in range((expected - since).days + 1)
        if since + dt.timedelta(days=n) not in landed
    ]
    late = (now - due_at(overdue[0], due_hour, timezone)).total_seconds() / 3600 if overdue else 0
    return Lateness(extract, expected, max(landed, default=None), overdue, late)
