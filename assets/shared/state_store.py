"""PostgreSQL as the home of Nightjar's state, the local DuckDB state file its replica.

With NIGHTJAR_STATE_URL set (a postgresql:// URL), the state tables (STATE_TABLES: the send
ledger, cohort history, night metrics, approvals, erasures, suppressions) live in PostgreSQL,
schema `nightjar`, with the same keys, and that copy is the authoritative one. The state file
(NIGHTJAR_STATE) stays what every query and dbt read and write, as a replica:

- `pull`, when a step that writes state starts: whatever the replica holds that PostgreSQL
  lacks or holds older goes up first (a run killed after a local write, before its push,
  loses nothing), then the replica gets PostgreSQL's rows;
- `push`, when the step ends: the replica's changes go up (`synced` does both around a step);
- the send ledger is written through (`LedgerMirror`, given to senders/ledger.Ledger): each
  change of a message is in PostgreSQL before it counts locally, and a message is recorded
  `in_flight` there before its request leaves. A message PostgreSQL already holds as gone
  is never sent, whatever the replica says: losing the replica, or the machine, never sends
  a message twice.

A sync compares a digest of each group of rows on both sides (the ledger per business date,
cohort history per cohort and date, the other tables whole) and moves only the groups that
differ. How a replica row meets PostgreSQL's row of the same key is each table's merge rule
(assets/shared/state_merge.py): in short, a replica that descends from PostgreSQL's current
state holds the newer truth, and any other (new, restored, or left behind by another machine)
only adds what PostgreSQL lacks.

PostgreSQL's `nightjar.sync` holds the store's id and a generation, counted up by every sync
that changes PostgreSQL; the replica's `postgres_sync` the pair it last synced with. The
connection, the schema and the errors are assets/shared/state_connection.py's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pyarrow as pa

from assets.shared.state_connection import (
    SCHEMA,
    SYNC_LOCK,
    AlreadyRecorded,
    Schema,
    StateStoreError,
    check,
    failed,
    open_store,
    where,
)
from assets.shared.state_merge import (
    BY_NAME,
    COHORT_DATE,
    LEDGER_SEND,
    LEDGER_WRITE,
    TABLES,
    Table,
    digest_sql,
    digests,
    merge,
    names,
    replica_rows,
    stage,
    update,
    upsert,
)
from assets.shared.warehouse import STATE_CATALOG, connect, ensure_schema

if TYPE_CHECKING:
    import duckdb

    from models.settings import Settings

# What other modules use; the errors and `check` live in assets/shared/state_connection.py.
__all__ = [
    "AlreadyRecorded",
    "LedgerMirror",
    "StateStoreError",
    "Synced",
    "check",
    "pull",
    "push",
    "synced",
]

REPLICA_DDL = (
    f"create table if not exists {STATE_CATALOG}.main.postgres_sync "
    "(store_id varchar not null, generation bigint not null)"
)


@dataclass
class Synced:
    """What a sync moved: rows sent up to PostgreSQL and brought down into the replica."""

    up: int = 0
    down: int = 0
    descendant: bool = False


def pull(warehouse: Path, url: str) -> Synced:
    """At the start of a step: the replica's changes up, then PostgreSQL's rows down into
    the replica (the groups that differ), which then descends from PostgreSQL's state."""
    return _sync(warehouse, url, down=True)


def push(warehouse: Path, url: str) -> Synced:
    """At the end of a step: the replica's changes up to PostgreSQL."""
    return _sync(warehouse, url, down=False)


def _sync(warehouse: Path, url: str, down: bool) -> Synced:
    pg, schema = open_store(url)
    try:
        with pg, connect(warehouse) as duck:
            ensure_schema(duck)
            duck.execute(REPLICA_DDL)
            return _sync_with(duck, pg, schema, down)
    except psycopg.Error as error:
        raise failed(url, error) from None


