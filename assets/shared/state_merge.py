"""The state tables as a sync (assets/shared/state_store.py) sees them, and the SQL that
compares and merges them: each table's key and groups, the digest of a group on either side,
and how a replica row meets PostgreSQL's row of the same key:

- send_ledger: the row changed last wins, except that a message never becomes sendable again
  (planned, failed) once it is anything else, nor in flight again once settled; the one
  legitimate way back, an unanswered request found unsent, is written through as it happens;
- erasures: every erasure is kept, and its flags (suppressed, outbox and events scrubbed)
  only ever turn true; approvals: the latest approval of a check wins; journey_instances:
  the row changed last wins;
- cohort_membership, cohort_snapshots, night_metrics, suppressions: a replica that descends
  from PostgreSQL's current state (it synced it last, and no other sync changed PostgreSQL
  since) holds the newer truth: its membership of a cohort on a date replaces PostgreSQL's
  (for the dates whose snapshot it holds), its snapshots and metrics win, and a suppression it
  dropped when its address was erased is dropped. Any other replica (new, restored, or left
  behind by another machine) only adds what PostgreSQL lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from assets.shared.state_connection import SCHEMA
from assets.shared.warehouse import STATE_CATALOG, STATE_TABLES
from senders.ledger import SENDABLE_STATUSES


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
class Table:
    name: str
    key: str  # the conflict target, as PostgreSQL's unique index reads it
    group: str  # rows compared and moved together: SQL both databases read alike
    merge: str  # ledger | values | latest | flags | insert | groups


COHORT_DATE = "cohort || '/' || cast(business_date as varchar)"
TABLES = (
    Table("send_ledger", "send_id", "cast(business_date as varchar)", "ledger"),
    Table("cohort_membership", "cohort, business_date, contact_id", COHORT_DATE, "groups"),
    Table("cohort_snapshots", "cohort, business_date", "cast(business_date as varchar)", "values"),
    Table("night_metrics", "business_date", "''", "values"),
    Table("approvals", "business_date, check_name", "''", "latest"),
    Table("erasures", "contact_id, (coalesce(email_sha256, ''))", "''", "flags"),
    Table("suppressions", "email", "''", "insert"),
    Table("journey_instances", "journey, contact_id, occasion", "journey", "latest"),
    # a verdict, made once (made again only when its winner is no longer a variant): a
    # replica that holds all PostgreSQL has, and more, brings its own
    Table("experiment_decisions", "campaign, step", "''", "values"),
)
assert tuple(t.name for t in TABLES) == STATE_TABLES  # erasures before suppressions
BY_NAME = {t.name: t for t in TABLES}


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


def digest_sql(table: Table, columns: list[tuple[str, str]], dialect: str) -> str:
    """Each group of `table` in the replica (dialect duckdb) or PostgreSQL: (group, rows,
    digest)."""
    source = (
        f"{STATE_CATALOG}.main.{table.name}" if dialect == "duckdb" else f"{SCHEMA}.{table.name}"
    )
    order = "r" if dialect == "duckdb" else 'r collate "C"'
    return f"""
        select g, count(*), md5(string_agg(r, chr(10) order by {order}))
        from (select {table.group} as g, {_row_text(columns, dialect)} as r from {source}) as t
        group by g
    """


def digests(con, sql: str) -> dict[str, tuple]:
    return {g: (n, digest) for g, n, digest in con.execute(sql).fetchall()}


# -- moving rows ----------------------------------------------------------------------------------


def names(columns: list[tuple[str, str]]) -> str:
    return ", ".join(f'"{name}"' for name, _ in columns)


def replica_rows(duck, table: Table, columns, groups: Sequence[str]) -> list[tuple]:
    if not groups:
        return []
    return duck.execute(
        f"select {names(columns)} from {STATE_CATALOG}.main.{table.name} "
        f"where {table.group} in (select unnest($groups::varchar[]))",
        {"groups": list(groups)},
    ).fetchall()


def stage(pg: psycopg.Connection, table: Table, columns, rows: list[tuple]) -> str:
    """The rows in a temporary table like PostgreSQL's, gone at commit; its name."""
    staged = f"stage_{table.name}"
    pg.execute(f"create temp table {staged} (like {SCHEMA}.{table.name}) on commit drop")
    with pg.cursor().copy(f"copy {staged} ({names(columns)}) from stdin") as copy:
        for row in rows:
            copy.write_row(row)
    return staged


def upsert(table: Table, columns, staged: str, action: str, only_groups: bool = False) -> str:
    """Insert the staged rows (one per key) into PostgreSQL's table, `action` on conflict."""
    listed = names(columns)
    within = f"where {table.group} = any(%(groups)s)" if only_groups else ""
    return (
        f"insert into {SCHEMA}.{table.name} as pg ({listed}) "
        f"select distinct on ({table.key}) {listed} from {staged} {within} order by {table.key} "
        f"on conflict ({table.key}) {action}"
    )


def update(columns, table: Table, condition: str, keys_too: bool = True) -> str:
    """The `on conflict` action that takes the replica's columns where `condition` holds."""
    key = {part.strip() for part in table.key.split(",")}
    changed = [name for name, _ in columns if keys_too or name not in key]
    sets = ", ".join(f'"{name}" = excluded."{name}"' for name in changed)
    return f"do update set {sets} where {condition}"


def merge(pg, table: Table, columns, staged: str, descendant: bool, groups: dict) -> int:
    """The staged replica rows into PostgreSQL's table; rows changed there."""
    if table.merge == "ledger":
        statements = [upsert(table, columns, staged, update(columns, table, LEDGER_MERGE))]
    elif table.merge == "values":
        values = [f'"{n}"' for n, _ in columns if n not in table.key.split(", ")]
        differ = f"({', '.join(f'pg.{v}' for v in values)}) is distinct from " + (
            f"({', '.join(f'excluded.{v}' for v in values)})"
        )
        action = update(columns, table, differ, keys_too=False) if descendant else "do nothing"
        statements = [upsert(table, columns, staged, action)]
    elif table.merge == "latest":
        changed_at = "approved_at" if table.name == "approvals" else "updated_at"
        condition = f"excluded.{changed_at} > pg.{changed_at}"
        statements = [upsert(table, columns, staged, update(columns, table, condition))]
    elif table.merge == "flags":
        flags = ("was_suppressed", "outbox_scrubbed", "events_scrubbed")
        sets = ", ".join(f"{f} = pg.{f} or excluded.{f}" for f in flags)
        grows = " or ".join(f"(excluded.{f} and pg.{f} is not true)" for f in flags)
        statements = [upsert(table, columns, staged, f"do update set {sets} where {grows}")]
    elif table.merge == "insert":  # suppressions
        statements = [upsert(table, columns, staged, "do nothing")]
        if descendant:  # dropped by the replica when its address was erased
            statements.insert(
                0,
                f"""
                delete from {SCHEMA}.suppressions as s
                where not exists (select 1 from {staged} as r where r.email = s.email)
                  and encode(sha256(convert_to(lower(trim(s.email)), 'UTF8')), 'hex') in (
                      select email_sha256 from {SCHEMA}.erasures
                      where email_sha256 is not null)
                """,
            )
    else:  # groups: cohort membership, a cohort's members on a date together
        statements = [
            f"delete from {SCHEMA}.{table.name} where {table.group} = any(%(replaced)s)",
            upsert(table, columns, staged, "do nothing", only_groups=True),
        ]
    changed = 0
    for sql in statements:
        cursor = pg.execute(sql, groups if "%(" in sql else None)
        changed += max(cursor.rowcount, 0)
    return changed
