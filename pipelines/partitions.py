"""The nightly partitions: one per business date."""

from dagster import DailyPartitionsDefinition

# A business date becomes runnable once it has ended in UTC; the schedule runs the previous
# date at 06:00 UTC and the sensor runs a date as soon as it is runnable and has landed.
nightly_partitions = DailyPartitionsDefinition(start_date="2020-01-01")

# Every asset that opens the DuckDB file shares this pool; give it a limit of 1 in
# dagster.yaml (see README) so one writer at a time touches the warehouse.
WAREHOUSE_POOL = "nightjar_warehouse"
