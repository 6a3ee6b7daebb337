"""The DuckDB warehouse and Nightjar's state beside it: brief connections, and the tables
Nightjar owns outside dbt.

`raw.*`, in the warehouse, holds every loaded extract row with its business date and origin:
like dbt's tables it can be rebuilt from the landing, and the warehouse file may be deleted.
`nightjar.*` is Nightjar's state, which nothing can rebuild: the send ledger, cohort history,
approvals, suppressions and erasures. It lives in a file of its own (NIGHTJAR_STATE, default
state.duckdb beside the warehouse), attached to every warehouse connection as the catalog
`nightjar`, so that `nightjar.send_ledger` reads the same wherever it is written. Deleting or
rebuilding the warehouse never makes Nightjar forget what it sent.

DuckDB lets one transaction write to one attached file only: code writes state and the
warehouse in separate statements, state first where both change ("remember, then forget").
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

RAW_DDL = """
create schema if not exists raw;
create table if not exists raw.crm_contacts (
    business_date date not null, source_file varchar not null, source_row integer not null,
    contact_id varchar not null, email varchar, first_name varchar, last_name varchar,
    birth_date date, country varchar, timezone varchar, email_opt_in boolean not null,
    created_at timestamptz not null, updated_at timestamptz not null, is_deleted boolean not null
);
create table if not exists raw.orders (
    business_date date not null, source_file varchar not null, source_row integer not null,
    order_id varchar not null, contact_id varchar, email varchar,
    ordered_at timestamptz not null, updated_at timestamptz not null, status varchar not null,
    currency varchar not null, total_amount decimal(18, 4) not null
);
create table if not exists raw.web_events (
    business_date date not null, source_file varchar not null, source_row integer not null,
    event_id varchar not null, event_timestamp timestamptz not null, event_name varchar not null,
    anonymous_id varchar not null, contact_id varchar, page_url varchar, sku varchar,
    value decimal(18, 4)
);
-- optional: folders without order_lines.csv add none (docs/contract.md §1)
create table if not exists raw.order_lines (
    business_date date not null, source_file varchar not null, source_row integer not null,
    order_id varchar not null, line_id varchar not null, sku varchar not null,
    product_name varchar, category varchar,
    quantity integer not null, unit_price decimal(18, 4) not null
);
create table if not exists raw.sendgrid_events (
    source_file varchar not null,
    sg_event_id varchar, event varchar not null, email varchar,
    event_timestamp timestamptz not null, sg_message_id varchar, reason varchar,
    bounce_type varchar, asm_group_id bigint,
    campaign varchar, contact_id varchar, send_id varchar  -- Nightjar's custom_args, echoed
);
-- the event's line in its file, as raw.quarantine names the lines left out
alter table raw.sendgrid_events add column if not exists source_row bigint;
-- the message's topic (custom_args), or the topic a one-click unsubscribe names
alter table raw.sendgrid_events add column if not exists topic varchar;
create table if not exists raw.loaded_event_files (
    source_file varchar primary key, size_bytes bigint not null, row_count bigint not null,
    loaded_at timestamptz not null
);
-- when the file last changed as loaded: a rewritten (scrubbed) file is loaded again even at
-- the same size
alter table raw.loaded_event_files add column if not exists modified_ns bigint;
-- false until the erasures its events may carry have been applied
-- (assets/ingest/sendgrid_events.py)
alter table raw.loaded_event_files add column if not exists erasure_checked boolean default true;
create table if not exists raw.quarantine (
    business_date date not null, extract varchar not null,
    source_file varchar not null, source_row bigint not null,
    column_name varchar not null, rule varchar not null,
    value varchar,  -- as landed, masked when personal
    action varchar not null  -- row_quarantined (left out) or value_removed (row kept)
);
create table if not exists raw.loaded_files (
    business_date date not null, extract varchar not null, source_file varchar not null,
    row_count bigint not null, loaded_at timestamptz not null,
    primary key (business_date, extract)
);
-- false until the erasures its rows may carry have been applied (assets/ingest/extracts.py)
alter table raw.loaded_files add column if not exists erasure_checked boolean default true;
"""

STATE_DDL = """
create table if not exists nightjar.main.send_ledger (
    send_id varchar primary key,
    campaign varchar not null, contact_id varchar not null, occasion varchar not null,
    business_date date not null, channel varchar not null,
    status varchar not null,  -- see senders/ledger.py
    provider_message_id varchar, attempts integer not null default 0, error varchar,
    created_at timestamptz not null, updated_at timestamptz not null,
    variant varchar, send_at timestamptz,
    unique (campaign, contact_id, occasion)
);
-- ledgers made before A/B variants, send times and journeys
alter table nightjar.main.send_ledger add column if not exists variant varchar;
alter table nightjar.main.send_ledger add column if not exists send_at timestamptz;
-- a journey's step; its occasion is then `<instance occasion>#<step>` (senders/messages.py)
alter table nightjar.main.send_ledger add column if not exists step varchar;
-- one row per journey instance (senders/journey_state.py): its entry, control group, where it
-- stands and how it ended; which steps went is the ledger's
create table if not exists nightjar.main.journey_instances (
    journey varchar not null, contact_id varchar not null, occasion varchar not null,
    entered_on date not null, entered_at timestamptz not null,
    in_control_group boolean not null,
    status varchar not null,  -- active, finished or exited
    end_reason varchar, ended_on date,
    steps_done integer not null, last_step varchar, last_step_on date,
    next_step varchar, next_due_on date,
    updated_at timestamptz not null,
    primary key (journey, contact_id, occasion)
);
create table if not exists nightjar.main.cohort_membership (
    cohort varchar not null, business_date date not null, contact_id varchar not null,
    entered_on date not null,
    primary key (cohort, business_date, contact_id)
);
create table if not exists nightjar.main.cohort_snapshots (
    cohort varchar not null, business_date date not null, member_count bigint not null,
    primary key (cohort, business_date)
);
create table if not exists nightjar.main.night_metrics (
    business_date date primary key,  -- nights that passed the send checks
    contacts bigint not null, mailable bigint not null, total_spend decimal(18, 4) not null
);
create table if not exists nightjar.main.approvals (
    business_date date not null, check_name varchar not null,
    approved_at timestamptz not null, approved_by varchar not null,
    primary key (business_date, check_name)
);
create table if not exists nightjar.main.erasures (  -- assets/ingest/erasure.py
    contact_id varchar not null,
    email_sha256 varchar,  -- of an address the contact had (trimmed, lower-cased), or null
    was_suppressed boolean not null,  -- it had bounced, unsubscribed or been refused
    erased_at timestamptz not null,
    outbox_scrubbed boolean not null default false,
    events_scrubbed boolean not null default false  -- the SendGrid event files
);
-- erasures made before event files were scrubbed: every file is searched once more
alter table nightjar.main.erasures add column if not exists events_scrubbed boolean default false;
create table if not exists nightjar.main.suppressions (
    email varchar primary key,  -- normalized: trimmed, lower-cased
    reason varchar not null, suppressed_at timestamptz not null
);
-- an A/B test's verdict once its winner rule was met (assets/results/experiments.py): later
-- sends use the winner alone (int_campaign_members_unioned)
create table if not exists nightjar.main.experiment_decisions (
    campaign varchar not null, step varchar not null,  -- '' for a one-shot campaign
    winner varchar not null, metric varchar not null, probability double precision not null,
    figures varchar not null,  -- each arm: members judged, successes, probability (JSON)
    decided_on date not null, decided_at timestamptz not null,
    primary key (campaign, step)
);
"""

BUILD_STATE_DDL = """
-- what dbt's build schema holds: the warehouse's own, deleted with it
create schema if not exists nightjar_build;
create table if not exists nightjar_build.dbt_build_state (  -- assets/warehouse/publish.py
    unpublished boolean not null  -- the build schema holds tables readers never saw
);
-- what the incremental models hold: built through a date, perhaps ahead up to another
alter table nightjar_build.dbt_build_state add column if not exists built_through date;
alter table nightjar_build.dbt_build_state add column if not exists attempted_through date;
alter table nightjar_build.dbt_build_state add column if not exists models_fingerprint varchar;
alter table nightjar_build.dbt_build_state add column if not exists started_at timestamptz;
alter table nightjar_build.dbt_build_state add column if not exists built_started_at timestamptz;
"""


STATE_CATALOG = "nightjar"
# Nightjar's state tables, as the warehouse held them before they had a file of their own.
STATE_TABLES = (
    "send_ledger", "cohort_membership", "cohort_snapshots", "night_metrics", "approvals",
    "erasures", "suppressions", "journey_instances", "experiment_decisions",
)  # fmt: skip


def state_path_for(warehouse: Path) -> Path:
    """Where the state of `warehouse` lives: NIGHTJAR_STATE, or state.duckdb beside it."""
    explicit = (os.environ.get("NIGHTJAR_STATE") or "").strip()
    return (
        Path(explicit).expanduser().resolve() if explicit else warehouse.with_name("state.duckdb")
    )


@contextmanager
def connect(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection to the warehouse, the state attached as `nightjar`; DuckDB
    allows one writing process per file, so never hold one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(f"set memory_limit = '{memory_limit()}'")
        _attach_state(con, state_path_for(path), read_only)
        yield con
    finally:
        con.close()


def _attach_state(con: duckdb.DuckDBPyConnection, state: Path, read_only: bool) -> None:
    if con.execute("select current_database()").fetchall()[0][0] == STATE_CATALOG:
        raise ValueError(
            f"NIGHTJAR_WAREHOUSE may not be named {STATE_CATALOG}.duckdb: that name is Nightjar's "
            "state's. Rename the file."
        )
    if read_only and not state.exists():
        return  # nothing sent yet; a reader then finds no nightjar.* table
    state.parent.mkdir(parents=True, exist_ok=True)
    mode = " (read_only)" if read_only else ""
    quoted = str(state).replace("'", "''")
    con.execute(f"attach if not exists '{quoted}' as {STATE_CATALOG}{mode}")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Everything inside commits together, or not at all."""
    con.execute("begin")
    try:
        yield
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


