"""Backups of Nightjar's state: the tables nothing can rebuild, exported and imported whole.

The warehouse is derived from the landing and may be deleted; the state (send ledger, cohort
history, approvals, suppressions, erasures) may not: `nightjar state export` writes each
table as a Parquet file, `nightjar state import` restores them into an empty state.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from assets.shared.warehouse import STATE_CATALOG, STATE_TABLES, connect, ensure_schema


class StateNotEmpty(Exception):
    """Importing over a state that already holds rows would mix two histories, or forget
    messages sent since the export."""


# State tables younger than some exports: an export made before them has no file for them,
# and imports as their being empty.
ADDED_LATER = ("journey_instances", "experiment_decisions")


class ExportUnreadable(Exception):
    """The folder's Parquet files are not the tables of this Nightjar's state."""


def export_state(warehouse: Path, folder: Path) -> dict[str, int]:
    """Each state table to `<folder>/<table>.parquet`; returns rows per table."""
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file: export into a folder")
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    with connect(warehouse) as con:
        ensure_schema(con)
        for table in STATE_TABLES:
            target = str(folder / f"{table}.parquet").replace("'", "''")
            con.execute(f"copy {STATE_CATALOG}.main.{table} to '{target}' (format parquet)")
            counts[table] = _rows(con, table)
    return counts


def import_state(warehouse: Path, folder: Path, replace: bool = False) -> dict[str, int]:
    """The tables of an export into the state; refused while the state holds rows, unless
    `replace` (then its rows are dropped first). Returns rows per table."""
    missing = [
        t for t in STATE_TABLES if t not in ADDED_LATER and not (folder / f"{t}.parquet").is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"{folder} is not a state export: no {', '.join(f'{t}.parquet' for t in missing)}"
        )
    with connect(warehouse) as con:
        ensure_schema(con)
        held = {t: n for t in STATE_TABLES if (n := _rows(con, t))}
        if held and not replace:
            raise StateNotEmpty(
                "the state already holds "
                + ", ".join(f"{n:,} {t} row(s)" for t, n in held.items())
                + ": importing would mix two histories. Import into a new NIGHTJAR_STATE, or "
                "pass --replace to drop what it holds."
            )
        _check_export(con, folder)
        _refuse_to_forget_messages(con, folder)
        # A replica of a PostgreSQL state forgets which sync it last took part in: what it now
        # holds is an old backup, not the newer truth for its dates (assets/shared/state_store.py).
        con.execute(f"drop table if exists {STATE_CATALOG}.main.postgres_sync")
        # One table a transaction: the state is one file, so each is whole or untouched.
        for table in STATE_TABLES:
            source = str(folder / f"{table}.parquet").replace("'", "''")
            con.execute("begin")
            con.execute(f"delete from {STATE_CATALOG}.main.{table}")
            if (folder / f"{table}.parquet").is_file():
                con.execute(
                    f"insert into {STATE_CATALOG}.main.{table} by name "
                    f"select * from read_parquet('{source}')"
                )
            con.execute("commit")
        return {table: _rows(con, table) for table in STATE_TABLES}


def _check_export(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    """Every table of the export read into an empty copy of its state table, before the
    state loses a row: an export that does not fit is refused whole."""
    for table in STATE_TABLES:
        source = str(folder / f"{table}.parquet").replace("'", "''")
        if table in ADDED_LATER and not (folder / f"{table}.parquet").is_file():
            continue
        try:
            con.execute(
                f"create or replace temp table import_check as "
                f"select * from {STATE_CATALOG}.main.{table} limit 0"
            )
            con.execute(f"insert into import_check by name select * from read_parquet('{source}')")
        except duckdb.Error as error:
            cause = " ".join(str(error).split())
            raise ExportUnreadable(
                f"{folder / f'{table}.parquet'} is not this Nightjar's {table}: {cause}"
            ) from None
    con.execute("drop table if exists import_check")


def _refuse_to_forget_messages(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    """--replace with an export older than the state would forget the messages recorded
    since (sent, held out, baselined): a night would then mail them again. Refused; an
    operator who means it deletes the state file first."""
    source = str(folder / "send_ledger.parquet").replace("'", "''")
    try:
        unknown, last = con.execute(
            f"""
            select count(*), max(business_date) from {STATE_CATALOG}.main.send_ledger
            where send_id not in (select send_id from read_parquet('{source}'))
            """
        ).fetchall()[0]
    except duckdb.Error as error:
        cause = " ".join(str(error).split())
        raise ExportUnreadable(f"{folder}/send_ledger.parquet cannot be read: {cause}") from None
    if unknown:
        raise StateNotEmpty(
            f"the state records {unknown:,} message(s) the export in {folder} lacks (the "
            f"last on {last}): replacing it would forget them, and a night would mail them "
            "again. Import a newer export, or delete the state file yourself first if you "
            "mean to lose them."
        )


def _rows(con, table: str) -> int:
    return con.execute(f"select count(*) from {STATE_CATALOG}.main.{table}").fetchall()[0][0]
