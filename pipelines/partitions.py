"""The nightly partitions: one per business date."""

from dagster import DailyPartitionsDefinition

# end_offset=1 lets today's folder run as soon as it lands (exporters in time zones ahead of
# UTC finish a business date before UTC midnight).
nightly_partitions = DailyPartitionsDefinition(start_date="2020-01-01", end_offset=1)

# Every asset that opens the DuckDB file shares this pool; give it a limit of 1 in
# dagster.yaml (see README) so one writer at a time touches the warehouse.
WAREHOUSE_POOL = "nightjar_warehouse"
