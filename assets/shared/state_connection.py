"""The PostgreSQL end of the state store (assets/shared/state_store.py): its schema
`nightjar`, a connection to it with that schema in place, and the errors it raises, whose
message is one line naming the server, never the password."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

import psycopg
import pyarrow as pa
from psycopg.conninfo import conninfo_to_dict

from assets.shared.warehouse import STATE_CATALOG, STATE_DDL, STATE_TABLES

SETTING = "NIGHTJAR_STATE_URL"
SCHEMA = "nightjar"
CONNECT_TIMEOUT_SECONDS = 10
SYNC_LOCK = 7_312_014  # pg_advisory_xact_lock: one sync (or schema change) at a time

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


def failed(url: str, error: BaseException, doing: str = "failed") -> StateStoreError:
    """The StateStoreError to raise for a driver's `error` on the state at `url`."""
    return StateStoreError(
        f"the PostgreSQL state at {where(url)} ({SETTING}) {doing}: {_reason(url, error)}"
    )


@dataclass
class Schema:
    """PostgreSQL's columns of each state table: (name, data type), and Arrow's types."""

    columns: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    arrow: dict[str, pa.Schema] = field(default_factory=dict)


def open_store(url: str) -> tuple[psycopg.Connection, Schema]:
    """A connection with the schema in place (created if missing), or StateStoreError."""
    try:
        # autocommit: each `with pg.transaction()` is a transaction of its own, committed
        # when the block ends (not a savepoint of one left open)
        pg = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS, autocommit=True)
    except psycopg.Error as error:
        raise failed(url, error, "cannot be reached") from None
    try:
        pg.execute("set timezone = 'UTC'")
        pg.execute("set datestyle = 'ISO, YMD'")
        with pg.transaction():
            pg.execute("select pg_advisory_xact_lock(%s)", [SYNC_LOCK])
            pg.execute(PG_DDL)
        return pg, _read_schema(pg)
    except psycopg.Error as error:
        pg.close()
        raise failed(url, error) from None


_ARROW = {
    "character varying": pa.string(),
    "text": pa.string(),
    "date": pa.date32(),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "boolean": pa.bool_(),
    "double precision": pa.float64(),
}


def _read_schema(pg: psycopg.Connection) -> Schema:
    schema = Schema()
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
        pg, _ = open_store(url)
    except StateStoreError as error:
        return str(error)
    pg.close()
    return None