def _sync_with(duck, pg: psycopg.Connection, schema: Schema, down: bool) -> Synced:
    synced = Synced()
    columns = _shared_columns(duck, schema)
    with pg.transaction():
        pg.execute("select pg_advisory_xact_lock(%s)", [SYNC_LOCK])
        store_id, generation = pg.execute(
            f"select store_id, generation from {SCHEMA}.sync for update"
        ).fetchone()
        record = duck.execute(
            f"select store_id, generation from {STATE_CATALOG}.main.postgres_sync"
        ).fetchall()
        synced.descendant = record == [(store_id, generation)]
        differing, changed = _send_up(duck, pg, columns, synced)
        if changed:
            (generation,) = pg.execute(
                f"update {SCHEMA}.sync set generation = generation + 1, synced_at = now() "
                "returning generation"
            ).fetchone()
    if down:
        synced.down = _bring_down(duck, pg, schema, columns, differing)
    if down or synced.descendant:
        duck.execute("begin")
        duck.execute(f"delete from {STATE_CATALOG}.main.postgres_sync")
        duck.execute(
            f"insert into {STATE_CATALOG}.main.postgres_sync values (?, ?)", [store_id, generation]
        )
        duck.execute("commit")
    return synced


def _shared_columns(duck, schema: Schema) -> dict[str, list[tuple[str, str]]]:
    """Each table's columns PostgreSQL's and the replica's have both, as PostgreSQL has them."""
    replica_columns = {
        (table, column)
        for table, column in duck.execute(
            "select table_name, column_name from duckdb_columns() "
            "where database_name = ? and schema_name = 'main'",
            [STATE_CATALOG],
        ).fetchall()
    }
    return {
        t.name: [c for c in schema.columns[t.name] if (t.name, c[0]) in replica_columns]
        for t in TABLES
    }


def _send_up(
    duck, pg: psycopg.Connection, columns, synced: Synced
) -> tuple[dict[str, list[str]], int]:
    """Inside the sync's transaction: the replica's rows of the groups that differ, merged
    into PostgreSQL's. Returns (each table's differing groups, rows changed in PostgreSQL)."""
    snapshots = {
        row[0]
        for row in duck.execute(
            f"select distinct {COHORT_DATE} from {STATE_CATALOG}.main.cohort_snapshots"
        ).fetchall()
    }
    differing: dict[str, list[str]] = {}
    changed = 0
    for table in TABLES:
        cols = columns[table.name]
        mine = digests(duck, digest_sql(table, cols, "duckdb"))
        theirs = digests(pg, digest_sql(table, cols, "postgres"))
        groups = sorted(g for g in mine.keys() | theirs.keys() if mine.get(g) != theirs.get(g))
        if not groups:
            continue
        differing[table.name] = groups
        up, params = _groups_up(table, groups, mine, theirs, synced.descendant, snapshots)
        rows = replica_rows(duck, table, cols, up)
        synced.up += len(rows)
        staged = stage(pg, table, cols, rows)
        changed += merge(pg, table, cols, staged, synced.descendant, params)
    return differing, changed


def _groups_up(
    table: Table, groups: list[str], mine: dict, theirs: dict, descendant: bool, snapshots: set
) -> tuple[list[str], dict]:
    """Of the differing `groups`, those whose replica rows go up, and the merge's parameters."""
    if table.merge != "groups":
        return [g for g in groups if g in mine], {}
    # a date's membership the replica vouches for replaces PostgreSQL's; a date PostgreSQL
    # lacks is added
    replaced = [g for g in groups if descendant and g in snapshots]
    added = [g for g in groups if g in mine and g not in theirs]
    params = {"replaced": replaced, "groups": sorted({*replaced, *added})}
    return [g for g in params["groups"] if g in mine], params


