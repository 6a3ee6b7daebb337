"""The dbt project built on another engine from the same inputs as DuckDB, and the tables
compared row for row (tests/engines, make test-spark).

The inputs are what a DuckDB night built from: the raw tables of a warehouse and the tables
of Nightjar's state. Each engine gets a copy of them (schemas `raw` and `nightjar`, as
models/staging/_sources.yml reads them on any target but DuckDB), then `dbt build` runs
in this process with that engine's target of dbt_project/profiles.yml, the same vars and a
target folder of its own. The predictions are fitted in Python between the two halves of the
build, as on any engine but DuckDB (models/clv_engine.py).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import duckdb
import polars as pl

from assets.shared.dbt_project import environment  # noqa: F401 (the tests' too)
from assets.shared.spark_engine import duckdb_type_of, session_for, spark_type
from models.clv_engine import BEFORE_PREDICTIONS, fitted_tables
from models.settings import DBT_PROJECT_DIR as PROJECT_DIR

RAW_TABLES = ("crm_contacts", "orders", "web_events", "order_lines", "sendgrid_events")
STATE_TABLES = (
    "send_ledger", "experiment_decisions", "cohort_membership", "cohort_snapshots",
    "erasures", "suppressions", "journey_instances",
)  # fmt: skip


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type)
    rows: list[tuple]


def table_of(schema: str, name: str, frame: pl.DataFrame) -> Table:
    columns = tuple((column, duckdb_type_of(kind)) for column, kind in frame.schema.items())
    return Table(schema, name, columns, frame.rows())


def typed_frame(columns: list[str], rows: list[tuple]) -> pl.DataFrame:
    """Rows an engine returned, as a frame whose types polars infers (decimals as floats)."""
    frame = pl.DataFrame(rows, schema=columns, orient="row", infer_schema_length=None)
    return frame.with_columns(pl.col(pl.Decimal).cast(pl.Float64))


def read_inputs(warehouse: Path, state: Path) -> list[Table]:
    """The raw tables and the state's tables a night's build reads."""
    tables = []
    for path, schema, names in ((warehouse, "raw", RAW_TABLES), (state, "nightjar", STATE_TABLES)):
        with duckdb.connect(str(path), read_only=True) as con:
            source = "raw" if schema == "raw" else "main"
            for name in names:
                columns = con.execute(
                    "select column_name, data_type from information_schema.columns "
                    "where table_schema = ? and table_name = ? order by ordinal_position",
                    [source, name],
                ).fetchall()
                rows = con.execute(f"select * from {source}.{name}").fetchall()
                tables.append(Table(schema, name, tuple(columns), rows))
    return tables


def night_vars(day: dt.date, since: dt.date | None) -> dict:
    """The vars `nightjar run` passes dbt for `day` (assets/warehouse/dbt_models.py), with a
    fixed decision time and a control group, so that every engine decides alike."""
    from assets.warehouse.dbt_models import dbt_build_args
    from models.settings import load_settings

    args = dbt_build_args(day.isoformat(), load_settings(), since)
    variables = json.loads(args[args.index("--vars") + 1])
    decided = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
    return {**variables, "send_after": decided.isoformat(), "holdout_share": 0.1}


# ---- PostgreSQL ---------------------------------------------------------------------------

_POSTGRES_TYPES = {
    "VARCHAR": "text",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "DOUBLE": "double precision",
}


def postgres_environment(url: str) -> dict[str, str]:
    """profiles.yml's `postgres` target reads the server from these."""
    parts = urlparse(url)
    return {
        "DBT_POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "DBT_POSTGRES_PORT": str(parts.port or 5432),
        "DBT_POSTGRES_USER": parts.username or "",
        "DBT_POSTGRES_PASSWORD": parts.password or "",
        "DBT_POSTGRES_DBNAME": parts.path.lstrip("/"),
    }


