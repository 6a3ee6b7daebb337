"""The night's figures a marketer follows in the Dagster UI, measured on the build before it
is published: `main` still holds the previous night's tables to compare with."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import duckdb
from dagster import TableColumn, TableSchema

from assets.warehouse.publish import BUILD_SCHEMA, PUBLISHED_SCHEMA, tables_in


def cohort_changes(
    con: duckdb.DuckDBPyConnection, cohorts: Iterable[str], business_date: dt.date
) -> dict[str, dict[str, Any]]:
    """Per cohort built tonight: how many entered and left since the last published date
    (everyone entered on a first night). Nothing on a re-run or a past date: there is no
    earlier night in `main` to compare with."""
    changes = {}
    built, published = tables_in(con, BUILD_SCHEMA), tables_in(con, PUBLISHED_SCHEMA)
    for cohort in cohorts:
        if cohort not in built:
            continue
        tonight = f'{BUILD_SCHEMA}."{cohort}"'
        if cohort not in published:
            size = con.execute(f"select count(*) from {tonight}").fetchall()[0][0]
            changes[cohort] = {"entered": size, "left": 0, "compared_with": "nothing (first)"}
            continue
        before = f'{PUBLISHED_SCHEMA}."{cohort}"'
        previous = con.execute(f"select max(as_of_date) from {before}").fetchall()[0][0]
        if previous is not None and previous >= business_date:
            continue
        entered, left = con.execute(
            f"""
            select
                (select count(*) from {tonight}
                 where contact_id not in (select contact_id from {before})),
                (select count(*) from {before}
                 where contact_id not in (select contact_id from {tonight}))
            """
        ).fetchall()[0]
        changes[cohort] = {
            "entered": entered,
            "left": left,
            "compared_with": previous.isoformat() if previous else "nothing (empty)",
        }
    return changes


def audience_figures(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Contacts in the customer view, and how many of them may be mailed."""
    if "audience" not in tables_in(con, BUILD_SCHEMA):
        return {}
    contacts, mailable = con.execute(
        f"""
        select count(*) filter (where not is_erased), count(*) filter (where is_mailable)
        from {BUILD_SCHEMA}.audience
        """
    ).fetchall()[0]
    return {"contacts": contacts, "mailable_contacts": mailable}


def column_schemas(
    con: duckdb.DuckDBPyConnection, models: Iterable[str], manifest: dict[str, Any]
) -> dict[str, TableSchema]:
    """Each model's columns as DuckDB built them, with the descriptions of its YAML: the
    types dbt's manifest lacks unless every column declares one."""
    described = {
        node["name"]: {name: c.get("description") or "" for name, c in node["columns"].items()}
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
    }
    rows = con.execute(
        """
        select table_name, column_name, data_type from information_schema.columns
        where table_schema = $schema order by table_name, ordinal_position
        """,
        {"schema": BUILD_SCHEMA},
    ).fetchall()
    wanted = set(models)
    columns: dict[str, list[TableColumn]] = {}
    for table, column, data_type in rows:
        if table in wanted:
            description = described.get(table, {}).get(column) or None
            columns.setdefault(table, []).append(
                TableColumn(column, data_type.lower(), description=description)
            )
    return {table: TableSchema(columns=cols) for table, cols in columns.items()}
