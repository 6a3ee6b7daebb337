"""Ingest SendGrid's events, as `nightjar webhook` landed them, into `raw.sendgrid_events`,
and settle the send ledger's messages of unknown fate from them.

Every line of a file is accounted for: loaded, or quarantined in `raw.quarantine` with the
rule it broke (models/event_checks.py holds the rules and the SQL that checks them). One
poison record, signed by SendGrid or not, never stops the load of the rest.
"""

import contextlib
import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
from dagster import AssetExecutionContext, AssetKey, Failure, MaterializeResult, asset

from assets.ingest.erasure import erase_in_warehouse
from assets.ingest.erasure_events import (
    ErasedLines,
    EventFile,
    erase_in_event_files,
    find_erased_event_lines,
    read_event_file,
    remove_stale_event_temp_files,
    scrub_event_file,
)
from assets.shared.owners import OWNERS
from assets.shared.partitions import ONE_RUN_PER_DATE, WAREHOUSE_POOL, nightly_partitions
from assets.shared.resources import NightjarResource
from assets.shared.spark_files import refresh_after_load
from assets.shared.state_store import synced as state_synced
from assets.shared.warehouse import connect, ensure_schema, transaction
from models.event_checks import (
    CHECK_EVENTS,
    CHECK_EVENTS_PARAMETERS,
    PROBLEMS,
    PROBLEMS_PARAMETERS,
    EventsLoaded,
    Problem,
)
from models.landing import EVENTS_FOLDER
from models.quarantine import shown
from models.settings import Settings
from senders.ledger import Ledger
from senders.lock import SendLockTimeout, send_lock
from senders.settlement import Settled, settle_in_flight

EXTRACT = "sendgrid_events"  # as raw.quarantine names it
MAX_WARNED_PROBLEMS = 20  # named one by one in the asset's warning


def load_event_files(landing: Path, warehouse: Path) -> EventsLoaded:
    """(Re)load every event file that is new or has changed since it was loaded: the webhook
    appends, an erasure rewrites (perhaps to the very same size), and either changes the
    file's modification time, so a file of the same size and time holds the same events. A
    reloaded file replaces its own rows and quarantine. Files holding an erased contact's or
    address's events are scrubbed once the load is committed."""
    remove_stale_event_temp_files(landing)
    files = sorted((landing / EVENTS_FOLDER).glob("*.jsonl"))
    loaded = EventsLoaded()
    to_scrub: list[ErasedLines] = []
    with connect(warehouse) as con:
        ensure_schema(con)
        known = {
            name: (size, modified)
            for name, size, modified in con.execute(
                "select source_file, size_bytes, modified_ns from raw.loaded_event_files"
            ).fetchall()
        }
        for path in files:
            stat = path.stat()
            if known.get(str(path)) == (stat.st_size, stat.st_mtime_ns):
                continue
            events = read_event_file(path)
            # First the state remembers which erased addresses these events show
            # unsubscribed, then the warehouse takes the file (DuckDB writes one file per
            # transaction): a crash between them loses no suppression.
            found = find_erased_event_lines(con, events)
            with transaction(con):
                rows, problems = _load_file(con, events)
            loaded.files += 1
            loaded.rows += rows
            loaded.problems += problems
            if found.rows:
                to_scrub.append(found)
        _erase_in_loaded_events(con)
        for found in to_scrub:
            scrub_event_file(con, landing, found)
        erase_in_event_files(con, landing)  # erasures no file has been searched for yet
    return loaded


def _erase_in_loaded_events(con: duckdb.DuckDBPyConnection) -> None:
    """Events about erased addresses keep none: applied to every file loaded and not checked
    yet, also one a crash left between its load and this."""
    files = [
        row[0]
        for row in con.execute(
            "select source_file from raw.loaded_event_files where not erasure_checked"
        ).fetchall()
    ]
    if files:
        erase_in_warehouse(con, event_files=files)
        con.execute(
            "update raw.loaded_event_files set erasure_checked = true "
            "where source_file in (select unnest($files::varchar[]))",
            {"files": files},
        )


def _load_file(con: duckdb.DuckDBPyConnection, events: EventFile) -> tuple[int, list[Problem]]:
    """One file's events into raw.sendgrid_events, its problems into raw.quarantine, both
    replacing what an earlier load of the file left. Returns (events loaded, problems)."""
    source = str(events.path)
    received = _receipt_date(events.path)
    con.register("event_file_lines", events.lines)
    try:
        con.execute(CHECK_EVENTS, CHECK_EVENTS_PARAMETERS)
    finally:
        con.unregister("event_file_lines")
    con.execute("delete from raw.sendgrid_events where source_file = ?", [source])
    con.execute(
        "delete from raw.quarantine where extract = ? and source_file = ?", [EXTRACT, source]
    )
    rows = con.execute(_INSERT_EVENTS, {"file": source}).fetchall()[0][0]
    problems = _quarantine(con, source, received)
    con.execute("drop table checked_events")
    con.execute(
        "insert or replace into raw.loaded_event_files "
        "(source_file, size_bytes, row_count, loaded_at, modified_ns, erasure_checked) "
        "values (?, ?, ?, now(), ?, false)",
        [source, events.size, rows, events.modified_ns],
    )
    return rows, problems


