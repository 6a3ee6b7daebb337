"""Freshness checks: one per required extract, failing when a business date's file is overdue
(the optional order lines may never land: no check)."""

import datetime as dt

from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, asset_check

from assets.shared.resources import NightjarResource
from models.extracts import REQUIRED_EXTRACTS
from models.freshness import lateness


def build_freshness_check(extract: str):
    @asset_check(
        asset=AssetKey(["raw", extract]),
        name="landed_on_time",
        description=f"Fails when a business date's {extract} extract has not landed (complete "
        "folder, _SUCCESS written) by NIGHTJAR_EXTRACTS_DUE_HOUR the next day, in "
        "NIGHTJAR_DEFAULT_TIMEZONE, or when any date since the first folder never landed (a "
        "gap in the history). Run by freshness_job, every hour once freshness_schedule is on.",
        blocking=False,
    )
    def _landed_on_time(nightjar: NightjarResource) -> AssetCheckResult:
        settings = nightjar.settings()
        late = lateness(
            settings.landing,
            extract,
            dt.datetime.now(dt.UTC),
            settings.extracts_due_hour,
            settings.default_timezone,
        )
        return AssetCheckResult(
            passed=late.ok,
            severity=AssetCheckSeverity.ERROR,
            description=late.describe(settings.extracts_due_hour, settings.default_timezone),
            metadata={
                "expected_date": late.expected.isoformat(),
                "latest_landed": late.latest_landed.isoformat() if late.latest_landed else "none",
                "overdue_dates": len(late.overdue),
                "history_gaps": len(late.gaps),
                "hours_late": round(late.hours_late, 1),
            },
        )

    return _landed_on_time


freshness_checks = [build_freshness_check(extract) for extract in REQUIRED_EXTRACTS]
