"""Warehouse assets: the dbt project (staging, intermediate, marts, cohorts) run as of the
partition's business date, with dbt tests as Dagster asset checks."""

import datetime as dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, Output
from dagster_dbt import (
    DagsterDbtCliRuntimeError,
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from pipelines.dbt_setup import campaigns_var, dbt_project, load_manifest
from pipelines.partitions import ONE_RUN_PER_DATE, WAREHOUSE_POOL, nightly_partitions
from pipelines.resources import NightjarResource
from pipelines.settings import Settings
from pipelines.warehouse import connect


class NightjarDbtTranslator(DagsterDbtTranslator):
    """Cohort models form the `cohorts` group, the send decisions join the `sends`; every
    other model is the `warehouse`."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        if "cohorts" in fqn:
            return "cohorts"
        if "decisions" in fqn:
            return "sends"
        return "warehouse"


translator = NightjarDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def dbt_build_args(business_date: str, settings: Settings) -> list[str]:
    variables = {
        **settings.dbt_vars,
        "as_of_date": business_date,
        "default_timezone": settings.default_timezone,
        "campaigns": campaigns_var(load_manifest()),
        # Send times are scheduled from now: a message is never due in the past.
        "send_after": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    # Unit tests prove the SQL, not the night's data: they run in `make test`, not nightly.
    return ["build", "--exclude-resource-type", "unit_test", "--vars", json.dumps(variables)]


@dbt_assets(
    manifest=dbt_project().manifest_path,
    project=dbt_project(),
    partitions_def=nightly_partitions,
    dagster_dbt_translator=translator,
    pool=WAREHOUSE_POOL,
    backfill_policy=ONE_RUN_PER_DATE,
)
def warehouse_models(
    context: AssetExecutionContext, dbt: DbtCliResource, nightjar: NightjarResource
):
    settings = nightjar.settings()
    # profiles.yml reads the path from here; an absolute path, since dbt runs in its folder.
    os.environ["NIGHTJAR_WAREHOUSE"] = str(settings.warehouse)
    args = dbt_build_args(context.partition_key, settings)
    events, failure = [], None
    try:
        # DuckDB has one writer: collect dbt's events until its process has let go of the
        # file, then count the tables' rows ourselves.
        events.extend(dbt.cli(args, context=context).stream())
    except DagsterDbtCliRuntimeError as error:
        failure = error
    yield from _with_row_counts(context, events, settings.warehouse)
    if failure:
        raise failure


def _with_row_counts(context: AssetExecutionContext, events: list, warehouse: Path):
    """Tables' row counts as `dagster/row_count`, so cohort sizes plot night by night."""
    tables = {
        event.output_name: context.asset_key_for_output(event.output_name).path[-1]
        for event in events
        if isinstance(event, Output)
    }
    with connect(warehouse) as con:
        existing = {
            row[0]
            for row in con.execute(
                "select table_name from duckdb_tables() where schema_name = 'main'"
            ).fetchall()
        }
        counts = {
            output: con.execute(f'select count(*) from main."{table}"').fetchall()[0][0]
            for output, table in tables.items()
            if table in existing
        }
    for event in events:
        if isinstance(event, Output) and event.output_name in counts:
            event = event.with_metadata(
                {**event.metadata, "dagster/row_count": counts[event.output_name]}
            )
        yield event
