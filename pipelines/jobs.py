"""The nightly job, its schedule, and the sensor that starts a run when a date lands."""

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SkipReason,
    build_schedule_from_partitioned_job,
    define_asset_job,
    in_process_executor,
    sensor,
)

from assets.ingest.freshness import freshness_checks
from assets.shared.partitions import nightly_partitions
from models.landing import list_folders
from models.settings import load_settings

# In-process: one DuckDB writer at a time, and no process start-up per asset.
# Freshness is about now, not the date a run builds: it has a schedule of its own.
nightly_job = define_asset_job(
    name="nightly_job",
    selection=AssetSelection.all() - AssetSelection.checks(*freshness_checks),
    executor_def=in_process_executor,
    description="Load the night's extracts, rebuild the customer view and cohorts, and send.",
)

# Runs at 06:00 UTC for the previous business date, if the sensor has not already run it.
nightly_schedule = build_schedule_from_partitioned_job(
    nightly_job,
    hour_of_day=6,
    name="nightly_schedule",
    default_status=DefaultScheduleStatus.STOPPED,
)


# The extracts' freshness checks alone, every hour: a late export is seen before the night
# would have run, not only when it runs.
freshness_job = define_asset_job(
    name="freshness_job",
    selection=AssetSelection.checks(*freshness_checks),
    executor_def=in_process_executor,
    description="Check that every extract of the latest business date due has landed.",
)
freshness_schedule = ScheduleDefinition(
    job=freshness_job,
    cron_schedule="5 * * * *",
    name="freshness_schedule",
    default_status=DefaultScheduleStatus.STOPPED,
)


@sensor(
    job=nightly_job,
    name="landing_sensor",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,
    description="Starts the nightly run for a business date when its _SUCCESS file appears.",
)
def landing_sensor(context: SensorEvaluationContext):
    settings = load_settings()
    cursor = context.cursor or ""
    runnable = set(nightly_partitions.get_partition_keys())
    ready = sorted(
        key
        for key in (
            f.business_date.isoformat() for f in list_folders(settings.landing) if f.complete
        )
        if key > cursor and key in runnable
    )
    if not ready:
        return SkipReason(
            f"No new complete folder in {settings.landing} after {cursor or 'start'}."
        )
    # One run for the newest date: it loads every older complete folder not loaded yet, so
    # several folders landing at once (a catch-up) make one run, and only that date sends.
    # run_key = the date, so a folder never starts a second run.
    context.update_cursor(ready[-1])
    return RunRequest(run_key=ready[-1], partition_key=ready[-1])