def _bring_down(duck, pg, schema: Schema, columns, differing: dict[str, list[str]]) -> int:
    """The groups that differed, as PostgreSQL now holds them, into the replica: one
    transaction, so that the replica is never half PostgreSQL's."""
    frames = {}
    for name, groups in differing.items():
        table, cols = BY_NAME[name], columns[name]
        rows = pg.execute(
            f"select {names(cols)} from {SCHEMA}.{name} where {table.group} = any(%s)",
            [groups],
        ).fetchall()
        arrow = schema.arrow[name]
        frames[name] = pa.table(
            [
                pa.array([row[i] for row in rows], arrow.field(c).type)
                for i, (c, _) in enumerate(cols)
            ],
            names=[c for c, _ in cols],
        )
    duck.execute("begin")
    try:
        for name, frame in frames.items():
            table = BY_NAME[name]
            duck.execute(
                f"delete from {STATE_CATALOG}.main.{name} "
                f"where {table.group} in (select unnest($groups::varchar[]))",
                {"groups": differing[name]},
            )
            if frame.num_rows:
                duck.register("incoming_rows", frame)
                duck.execute(
                    f"insert into {STATE_CATALOG}.main.{name} by name select * from incoming_rows"
                )
                duck.unregister("incoming_rows")
    except BaseException:
        duck.execute("rollback")
        raise
    duck.execute("commit")
    return sum(frame.num_rows for frame in frames.values())


@contextmanager
def synced(settings: Settings) -> Iterator[LedgerMirror | None]:
    """Around a step that writes state: pull, then the step (given the ledger's mirror), then
    push, also when the step fails (what it wrote stays written). Nothing without
    NIGHTJAR_STATE_URL."""
    url = settings.state_url
    if not url:
        yield None
        return
    pull(settings.warehouse, url)
    mirror = LedgerMirror(url)
    try:
        yield mirror
    except BaseException:
        mirror.close()
        with contextlib.suppress(Exception):  # the step's own error is the one to tell
            push(settings.warehouse, url)
        raise
    mirror.close()
    push(settings.warehouse, url)


class LedgerMirror:
    """The send ledger written through to PostgreSQL: `Ledger(con, mirror)` calls `write`
    inside the transaction of each change, which commits only once PostgreSQL holds it."""

    def __init__(self, url: str):
        self.url = url
        self._pg: psycopg.Connection | None = None
        self._columns: list[tuple[str, str]] = []

    def _connection(self) -> psycopg.Connection:
        if self._pg is None or self._pg.closed or self._pg.broken:
            self._pg, schema = open_store(self.url)
            self._columns = schema.columns["send_ledger"]
        return self._pg

    def write(self, con: duckdb.DuckDBPyConnection, send_ids: Sequence[str], sending: bool) -> None:
        """The ledger rows of `send_ids`, as `con` now holds them, into PostgreSQL. `sending`:
        they are about to leave, allowed only while PostgreSQL holds each as sendable; else
        AlreadyRecorded, and nothing changes on either side."""
        pg = self._connection()
        table = BY_NAME["send_ledger"]
        rows = con.execute(
            f"select {names(self._columns)} from {STATE_CATALOG}.send_ledger "
            "where send_id in (select unnest($ids::varchar[]))",
            {"ids": list(send_ids)},
        ).fetchall()
        try:
            with pg.transaction():
                staged = stage(pg, table, self._columns, rows)
                condition = LEDGER_SEND if sending else LEDGER_WRITE
                action = update(self._columns, table, condition)
                cursor = pg.execute(
                    upsert(table, self._columns, staged, action) + " returning send_id"
                )
                written = {row[0] for row in cursor.fetchall()}
                refused = set(send_ids) - written
                if sending and refused:
                    raise AlreadyRecorded(
                        f"{len(refused)} message(s) about to be sent are already recorded as "
                        f"sent or in flight in the PostgreSQL state at {where(self.url)}: this "
                        "replica is behind it. None of them was sent; run again (a run first "
                        "brings the replica up to date)."
                    )
        except psycopg.Error as error:
            self.close()
            raise failed(self.url, error) from None

    def close(self) -> None:
        if self._pg is not None:
            with contextlib.suppress(psycopg.Error):
                self._pg.close()
            self._pg = None
