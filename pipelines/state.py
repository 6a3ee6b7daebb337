"""Backups of Nightjar's state: the tables nothing can rebuild, exported and imported whole.

The warehouse is derived from the landing and may be deleted; the state (send ledger, cohort
history, approvals, suppressions, erasures) may not: `nightjar state export` writes each
table as a Parquet file, `nightjar state import` restores them into an empty state.
"""

from __future__ import annotations

from pathlib import Path

from assets.shared.warehouse import STATE_CATALOG, STATE_TABLES, connect, ensure_schema


class StateNotEmpty(Exception):
    """Importing over a state that already holds rows would mix two histories."""


def export_state(warehouse: Path, folder: Path) -> dict[str, int]:
    """Each state table to `<folder>/<table>.parquet`; returns rows per table."""
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
    missing = [t for t in STATE_TABLES if not (folder / f"{t}.parquet").is_file()]
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
        # A replica of a PostgreSQL state forgets which sync it last took part in: what it now
        # holds is an old backup, not the newer truth for its dates (assets/shared/state_store.py).
        con.execute(f"drop table if exists {STATE_CATALOG}.main.postgres_sync")
        # One table a transaction: the state is one file, so each is whole or untouched.
        for table in STATE_TABLES:
            source = str(folder / f"{table}.parquet").replace("'", "''")
            con.execute("begin")
            con.execute(f"delete from {STATE_CATALOG}.main.{table}")
            con.execute(
                f"insert into {STATE_CATALOG}.main.{table} by name "
                f"select * from read_parquet('{source}')"
            )
            con.execute("commit")
        return {table: _rows(con, table) for table in STATE_TABLES}


def _rows(con, table: str) -> int:
    return con.execute(f"select count(*) from {STATE_CATALOG}.main.{table}").fetchall()[0][0]
