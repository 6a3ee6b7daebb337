"""All or nothing: dbt builds into the `build` schema; only a build whose every model and
test passed is published to `main`, where the sends, the checks and every reader look.

dbt alone replaces each model as it goes, so a build that fails half way would leave a new
customer_360 beside yesterday's cohorts. Publishing copies the night's tables in one DuckDB
transaction instead: readers see all of tonight's tables or all of yesterday's, even if the
process is killed mid-copy."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from typing import Any

import duckdb


class UnpublishedBuild(Exception):
    """A partial build would stand on the tables of a build that was never published."""


BUILD_SCHEMA = "build"  # profiles.yml: where dbt writes
PUBLISHED_SCHEMA = "main"
_TABLE_MATERIALIZATIONS = {"table", "incremental"}


def begin_build(
    con: duckdb.DuckDBPyConnection,
    business_date: dt.date,
    partial: bool,
    fingerprint: str,
    incremental_tables: Iterable[str],
    full_refresh: bool = False,
) -> dt.date | None:
    """Note that the build schema is about to change, and say how dbt may build it: the
    date S its incremental models were last built for, so that it reads only what is new
    since (var incremental_since), or None for a full refresh.

    Incremental is safe only when the tables hold exactly S's state or a later one that
    reading again from S repairs: S's build passed with the same models, and no build for
    this date or a later one has started since (a re-run may bring other rows for the date;
    a failed build may have moved some tables ahead), and each table says it holds S or a
    date a build since has reached (not a build by hand for another date). Otherwise dbt
    rebuilds them whole, and until such a build passes nothing is vouched for.

    A partial build (some models picked in the UI) reads the rest of the build schema, so it
    may only start from a build that was published whole."""
    rows = con.execute(
        "select unpublished, built_through, attempted_through, models_fingerprint, "
        "built_started_at from nightjar_build.dbt_build_state"
    ).fetchall()
    unpublished, built, attempted, built_with, built_at = (
        rows[0] if rows else (False,) + (None,) * 4
    )
    if partial and unpublished:
        raise UnpublishedBuild(
            "The last dbt build was not published (it failed), so the build schema holds "
            "tables readers never saw. Materialize all warehouse models (or run the date "
            "with `nightjar run`) instead of a selection."
        )
    incremental = (
        not full_refresh
        and built is not None
        and built_with == fingerprint
        and business_date > max(attempted or built, built)
        and _tables_hold(con, incremental_tables, built, attempted or built)
        and not _loaded_late(con, built, built_at)
    )
    since = built if incremental else None
    attempted = max(attempted or business_date, business_date) if partial else business_date
    con.execute("delete from nightjar_build.dbt_build_state")
    con.execute(
        "insert into nightjar_build.dbt_build_state values (true, ?, ?, ?, now(), ?)",
        [since, attempted, fingerprint if incremental else None, built_at if incremental else None],
    )
    return since


def _loaded_late(con: duckdb.DuckDBPyConnection, built: dt.date, built_at) -> bool:
    """A folder of a date the tables already hold, loaded after that build began: a folder
    that completed late, or one loaded again. Its rows are older than the window."""
    if built_at is None:
        return True  # a build from before this was recorded: nothing to vouch with
    return con.execute(
        "select count(*) > 0 from raw.loaded_files where business_date <= ? and loaded_at > ?",
        [built, built_at],
    ).fetchall()[0][0]


def _tables_hold(
    con: duckdb.DuckDBPyConnection, tables: Iterable[str], built: dt.date, attempted: dt.date
) -> bool:
    """Every incremental model's table says (dbt post-hook) it was last built for a date from
    `built` to `attempted`: reading again from `built` brings it to any later date."""
    try:
        held = dict(
            con.execute(
                f"select model, as_of_date from {BUILD_SCHEMA}.incremental_builds"
            ).fetchall()
        )
    except duckdb.CatalogException:
        return False
    return all(built <= held.get(name, dt.date.min) <= attempted for name in tables)


def incremental_models(manifest: dict[str, Any]) -> dict[str, str]:
    """unique_id: table name of every incremental model."""
    return {
        uid: node["alias"] or node["name"]
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] == "model" and node["config"].get("materialized") == "incremental"
    }


def models_fingerprint(manifest: dict[str, Any]) -> str:
    """What the incremental models' rows depend on: their SQL and config, and those of every
    model they read and every macro any of them calls. Any change, and the next build
    refreshes them whole."""
    nodes, macros = manifest["nodes"], manifest["macros"]
    stack = list(incremental_models(manifest))
    seen: dict[str, str] = {}
    while stack:
        uid = stack.pop()
        if uid in seen:
            continue
        if uid in nodes:
            node = nodes[uid]
            config = json.dumps(node.get("unrendered_config", {}), sort_keys=True, default=str)
            seen[uid] = node["checksum"]["checksum"] + config
        elif uid in macros:
            node = macros[uid]
            seen[uid] = node["macro_sql"]
        else:
            continue
        stack += node["depends_on"].get("nodes", []) + node["depends_on"].get("macros", [])
    return hashlib.sha256(json.dumps(sorted(seen.items())).encode()).hexdigest()


def tables_in(con: duckdb.DuckDBPyConnection, schema: str) -> set[str]:
    """The names of the tables (not views) in `schema`."""
    rows = con.execute(
        "select table_name from duckdb_tables() "
        "where database_name = current_database() and schema_name = ?",
        [schema],
    ).fetchall()
    return {row[0] for row in rows}


def is_published(node: dict[str, Any]) -> bool:
    """A model readers query: a table of a folder dbt_project.yml marks `nightjar_publish`
    (marts, cohorts, decisions, results). Staging and intermediate models, and views, stay
    in the build schema, where they belong to dbt."""
    return (
        node["resource_type"] == "model"
        and node["config"].get("materialized") in _TABLE_MATERIALIZATIONS
        and bool((node["config"].get("meta") or {}).get("nightjar_publish"))
    )


def published_models(manifest: dict[str, Any]) -> set[str]:
    return {node["name"] for node in manifest["nodes"].values() if is_published(node)}


def unpublished_models(manifest: dict[str, Any]) -> set[str]:
    models = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    return models - published_models(manifest)


def publish(
    con: duckdb.DuckDBPyConnection,
    models: Iterable[str],
    views: Iterable[str] = (),
    built: tuple[dt.date, str] | None = None,
) -> dict[str, int]:
    """Copy the built tables into the published schema in one transaction; returns each
    published table's row count. Views named `views` (dbt's other models) are dropped from
    the published schema, where dbt wrote them before it had a build schema of its own.
    `built` is (date, fingerprint) of a whole build: its incremental tables hold that date."""
    tables = sorted(set(models) & tables_in(con, BUILD_SCHEMA))
    con.execute("begin transaction")
    try:
        in_the_way = {
            row[0]
            for row in con.execute(
                "select view_name from duckdb_views() "
                "where database_name = current_database() and schema_name = ?",
                [PUBLISHED_SCHEMA],
            ).fetchall()
        } & (set(views) | set(tables))
        for view in sorted(in_the_way):
            # dbt's views, written here before the build schema, or a table once a view
            con.execute(f'drop view {PUBLISHED_SCHEMA}."{view}"')
        for table in tables:
            con.execute(
                f'create or replace table {PUBLISHED_SCHEMA}."{table}" as '
                f'select * from {BUILD_SCHEMA}."{table}"'
            )
        con.execute("update nightjar_build.dbt_build_state set unpublished = false")
        if built:
            con.execute(
                "update nightjar_build.dbt_build_state set built_through = ?, "
                "models_fingerprint = ?, built_started_at = started_at",
                list(built),
            )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return {
        table: con.execute(f'select count(*) from {PUBLISHED_SCHEMA}."{table}"').fetchall()[0][0]
        for table in tables
    }