_MEMORY = re.compile(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)


def memory_limit() -> str:
    """NIGHTJAR_DUCKDB_MEMORY_LIMIT (default 1GB): DuckDB would otherwise take 80% of the
    machine and keep it; bounded, it spills to disk. dbt reads the same setting."""
    value = os.environ.get("NIGHTJAR_DUCKDB_MEMORY_LIMIT", "").strip() or "1GB"
    if not _MEMORY.fullmatch(value):
        raise ValueError(
            f"NIGHTJAR_DUCKDB_MEMORY_LIMIT={value!r} is not a size such as 512MB or 4GB"
        )
    return value


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw and state tables if missing (dbt reads them as sources), and move the
    state of a warehouse made before it had a file of its own into that file."""
    con.execute(RAW_DDL)
    con.execute(STATE_DDL)
    con.execute(BUILD_STATE_DDL)
    _move_state_out_of_warehouse(con)


def _move_state_out_of_warehouse(con: duckdb.DuckDBPyConnection) -> None:
    """An older warehouse kept Nightjar's state in its schema `nightjar`: its rows go to the
    state file (into tables still empty there: a move interrupted half way is finished by
    the next run, never doubled), the build state to `nightjar_build`, then the schema goes.
    A statement each: DuckDB writes one file per transaction."""
    database = con.execute("select current_database()").fetchall()[0][0]
    old = {
        row[0]
        for row in con.execute(
            "select table_name from duckdb_tables() "
            "where database_name = ? and schema_name = 'nightjar'",
            [database],
        ).fetchall()
    }
    if not old and not _has_old_schema(con, database):
        return
    targets = {table: f"{STATE_CATALOG}.main.{table}" for table in STATE_TABLES}
    targets["dbt_build_state"] = "nightjar_build.dbt_build_state"
    for table in sorted(old & set(targets)):
        target = targets[table]
        if not con.execute(f"select count(*) from {target}").fetchall()[0][0]:
            con.execute(
                f'insert into {target} by name select * from "{database}".nightjar."{table}"'
            )
    con.execute(f'drop schema "{database}".nightjar cascade')


def _has_old_schema(con: duckdb.DuckDBPyConnection, database: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from duckdb_schemas() "
            "where database_name = ? and schema_name = 'nightjar'",
            [database],
        ).fetchall()[0][0]
    )
