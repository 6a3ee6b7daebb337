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
differ. How a replica row meets PostgreSQL's row of the same key:

- send_ledger: the row changed last wins, except that a message never becomes sendable again
  (planned, failed) once it is anything else, nor in flight again once settled; the one
  legitimate way back, an unanswered request found unsent, is written through as it happens;
- erasures: every erasure is kept, and its flags (suppressed, outbox and events scrubbed)
  only ever turn true; approvals: the latest approval of a check wins;
- cohort_membership, cohort_snapshots, night_metrics, suppressions: a replica that descends
  from PostgreSQL's current state (it synced it last, and no other sync changed PostgreSQL
  since) holds the newer truth: its membership of a cohort on a date replaces PostgreSQL's
  (for the dates whose snapshot it holds), its snapshots and metrics win, and a suppression it
  dropped when its address was erased is dropped. Any other replica (new, restored, or left
  behind by another machine) only adds what PostgreSQL lacks.

PostgreSQL's `nightjar.sync` holds the store's id and a generation, counted up by every sync
that changes PostgreSQL; the replica's `postgres_sync` the pair it last synced with.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pyarrow as pa
from psycopg.conninfo import conninfo_to_dict

from assets.shared.warehouse import STATE_CATALOG, STATE_DDL, STATE_TABLES, connect, ensure_schema
from senders.ledger import SENDABLE_STATUSES

if TYPE_CHECKING:
    import duckdb

    from models.settings import Settings

SETTING = "NIGHTJAR_STATE_URL"
SCHEMA = "nightjar"
CONNECT_TIMEOUT_SECONDS = 10
_SYNC_LOCK = 7_312_014  # pg_advisory_xact_lock: one sync (or schema change) at a time
SETTLED = ("accepted", "abandoned", "refused")

PG_DDL = f"""
create schema if not exists {SCHEMA};
{STATE_DDL.replace(f"{STATE_CATALOG}.main.", f"{SCHEMA}.")}
-- the replica's erasures have no key; PostgreSQL's are unique per contact and address hash
create unique index if not exists erasures_key
    on {SCHEMA}.erasures (contact_id, (coalesce(email_sha256, '')));
create table if not exists {SCHEMA}.sync (
    store_id varchar not null, generation bigint not null, synced_at timestamptz not null
);
insert into {SCHEMA}.sync
select gen_random_uuid()::varchar, 0, now() where not exists (select 1 from {SCHEMA}.sync);
"""
REPLICA_DDL = (
    f"create table if not exists {STATE_CATALOG}.main.postgres_sync "
    "(store_id varchar not null, generation bigint not null)"
)


