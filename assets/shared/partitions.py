"""The nightly partitions: one per business date."""

import datetime as dt
import warnings

from dagster import AssetExecutionContext, BackfillPolicy, BetaWarning, DailyPartitionsDefinition

from models.landing import first_business_date
from models.settings import load_settings

# A business date becomes runnable once it has ended in UTC; the schedule runs the previous
# date at 06:00 UTC and the sensor runs a date as soon as it is runnable and has landed.
# They start at the first landed date (or NIGHTJAR_FIRST_DATE), read as the definitions load:
# a history landed later, before that date, shows once the code location is reloaded.
_settings = load_settings()
nightly_partitions = DailyPartitionsDefinition(
    start_date=first_business_date(_settings.landing, _settings.first_date).isoformat()
)

# Every asset that opens the DuckDB file shares this pool; give it a limit of 1 in
# dagster.yaml (see README) so one writer at a time touches the warehouse.
WAREHOUSE_POOL = "nightjar_warehouse"

# A backfill is one run per date, for every asset: each date's run decides its own sends.
# (dagster marks `backfill_policy` on @asset as beta; the behaviour is what we rely on.)
ONE_RUN_PER_DATE = BackfillPolicy.multi_run(1)
warnings.filterwarnings(
    "ignore", message="Parameter `backfill_policy` of function `asset`", category=BetaWarning
)


def business_date(context: AssetExecutionContext) -> dt.date:
    """The run's business date: its partition, parsed here once for every nightly asset."""
    return dt.date.fromisoformat(context.partition_key)