def load_postgres(url: str, tables: list[Table]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        # timestamps without zone are UTC's, as on DuckDB and Spark (profiles.yml)
        con.execute("select set_config('timezone', 'UTC', false)")
        database = con.execute("select current_database()").fetchone()[0]
        con.execute(f"alter database \"{database}\" set timezone to 'UTC'")
        for table in tables:
            con.execute(f"create schema if not exists {table.schema}")
            columns = ", ".join(
                f"{name} {_POSTGRES_TYPES.get(kind, kind.lower())}" for name, kind in table.columns
            )
            con.execute(f"drop table if exists {table.schema}.{table.name}")
            con.execute(f"create table {table.schema}.{table.name} ({columns})")
            names = ", ".join(name for name, _ in table.columns)
            target = f"{table.schema}.{table.name} ({names})"
            with con.cursor().copy(f"copy {target} from stdin") as copy:
                for row in table.rows:
                    copy.write_row(row)
            # statistics, as a load should leave them
            con.execute(f"analyze {table.schema}.{table.name}")


def postgres_tables(url: str, schema: str, names: list[str]) -> dict[str, pl.DataFrame]:
    import psycopg

    found = {}
    with psycopg.connect(url) as con:
        for name in names:
            cursor = con.execute(f"select * from {schema}.{name}")
            columns = [column.name for column in cursor.description]
            found[name] = _frame(columns, cursor.fetchall())
    return found


# ---- Spark --------------------------------------------------------------------------------


def spark_session(root: Path):
    """A local Spark of this process, its tables under `root` (assets/shared/spark_engine.py);
    dbt-spark's session method and a night with NIGHTJAR_ENGINE=spark take the same one."""
    return session_for(root, "local[2]", **{"spark.driver.memory": "2g"})


def load_spark(spark, tables: list[Table]) -> None:
    for table in tables:
        spark.sql(f"create schema if not exists {table.schema}")
        schema = ", ".join(
            f"{name} {spark_type(kind, f'{table.schema}.{table.name}.{name}')}"
            for name, kind in table.columns
        )
        frame = spark.createDataFrame(table.rows or [], schema=schema)
        frame.write.mode("overwrite").format("parquet").saveAsTable(f"{table.schema}.{table.name}")


def spark_tables(spark, schema: str, names: list[str]) -> dict[str, pl.DataFrame]:
    found = {}
    for name in names:
        frame = spark.table(f"{schema}.{name}")
        found[name] = _frame(frame.columns, [tuple(row) for row in frame.collect()])
    return found


# ---- DuckDB -------------------------------------------------------------------------------


def duckdb_tables(path: Path, schema: str, names: list[str]) -> dict[str, pl.DataFrame]:
    found = {}
    # not read-only: dbt in this process may still hold the file open, read-write
    with duckdb.connect(str(path)) as con:
        for name in names:
            cursor = con.execute(f"select * from {schema}.{name}")
            columns = [column[0] for column in cursor.description]
            found[name] = _frame(columns, cursor.fetchall())
    return found


# ---- dbt ----------------------------------------------------------------------------------


def dbt(target: str, target_path: Path, *args: str) -> None:
    """`dbt <args>` in this process on `target`; raises with dbt's failures."""
    from dbt.cli.main import dbtRunner

    where = ["--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR)]
    how = ["--target", target, "--target-path", str(target_path), "--no-use-colors"]
    result = dbtRunner().invoke([*args, *where, *how])
    if not result.success:
        failed = [
            f"{node.node.name}: {node.message}"
            for node in (result.result or [])
            if getattr(node, "status", None) in ("error", "fail")
        ]
        raise AssertionError(
            f"dbt {args[0]} on {target} failed: {result.exception or ''}\n" + "\n".join(failed)
        )


def build(
    target: str,
    target_path: Path,
    dbt_vars: Mapping[str, Any],
    write_predictions: Callable[[dict[str, pl.DataFrame]], None],
    read_inputs_of_fit: Callable[[], pl.DataFrame],
    *more: str,
) -> None:
    """A night's build on an engine but DuckDB: the models up to the predictions' inputs, the
    fit in Python, then the rest (models/clv_engine.py)."""

    # unit tests apart: those of incremental models read the tables a build made
    variables = ["--exclude-resource-type", "unit_test", "--vars", json.dumps(dict(dbt_vars))]
    dbt(target, target_path, "build", "--select", BEFORE_PREDICTIONS, *variables, *more)
    write_predictions(fitted_tables(read_inputs_of_fit(), dbt_vars))
    dbt(target, target_path, "build", "--exclude", BEFORE_PREDICTIONS, *variables, *more)


def unit_tests(target: str, target_path: Path, as_of_date: str) -> None:
    """The project's dbt unit tests on `target`, once a build made the tables that those of
    incremental models read (a few are disabled where an engine cannot run them; each says
    why in its `config`)."""

    variables = json.dumps({"as_of_date": as_of_date})
    dbt(target, target_path, "test", "--select", "test_type:unit", "--vars", variables)


# ---- comparing ----------------------------------------------------------------------------


def _frame(columns: list[str], rows: list[tuple]) -> pl.DataFrame:
    """Rows as text, one type for every engine: numbers to 9 significant digits, timestamps
    in UTC, so that 1.5000 (decimal), 1.5 (double) and 1.50000001 (float) read alike."""
    return pl.DataFrame(
        [[_normal(value) for value in row] for row in rows],
        schema=dict.fromkeys(columns, pl.String),
        orient="row",
    )


def _normal(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | decimal.Decimal):
        number = float(value)
        if math.isnan(number):
            return None
        if number == int(number) and abs(number) < 1e15:
            return str(int(number))
        return f"{number:.9g}"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple) and not hasattr(value, "asDict"):
        return "[" + ", ".join(str(_normal(item)) for item in value) + "]"
    if hasattr(value, "asDict"):  # a Spark struct
        value = value.asDict()
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_normal(v)}" for k, v in sorted(value.items())) + "}"
    return str(value)


