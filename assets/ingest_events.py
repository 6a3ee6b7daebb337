"""Ingest SendGrid's events, as `nightjar webhook` landed them, into `raw.sendgrid_events`."""

from pathlib import Path

from dagster import AssetExecutionContext, AssetKey, Failure, MaterializeResult, asset

from pipelines.erasure import erase_in_warehouse
from pipelines.landing import EVENTS_FOLDER
from pipelines.owners import OWNERS
from pipelines.partitions import ONE_RUN_PER_DATE, WAREHOUSE_POOL, nightly_partitions
from pipelines.resources import NightjarResource
from pipelines.settings import Settings
from pipelines.warehouse import connect, ensure_schema
from senders.ledger import Ledger
from senders.settlement import SendLockTimeout, Settled, send_lock, settle_in_flight

# The fields Nightjar uses; SendGrid sends more, and the landed files keep them all.
EVENT_COLUMNS = {
    "sg_event_id": "VARCHAR",
    "event": "VARCHAR",
    "email": "VARCHAR",
    "timestamp": "BIGINT",
    "sg_message_id": "VARCHAR",
    "reason": "VARCHAR",
    "type": "VARCHAR",
    "asm_group_id": "BIGINT",
    "campaign": "VARCHAR",
    "contact_id": "VARCHAR",
    "send_id": "VARCHAR",
}


def load_event_files(landing: Path, warehouse: Path) -> tuple[int, int]:
    """(Re)load every event file that is new or has grown since it was loaded; the webhook
    only appends, so a file of the same size holds the same events. Returns (files, rows)."""
    files = sorted((landing / EVENTS_FOLDER).glob("*.jsonl"))
    columns = "{" + ", ".join(f"{k}: '{v}'" for k, v in EVENT_COLUMNS.items()) + "}"
    loaded_files, loaded_rows = [], 0
    with connect(warehouse) as con:
        ensure_schema(con)
        known = dict(
            con.execute("select source_file, size_bytes from raw.loaded_event_files").fetchall()
        )
        con.execute("begin")
        try:
            for path in files:
                size = path.stat().st_size
                if known.get(str(path)) == size:
                    continue
                con.execute("delete from raw.sendgrid_events where source_file = ?", [str(path)])
                rows = con.execute(
                    f"""
                    insert into raw.sendgrid_events
                    select
                        $file, sg_event_id, event, lower(trim(email)), to_timestamp(timestamp),
                        sg_message_id, reason, type, asm_group_id, campaign, contact_id, send_id
                    from read_json(
                        $file, format = 'newline_delimited', columns = {columns},
                        ignore_errors = true  -- a line cut short by a crash of the webhook
                    )
                    where event is not null and timestamp is not null
                    """,
                    {"file": str(path)},
                ).fetchall()[0][0]
                con.execute(
                    "insert or replace into raw.loaded_event_files values (?, ?, ?, now())",
                    [str(path), size, rows],
                )
                loaded_files.append(str(path))
                loaded_rows += rows
            if loaded_files:
                # events about erased addresses keep none
                erase_in_warehouse(con, event_files=loaded_files)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    return len(loaded_files), loaded_rows


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
    "whose request got no answer, before the night's send decisions are made.",
)
def sendgrid_events(
    context: AssetExecutionContext, nightjar: NightjarResource
) -> MaterializeResult:
    settings = nightjar.settings()
    files, rows = load_event_files(settings.landing, settings.warehouse)
    metadata = {"files_loaded": files, "events_loaded": rows}
    if not nightjar.dry_run:  # a dry run changes no ledger
        settled = settle_ledger(settings)
        metadata.update(
            messages_settled=settled.settled,
            messages_abandoned=settled.abandoned,
            messages_still_pending=settled.pending,
        )
    return MaterializeResult(metadata=metadata)


def settle_ledger(settings: Settings) -> Settled:
    """Every campaign's messages of unknown fate, settled from the events just loaded."""
    try:
        with (
            send_lock(settings.warehouse, settings.send_lock_wait_seconds),
            connect(settings.warehouse) as con,
        ):
            ensure_schema(con)
            return settle_in_flight(Ledger(con), settings)
    except SendLockTimeout as error:
        raise Failure(description=str(error)) from None