def _receipt_date(path: Path) -> dt.date:
    """The UTC date the webhook received the file's events: its name (2025-11-20.jsonl), or
    for a file named otherwise, the day it last changed."""
    try:
        return dt.date.fromisoformat(path.stem)
    except ValueError:
        return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).date()


_INSERT_EVENTS = """
insert into raw.sendgrid_events (
    source_file, source_row, sg_event_id, event, email, event_timestamp, sg_message_id,
    reason, bounce_type, asm_group_id, campaign, contact_id, send_id, topic
)
select
    $file, source_row, sg_event_id, event_text, lower(trim(email)),
    to_timestamp(seconds::bigint),
    sg_message_id, reason, type, asm_group_id, campaign, contact_id, send_id, topic
from checked_events
where loads
"""


def _quarantine(con: duckdb.DuckDBPyConnection, source: str, received: dt.date) -> list[Problem]:
    """The file's problems into raw.quarantine, values masked as every extract's are."""
    found = con.execute(PROBLEMS, PROBLEMS_PARAMETERS).fetchall()
    if not found:
        return []
    lines, columns, rules, values, actions = (list(each) for each in zip(*found, strict=True))
    frame = pa.table(
        {
            "source_file": pa.array([source] * len(found), pa.string()),
            "source_row": pa.array(lines, pa.int64()),
            "column_name": pa.array(columns, pa.string()),
            "rule": pa.array(rules, pa.string()),
            "value": pa.array(map(shown, columns, values), pa.string()),
            "action": pa.array(actions, pa.string()),
        }
    )
    con.register("incoming_quarantine", frame)
    try:
        con.execute(
            "insert into raw.quarantine by name "
            "select $date as business_date, $extract as extract, * from incoming_quarantine",
            {"date": received, "extract": EXTRACT},
        )
    finally:
        con.unregister("incoming_quarantine")
    return [Problem(source, row, column, rule, action) for row, column, rule, _, action in found]


@asset(
    key=AssetKey(["raw", "sendgrid_events"]),
    group_name="ingest",
    owners=OWNERS["ingest"],
    partitions_def=nightly_partitions,
    kinds={"duckdb", "sendgrid"},
    pool=WAREHOUSE_POOL,
    backfill_policy=ONE_RUN_PER_DATE,
    description="SendGrid's delivery and engagement events (bounces, unsubscribes, opens, "
    "clicks...) received by `nightjar webhook`; they feed the suppression list and the "
    "engagement columns of the customer view, and settle in the send ledger the messages "
    "whose request got no answer, before the night's send decisions are made. A line that "
    "breaks the rules is quarantined (raw.quarantine, extract sendgrid_events), the rest "
    "loads.",
)
def sendgrid_events(
    context: AssetExecutionContext, nightjar: NightjarResource
) -> MaterializeResult:
    settings = nightjar.settings()
    with state_synced(settings) as mirror:  # PostgreSQL's state, when it has one
        try:
            loaded = load_event_files(settings.landing, settings.warehouse)
        except BaseException:
            # Spark's copy of the raw rows, with the erasures applied, even after a fault
            # (which is what the night reports)
            with contextlib.suppress(Exception):
                refresh_after_load(settings)
            raise
        refresh_after_load(settings)
        settled = None if nightjar.dry_run else settle_ledger(settings, mirror)
    if loaded.problems:
        context.log.warning(_problems_warning(loaded))
    metadata = {
        "files_loaded": loaded.files,
        "events_loaded": loaded.rows,
        "events_quarantined": loaded.quarantined,
        "values_removed": loaded.values_removed,
    }
    if settled is not None:  # a dry run changes no ledger
        metadata.update(
            messages_settled=settled.settled,
            messages_abandoned=settled.abandoned,
            messages_still_pending=settled.pending,
        )
    return MaterializeResult(metadata=metadata)


def _problems_warning(loaded: EventsLoaded) -> str:
    """Which lines were quarantined and why (file, line, field, rule), never a value."""
    named = "\n  ".join(str(problem) for problem in loaded.problems[:MAX_WARNED_PROBLEMS])
    more = len(loaded.problems) - MAX_WARNED_PROBLEMS
    return (
        f"SendGrid events: {loaded.quarantined} line(s) quarantined, {loaded.values_removed} "
        f"value(s) emptied (raw.quarantine, extract {EXTRACT}); the rest loaded.\n  {named}"
        + (f"\n  ... and {more} more" if more > 0 else "")
    )


def settle_ledger(settings: Settings, mirror=None) -> Settled:
    """Every campaign's messages of unknown fate, settled from the events just loaded."""
    try:
        with (
            send_lock(settings.warehouse, settings.send_lock_wait_seconds),
            connect(settings.warehouse) as con,
        ):
            ensure_schema(con)
            return settle_in_flight(Ledger(con, mirror), settings)
    except SendLockTimeout as error:
        raise Failure(description=str(error)) from None