# Columns that differ from one build to the next on any engine: the fit's wall-clock time.
NOT_COMPARED = {"clv_fits": ("fit_seconds",)}


def differences(expected: dict[str, pl.DataFrame], actual: dict[str, pl.DataFrame]) -> list[str]:
    """Each table whose rows differ, with a few rows that are in one and not the other."""
    found = []
    for name, want in expected.items():
        got = actual.get(name)
        if got is None:
            found.append(f"{name}: missing")
            continue
        skipped = NOT_COMPARED.get(name, ())
        want, got = want.drop(skipped, strict=False), got.drop(skipped, strict=False)
        if sorted(want.columns) != sorted(got.columns):
            found.append(f"{name}: columns {sorted(want.columns)} != {sorted(got.columns)}")
            continue
        got = got.select(want.columns)
        only_expected = want.join(got, on=want.columns, how="anti", nulls_equal=True)
        only_actual = got.join(want, on=want.columns, how="anti", nulls_equal=True)
        if only_expected.height or only_actual.height or want.height != got.height:
            found.append(
                f"{name}: {want.height} rows against {got.height}; "
                f"only expected {only_expected.head(3).rows()}, "
                f"only actual {only_actual.head(3).rows()}"
            )
    return found


def duckdb_copy(warehouse: Path, state: Path, folder: Path) -> tuple[Path, Path]:
    """A warehouse of the raw tables alone and a copy of the state, in `folder`: what a full
    build on DuckDB reads, as the other engines get it."""
    folder.mkdir(parents=True, exist_ok=True)
    copy, state_copy = folder / "warehouse.duckdb", folder / "state.duckdb"
    for path in (copy, state_copy):
        path.unlink(missing_ok=True)
    with duckdb.connect(str(copy)) as con:
        con.execute(f"attach '{warehouse}' as source (read_only)")
        con.execute("create schema raw")
        for name in RAW_TABLES:
            con.execute(f"create table raw.{name} as select * from source.raw.{name}")
    with duckdb.connect(str(state_copy)) as con:
        con.execute(f"attach '{state}' as source (read_only)")
        for (name,) in con.execute(
            "select table_name from duckdb_tables() where database_name = 'source'"
        ).fetchall():
            con.execute(f"create table {name} as select * from source.main.{name}")
    return copy, state_copy


def compared_models() -> list[str]:
    """Every table Nightjar publishes, and the predictions' inputs."""

    manifest = json.loads((PROJECT_DIR / "target" / "manifest.json").read_text())
    published = [
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and node["config"].get("materialized") != "view"
        and (node["config"].get("meta") or {}).get("nightjar_publish")
    ]
    return sorted({*published, "int_contacts_clv_inputs"})
