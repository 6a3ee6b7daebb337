"""All or nothing: dbt builds into the `build` schema; only a build whose every model and
test passed is published to `main`, where the sends, the checks and every reader look.

dbt alone replaces each model as it goes, so a build that fails half way would leave a new
customer_360 beside yesterday's cohorts. Publishing copies the night's tables in one DuckDB
transaction instead: readers see all of tonight's tables or all of yesterday's, even if the
process is killed mid-copy."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import duckdb

BUILD_SCHEMA = "build"  # profiles.yml: where dbt writes
PUBLISHED_SCHEMA = "main"
_TABLE_MATERIALIZATIONS = {"table", "incremental"}


def published_models(manifest: dict[str, Any]) -> set[str]:
    """Models readers query: the tables. Views (staging, intermediate) stay in the build
    schema, where they belong to dbt."""
    return {
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and node["config"].get("materialized") in _TABLE_MATERIALIZATIONS
    }


def publish(con: duckdb.DuckDBPyConnection, models: Iterable[str]) -> dict[str, int]:
    """Copy the built tables into the published schema in one transaction; returns each
    published table's row count."""
    built = {
        row[0]
        for row in con.execute(
            "select table_name from duckdb_tables() where schema_name = ?", [BUILD_SCHEMA]
        ).fetchall()
    }
    tables = sorted(set(models) & built)
    con.execute("begin transaction")
    try:
        for table in tables:
            con.execute(
                f'create or replace table {PUBLISHED_SCHEMA}."{table}" as '
                f'select * from {BUILD_SCHEMA}."{table}"'
            )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return {
        table: con.execute(f'select count(*) from {PUBLISHED_SCHEMA}."{table}"').fetchall()[0][0]
        for table in tables
    }
