"""The dbt project built on Spark (NIGHTJAR_ENGINE=spark, docs/contract.md §18): the narrow
interface between a night and its engine is three steps, each a function here.

1. `sync_inputs`: what the build reads, registered in Spark's catalog over parquet files that
   Spark reads itself (assets/shared/spark_files.py): the raw rows, a file per source file
   written only when its rows changed, so that a night moves what its day brought, not the
   history; and the state tables the build reads, as the state store holds them tonight.
2. `build`: dbt in this process on profiles.yml's `spark` target, whose session method takes
   this process's session: the models up to the predictions' inputs, the fit in Python
   (models/clv_engine.py), then the rest.
3. `bring_back`: the night's published tables from Spark into the warehouse file's build
   schema, where publishing (assets/warehouse/publish.py) makes them readers' in one
   transaction, and the sends read them beside the ledger as on DuckDB.

The ledger and the rest of the state never leave the state store: that is what keeps every
send exactly-once whatever the engine. Spark's catalog is the session's own (in memory), so no
metastore is needed: each build registers its tables again, and dbt's own tables are rebuilt
whole every night, as Spark's incremental models are (macros/incremental.sql), so a crashed
night leaves nothing the next one trips on.

pyspark is imported here alone, lazily: the `spark` extra is needed only with this engine.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import duckdb
import polars as pl

from assets.shared.dbt_runner import BuildResult, invoke
from assets.shared.spark_files import (
    RAW,
    STATE,
    TABLES,
    copy_to_parquet,
    source_tables,
    write_raw_parts,
)
from models.clv_engine import BEFORE_PREDICTIONS, PREDICTIONS_SCHEMA, fitted_tables
from models.settings import Settings

# profiles.yml: the target and the schema dbt builds into there (as the DuckDB target's)
TARGET = "spark"
BUILD_SCHEMA = "build"
# The types of the tables Spark reads (raw rows, state, the fit), as Spark names DuckDB's; a
# type not here is refused by name, never guessed.
_RENAMED = {"VARCHAR": "string", "TIMESTAMP WITH TIME ZONE": "timestamp", "INTEGER": "int"}
_ALIKE = ("DATE", "BIGINT", "BOOLEAN", "DOUBLE")
_DECIMAL = re.compile(r"DECIMAL\(\d+,\s*\d+\)")
_POLARS_TYPES = {
    pl.String: "VARCHAR", pl.Float64: "DOUBLE", pl.Int64: "BIGINT", pl.Int32: "INTEGER",
    pl.Date: "DATE", pl.Boolean: "BOOLEAN",
}  # fmt: skip


def spark_type(duckdb_type: str, column: str) -> str:
    """Spark's name for DuckDB's type of `column`."""
    if duckdb_type in _RENAMED:
        return _RENAMED[duckdb_type]
    if duckdb_type in _ALIKE or _DECIMAL.fullmatch(duckdb_type):
        return duckdb_type.lower()
    raise ValueError(
        f"{column} is of DuckDB type {duckdb_type}, which Nightjar does not give Spark "
        "(assets/shared/spark_engine.py)"
    )


def duckdb_type_of(kind: pl.DataType) -> str:
    """DuckDB's name for a polars column type of the fit's tables."""
    return _POLARS_TYPES[kind.base_type()]


def session(settings: Settings):
    """This process's Spark session, its tables under NIGHTJAR_SPARK_DIR; dbt-spark's session
    method gets the same one (SparkSession.builder.getOrCreate)."""
    return session_for(settings.spark_path, settings.spark_master)


def session_for(root: Path, master: str, **config: str):
    """A session of `master` whose dbt tables are under `root`, or the one this process
    already has (whose folder is then its own: see _tables_folder)."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(master)
        .appName("nightjar")
        .config("spark.sql.warehouse.dir", str(root / TABLES))
        # timestamps read and written in UTC, as DuckDB's (profiles.yml says the same)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
    )
    if master.startswith("local"):
        # a cluster's 200 shuffle partitions are a few hundred tasks too many on one machine
        builder = builder.config("spark.sql.shuffle.partitions", "8")
    for name, value in config.items():
        builder = builder.config(name, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# ---- 1. the build's inputs ----------------------------------------------------------------


def sync_inputs(
    con: duckdb.DuckDBPyConnection, spark, root: Path, manifest: Mapping[str, Any]
) -> dict[str, int]:
    """The raw rows and the state the build reads, in Spark; returns the parquet files each
    raw table had to write tonight (the load has usually written them already)."""
    written = {}
    for table in source_tables(manifest, "raw"):
        folder = root / RAW / table
        written[table] = write_raw_parts(con, folder, table)
        _register(spark, "raw", table, _columns(con, _database(con), "raw", table), folder)
    for table in source_tables(manifest, "nightjar"):
        folder = root / STATE / table
        _replace_folder(
            folder,
            lambda into, t=table: copy_to_parquet(con, f"nightjar.main.{t}", into / "data.parquet"),
        )
        _register(spark, "nightjar", table, _columns(con, "nightjar", "main", table), folder)
    return written


def _replace_folder(folder: Path, write) -> None:
    """`folder` emptied, then written by `write(folder)`."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    write(folder)


def _database(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("select current_database()").fetchall()[0][0]


def _columns(
    con: duckdb.DuckDBPyConnection, database: str, schema: str, table: str
) -> list[tuple[str, str]]:
    return con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_catalog = ? and table_schema = ? and table_name = ? "
        "order by ordinal_position",
        [database, schema, table],
    ).fetchall()


def _register(
    spark, schema: str, table: str, columns: Sequence[tuple[str, str]], location: Path
) -> None:
    """`schema.table` in Spark's catalog: the parquet files in `location`, with the columns
    the warehouse gives them (declared, so that a table with no file yet reads as empty)."""
    location.mkdir(parents=True, exist_ok=True)
    spark.sql(f"create schema if not exists {schema}")
    spark.sql(f"drop table if exists {schema}.{table}")
    declared = ", ".join(
        f"`{name}` {spark_type(kind, f'{schema}.{table}.{name}')}" for name, kind in columns
    )
    where = str(location).replace("'", "\\'")
    spark.sql(f"create table {schema}.{table} ({declared}) using parquet location '{where}'")


# ---- 2. the build -------------------------------------------------------------------------


def build(
    spark,
    root: Path,
    args: list[str],
    published_fits: pl.DataFrame | None,
    target_path: Path,
) -> BuildResult:
    """`dbt <args>` (assets/warehouse/dbt_models.dbt_build_args) on Spark in two halves with
    the predictions fitted between them; a half that fails ends the build there."""
    # dbt's tables from the last night are rebuilt whole: their files would be in the way of
    # a catalog that no longer knows them.
    built_before = _tables_folder(spark) / f"{BUILD_SCHEMA}.db"
    if built_before.exists():
        shutil.rmtree(built_before)
    variables = json.loads(args[args.index("--vars") + 1])
    result = BuildResult()
    invoke([*args, "--select", BEFORE_PREDICTIONS], target_path, result, TARGET)
    if result.failure:
        return result
    inputs = pl.from_arrow(spark.table(f"{BUILD_SCHEMA}.int_contacts_clv_inputs").toArrow())
    for name, frame in fitted_tables(inputs, variables, published_fits).items():
        location = root / PREDICTIONS_SCHEMA / name
        _replace_folder(location, lambda folder, f=frame: f.write_parquet(folder / "data.parquet"))
        _register(spark, PREDICTIONS_SCHEMA, name, _polars_columns(frame), location)
    invoke([*args, "--exclude", BEFORE_PREDICTIONS], target_path, result, TARGET)
    return result


def _tables_folder(spark) -> Path:
    """spark.sql.warehouse.dir, where dbt's tables are: the session's own (a session this
    process had already started keeps the folder it started with), a URI Spark encodes."""
    where = urlparse(spark.conf.get("spark.sql.warehouse.dir"))
    if where.scheme not in ("", "file"):
        raise ValueError(
            f"Spark's tables are at {where.geturl()}: Nightjar keeps them on a file system"
        )
    return Path(unquote(where.path))


def _polars_columns(frame: pl.DataFrame) -> list[tuple[str, str]]:
    return [(name, duckdb_type_of(kind)) for name, kind in frame.schema.items()]


# ---- 3. the night's tables back ------------------------------------------------------------


def bring_back(con: duckdb.DuckDBPyConnection, spark, tables: Sequence[str]) -> None:
    """Each of `tables` from Spark's build schema into the warehouse's, replacing last night's
    copy; publishing then makes them readers' together."""
    con.execute(f"create schema if not exists {BUILD_SCHEMA}")
    for table in sorted(tables):
        arrow = spark.table(f"{BUILD_SCHEMA}.`{table}`").toArrow()  # noqa: F841 (read by DuckDB)
        con.execute(f'create or replace table {BUILD_SCHEMA}."{table}" as select * from arrow')
