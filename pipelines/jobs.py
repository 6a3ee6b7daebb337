"""The nightly job, its schedule, and the sensor that starts a run when a date lands."""

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    build_schedule_from_partitioned_job,
    define_asset_job,
    in_process_executor,
    sensor,
)

from pipelines.landing import list_folders
from pipelines.partitions import nightly_partitions
from pipelines.settings import load_settings

# In-process: one DuckDB writer at a time, and no process start-up per asset.
nightly_job = define_asset_job(
    name="nightly_job",
    selection=AssetSelection.all(),
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
    valid = set(nightly_partitions.get_partition_keys())
    ready = [
        folder.business_date.isoformat()
        for folder in list_folders(settings.landing)
        if folder.complete and folder.business_date.isoformat() > cursor
    ]
    ready = [key for key in ready if key in valid]
    if not ready:
        return SkipReason(
            f"No new complete folder in {settings.landing} after {cursor or 'start'}."
        )
    # run_key = the date: a folder starts one run, however often the sensor looks. Older
    # dates in a catch-up still load, but only the latest one sends (CONTRACT §5).
    for key in ready:
        yield RunRequest(run_key=key, partition_key=key)
    context.update_cursor(max(ready))