def _statuses(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


# The merge of a replica's ledger row into PostgreSQL's (pg) of the same send_id.
LEDGER_MERGE = f"""
    excluded.updated_at > pg.updated_at
    and not (pg.status not in {_statuses(SENDABLE_STATUSES)}
             and excluded.status in {_statuses(SENDABLE_STATUSES)})
    and not (pg.status not in {_statuses((*SENDABLE_STATUSES, "in_flight"))}
             and excluded.status = 'in_flight')
"""
# A change written through as it happens: anything while PostgreSQL holds the message as
# sendable, the answer to a request in flight, or the same status again (a note, an id).
LEDGER_WRITE = f"""
    pg.status in {_statuses(SENDABLE_STATUSES)}
    or (pg.status = 'in_flight' and excluded.status <> 'planned')
    or pg.status = excluded.status
"""
# A request may leave only while PostgreSQL holds its message as sendable.
LEDGER_SEND = f"pg.status in {_statuses(SENDABLE_STATUSES)}"


@dataclass(frozen=True)
class _Table:
    name: str
    key: str  # the conflict target, as PostgreSQL's unique index reads it
    group: str  # rows compared and moved together: SQL both databases read alike
    merge: str  # ledger | values | latest | flags | insert | groups


_COHORT_DATE = "cohort || '/' || cast(business_date as varchar)"
TABLES = (
    _Table("send_ledger", "send_id", "cast(business_date as varchar)", "ledger"),
    _Table("cohort_membership", "cohort, business_date, contact_id", _COHORT_DATE, "groups"),
    _Table("cohort_snapshots", "cohort, business_date", "cast(business_date as varchar)", "values"),
    _Table("night_metrics", "business_date", "''", "values"),
    _Table("approvals", "business_date, check_name", "''", "latest"),
    _Table("erasures", "contact_id, (coalesce(email_sha256, ''))", "''", "flags"),
    _Table("suppressions", "email", "''", "insert"),
)
assert tuple(t.name for t in TABLES) == STATE_TABLES  # erasures before suppressions
_BY_NAME = {t.name: t for t in TABLES}


class StateStoreError(Exception):
    """The PostgreSQL state cannot be used; str() is one line, naming the server, never the
    password."""


class AlreadyRecorded(StateStoreError):
    """PostgreSQL holds messages of a batch as gone: the replica is behind it."""


def where(url: str) -> str:
    """host:port/database of `url`: what messages name (never the user's password)."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        return "an unreadable URL"
    host = str(parts.get("host") or "localhost")
    return f"{host}:{parts.get('port') or 5432}/{parts.get('dbname') or parts.get('user') or ''}"


def masked(text: str) -> str:
    """`text` with the password of any URL in it (scheme://user:password@) shown as ***."""
    return re.sub(r"(\w+://[^/\s:@]+:)[^/\s@]+@", r"\1***@", text)


def _reason(url: str, error: BaseException) -> str:
    """The first line of a driver's error, without the password, whatever it quotes."""
    text = " ".join(str(error).split("\n", 1)[0].split()) or type(error).__name__
    with contextlib.suppress(psycopg.Error):
        password = conninfo_to_dict(url).get("password")
        if password:
            text = text.replace(str(password), "***")
    return masked(text)


def _failed(url: str, error: BaseException, doing: str = "failed") -> StateStoreError:
    return StateStoreError(
        f"the PostgreSQL state at {where(url)} ({SETTING}) {doing}: {_reason(url, error)}"
    )


@dataclass
class _Schema:
    """PostgreSQL's columns of each state table: (name, data type), and Arrow's types."""

    columns: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    arrow: dict[str, pa.Schema] = field(default_factory=dict)


def _open(url: str) -> tuple[psycopg.Connection, _Schema]:
    """A connection with the schema in place (created if missing), or StateStoreError."""
    try:
        # autocommit: each `with pg.transaction()` is a transaction of its own, committed
        # when the block ends (not a savepoint of one left open)
        pg = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS, autocommit=True)
    except psycopg.Error as error:
        raise _failed(url, error, "cannot be reached") from None
    try:
        pg.execute("set timezone = 'UTC'")
        pg.execute("set datestyle = 'ISO, YMD'")
        with pg.transaction():
            pg.execute("select pg_advisory_xact_lock(%s)", [_SYNC_LOCK])
            pg.execute(PG_DDL)
        return pg, _read_schema(pg)
    except psycopg.Error as error:
        pg.close()
        raise _failed(url, error) from None


_ARROW = {
    "character varying": pa.string(),
    "text": pa.string(),
    "date": pa.date32(),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "boolean": pa.bool_(),
}


def _read_schema(pg: psycopg.Connection) -> _Schema:
    schema = _Schema()
    rows = pg.execute(
        """
        select table_name, column_name, data_type, numeric_precision, numeric_scale
        from information_schema.columns
        where table_schema = %s and table_name = any(%s)
        order by table_name, ordinal_position
        """,
        [SCHEMA, list(STATE_TABLES)],
    ).fetchall()
    fields: dict[str, list[pa.Field]] = {}
    for table, column, kind, precision, scale in rows:
        schema.columns.setdefault(table, []).append((column, kind))
        arrow = pa.decimal128(precision, scale) if kind == "numeric" else _ARROW[kind]
        fields.setdefault(table, []).append(pa.field(column, arrow))
    schema.arrow = {table: pa.schema(f) for table, f in fields.items()}
    return schema


def check(url: str) -> str | None:
    """Why the PostgreSQL state at `url` cannot be used, in one line, or None."""
    try:
        pg, _ = _open(url)
    except StateStoreError as error:
        return str(error)
    pg.close()
    return None


# -- digests: the same text of a row on both sides, so that equal groups are seen equal -------


def _row_text(columns: list[tuple[str, str]], dialect: str) -> str:
    parts = []
    for name, kind in columns:
        column = f'"{name}"'
        if kind == "timestamp with time zone":  # microseconds since the epoch
            text = (
                f"cast(epoch_us({column}) as varchar)"
                if dialect == "duckdb"
                else f"cast(cast(extract(epoch from {column}) * 1000000 as bigint) as varchar)"
            )
        elif kind in ("character varying", "text"):
            text = rf"replace(replace({column}, '\', '\\'), '|', '\|')"
        else:  # dates, numbers and booleans read alike in both
            text = f"cast({column} as varchar)"
        parts.append(rf"coalesce({text}, '\N')")
    return " || '|' || ".join(parts)


def _digest_sql(table: _Table, columns: list[tuple[str, str]], dialect: str) -> str:
    source = (
        f"{STATE_CATALOG}.main.{table.name}" if dialect == "duckdb" else f"{SCHEMA}.{table.name}"
    )
    order = "r" if dialect == "duckdb" else 'r collate "C"'
    return f"""
        select g, count(*), md5(string_agg(r, chr(10) order by {order}))
        from (select {table.group} as g, {_row_text(columns, dialect)} as r from {source}) as t
        group by g
    """


def _digests(con, sql: str) -> dict[str, tuple]:
    return {g: (n, digest) for g, n, digest in con.execute(sql).fetchall()}


# -- moving rows ----------------------------------------------------------------------------------


def _names(columns: list[tuple[str, str]]) -> str:
    return ", ".join(f'"{name}"' for name, _ in columns)


def _replica_rows(duck, table: _Table, columns, groups: Sequence[str]) -> list[tuple]:
    if not groups:
        return []
    return duck.execute(
        f"select {_names(columns)} from {STATE_CATALOG}.main.{table.name} "
        f"where {table.group} in (select unnest($groups::varchar[]))",
        {"groups": list(groups)},
    ).fetchall()


def _stage(pg: psycopg.Connection, table: _Table, columns, rows: list[tuple]) -> str:
    """The rows in a temporary table like PostgreSQL's, gone at commit; its name."""
    stage = f"stage_{table.name}"
    pg.execute(f"create temp table {stage} (like {SCHEMA}.{table.name}) on commit drop")
    with pg.cursor().copy(f"copy {stage} ({_names(columns)}) from stdin") as copy:
        for row in rows:
            copy.write_row(row)
    return stage


def _upsert(table: _Table, columns, stage: str, action: str, only_groups: bool = False) -> str:
    """Insert the staged rows (one per key) into PostgreSQL's table, `action` on conflict."""
    names = _names(columns)
    within = f"where {table.group} = any(%(groups)s)" if only_groups else ""
    return (
        f"insert into {SCHEMA}.{table.name} as pg ({names}) "
        f"select distinct on ({table.key}) {names} from {stage} {within} order by {table.key} "
        f"on conflict ({table.key}) {action}"
    )


def _update(columns, table: _Table, condition: str, keys_too: bool = True) -> str:
    key = {part.strip() for part in table.key.split(",")}
    changed = [name for name, _ in columns if keys_too or name not in key]
    sets = ", ".join(f'"{name}" = excluded."{name}"' for name in changed)
    return f"do update set {sets} where {condition}"


def _merge(pg, table: _Table, columns, stage: str, descendant: bool, groups: dict) -> int:
    """The staged replica rows into PostgreSQL's table; rows changed there."""
    if table.merge == "ledger":
        statements = [_upsert(table, columns, stage, _update(columns, table, LEDGER_MERGE))]
    elif table.merge == "values":
        values = [f'"{n}"' for n, _ in columns if n not in table.key.split(", ")]
        differ = f"({', '.join(f'pg.{v}' for v in values)}) is distinct from " + (
            f"({', '.join(f'excluded.{v}' for v in values)})"
        )
        action = _update(columns, table, differ, keys_too=False) if descendant else "do nothing"
        statements = [_upsert(table, columns, stage, action)]
    elif table.merge == "latest":
        condition = "excluded.approved_at > pg.approved_at"
        statements = [_upsert(table, columns, stage, _update(columns, table, condition))]
    elif table.merge == "flags":
        flags = ("was_suppressed", "outbox_scrubbed", "events_scrubbed")
        sets = ", ".join(f"{f} = pg.{f} or excluded.{f}" for f in flags)
        grows = " or ".join(f"(excluded.{f} and pg.{f} is not true)" for f in flags)
        statements = [_upsert(table, columns, stage, f"do update set {sets} where {grows}")]
    elif table.merge == "insert":  # suppressions
        statements = [_upsert(table, columns, stage, "do nothing")]
        if descendant:  # dropped by the replica when its address was erased
            statements.insert(
                0,
                f"""
                delete from {SCHEMA}.suppressions as s
                where not exists (select 1 from {stage} as r where r.email = s.email)
                  and encode(sha256(convert_to(lower(trim(s.email)), 'UTF8')), 'hex') in (
                      select email_sha256 from {SCHEMA}.erasures
                      where email_sha256 is not null)
                """,
            )
    else:  # groups: cohort membership, a cohort's members on a date together
        statements = [
            f"delete from {SCHEMA}.{table.name} where {table.group} = any(%(replaced)s)",
            _upsert(table, columns, stage, "do nothing", only_groups=True),
        ]
    changed = 0
    for sql in statements:
        cursor = pg.execute(sql, groups if "%(" in sql else None)
        changed += max(cursor.rowcount, 0)
    return changed


# -- syncing --------------------------------------------------------------------------------------


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
    pg, schema = _open(url)
    try:
        with pg, connect(warehouse) as duck:
            ensure_schema(duck)
            duck.execute(REPLICA_DDL)
            return _sync_with(duck, pg, schema, down)
    except psycopg.Error as error:
        raise _failed(url, error) from None


def _sync_with(duck, pg: psycopg.Connection, schema: _Schema, down: bool) -> Synced:
    synced = Synced()
    replica_columns = {
        (table, column)
        for table, column in duck.execute(
            "select table_name, column_name from duckdb_columns() "
            "where database_name = ? and schema_name = 'main'",
            [STATE_CATALOG],
        ).fetchall()
    }
    columns = {
        t.name: [c for c in schema.columns[t.name] if (t.name, c[0]) in replica_columns]
        for t in TABLES
    }
    differing: dict[str, list[str]] = {}
    with pg.transaction():
        pg.execute("select pg_advisory_xact_lock(%s)", [_SYNC_LOCK])
        store_id, generation = pg.execute(
            f"select store_id, generation from {SCHEMA}.sync for update"
        ).fetchone()
        record = duck.execute(
            f"select store_id, generation from {STATE_CATALOG}.main.postgres_sync"
        ).fetchall()
        synced.descendant = record == [(store_id, generation)]
        snapshots = {
            row[0]
            for row in duck.execute(
                f"select distinct {_COHORT_DATE} from {STATE_CATALOG}.main.cohort_snapshots"
            ).fetchall()
        }
        changed = 0
        for table in TABLES:
            cols = columns[table.name]
            mine = _digests(duck, _digest_sql(table, cols, "duckdb"))
            theirs = _digests(pg, _digest_sql(table, cols, "postgres"))
            groups = sorted(g for g in mine.keys() | theirs.keys() if mine.get(g) != theirs.get(g))
            if not groups:
                continue
            differing[table.name] = groups
            params = {}
            if table.merge == "groups":
                # a date's membership the replica vouches for replaces PostgreSQL's; a
                # date PostgreSQL lacks is added
                replaced = [g for g in groups if synced.descendant and g in snapshots]
                added = [g for g in groups if g in mine and g not in theirs]
                params = {"replaced": replaced, "groups": sorted({*replaced, *added})}
                up = [g for g in params["groups"] if g in mine]
            else:
                up = [g for g in groups if g in mine]
            rows = _replica_rows(duck, table, cols, up)
            synced.up += len(rows)
            stage = _stage(pg, table, cols, rows)
            changed += _merge(pg, table, cols, stage, synced.descendant, params)
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


def _bring_down(duck, pg, schema: _Schema, columns, differing: dict[str, list[str]]) -> int:
    """The groups that differed, as PostgreSQL now holds them, into the replica: one
    transaction, so that the replica is never half PostgreSQL's."""
    frames = {}
    for name, groups in differing.items():
        table, cols = _BY_NAME[name], columns[name]
        rows = pg.execute(
            f"select {_names(cols)} from {SCHEMA}.{name} where {table.group} = any(%s)",
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
            table = _BY_NAME[name]
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
            self._pg, schema = _open(self.url)
            self._columns = schema.columns["send_ledger"]
        return self._pg

    def write(self, con: duckdb.DuckDBPyConnection, send_ids: Sequence[str], sending: bool) -> None:
        """The ledger rows of `send_ids`, as `con` now holds them, into PostgreSQL. `sending`:
        they are about to leave, allowed only while PostgreSQL holds each as sendable; else
        AlreadyRecorded, and nothing changes on either side."""
        pg = self._connection()
        table = _BY_NAME["send_ledger"]
        rows = con.execute(
            f"select {_names(self._columns)} from {STATE_CATALOG}.send_ledger "
            "where send_id in (select unnest($ids::varchar[]))",
            {"ids": list(send_ids)},
        ).fetchall()
        try:
            with pg.transaction():
                stage = _stage(pg, table, self._columns, rows)
                condition = LEDGER_SEND if sending else LEDGER_WRITE
                action = _update(self._columns, table, condition)
                cursor = pg.execute(
                    _upsert(table, self._columns, stage, action) + " returning send_id"
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
            raise _failed(self.url, error) from None

    def close(self) -> None:
        if self._pg is not None:
            with contextlib.suppress(psycopg.Error):
                self._pg.close()
            self._pg = None
