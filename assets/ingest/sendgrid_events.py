"""Ingest SendGrid's events, as `nightjar webhook` landed them, into `raw.sendgrid_events`.

Every line of a file is accounted for: loaded, or quarantined in `raw.quarantine` with the
rule it broke (a value of an optional field of the wrong type is emptied and the event
loaded). One poison record, signed by SendGrid or not, never stops the load of the rest.
"""

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
from dagster import AssetExecutionContext, AssetKey, Failure, MaterializeResult, asset

from assets.ingest.erasure import (
    ErasedLines,
    EventFile,
    erase_in_event_files,
    erase_in_warehouse,
    find_erased_event_lines,
    read_event_file,
    remove_stale_event_temp_files,
    scrub_event_file,
)
from assets.shared.owners import OWNERS
from assets.shared.partitions import ONE_RUN_PER_DATE, WAREHOUSE_POOL, nightly_partitions
from assets.shared.resources import NightjarResource
from assets.shared.state_store import synced as state_synced
from assets.shared.warehouse import connect, ensure_schema, transaction
from models.extract_files import _shown
from models.landing import EVENTS_FOLDER
from models.settings import Settings
from senders.ledger import Ledger
from senders.settlement import SendLockTimeout, Settled, send_lock, settle_in_flight

EXTRACT = "sendgrid_events"  # as raw.quarantine names it
# The fields Nightjar uses; SendGrid sends more, and the landed files keep them all. Text
# fields take a JSON string (or a number, as text); asm_group_id an integer.
TEXT_FIELDS = (
    "sg_event_id", "email", "sg_message_id", "reason", "type", "campaign", "contact_id",
    "send_id",
)  # fmt: skip
INTEGER_FIELDS = ("asm_group_id",)
# No event is older than SendGrid itself. Later than the receipt date is allowed, however
# far (up to the last representable second): a webhook host whose clock runs days behind
# must not turn a real unsubscribe into mail sent. Out of this range DuckDB's to_timestamp
# fails the whole load (10**20).
EARLIEST_EVENT = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST_EVENT = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)

# The rules, as "<column> must be <rule>" reads.
NOT_AN_OBJECT = "one JSON object a line (a line cut short by a crash, or not JSON)"
REQUIRED = "present (it is required)"
TEXT = "text"
INTEGER = "an integer"
WHOLE_SECONDS = "a whole number of seconds since 1970-01-01 UTC"
IN_RANGE = "from 2000-01-01 to 9999-12-31 (UTC)"
MAX_SHOWN_CHARACTERS = 200  # of a quarantined value
MAX_WARNED_PROBLEMS = 20  # named one by one in the asset's warning


@dataclass(frozen=True)
class Problem:
    """One quarantine row: a line left out (row_quarantined) or a value emptied."""

    source_file: str
    source_row: int
    column_name: str
    rule: str
    action: str

    def __str__(self) -> str:
        done = "left out" if self.action == "row_quarantined" else "value emptied"
        where = f"{self.source_file} line {self.source_row}"
        return f"{where}: {self.column_name} must be {self.rule} ({done})"


@dataclass
class EventsLoaded:
    """What a load did: files (re)loaded, events loaded, and every problem found."""

    files: int = 0
    rows: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def quarantined(self) -> int:
        """Lines left out (a line may break more than one rule)."""
        return len(
            {(p.source_file, p.source_row) for p in self.problems if p.action == "row_quarantined"}
        )

    @property
    def values_removed(self) -> int:
        return sum(p.action == "value_removed" for p in self.problems)


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
        con.execute(
            _CHECKED_EVENTS,
            {
                "earliest": EARLIEST_EVENT.timestamp(),
                "latest": LATEST_EVENT.timestamp(),
                "not_an_object": NOT_AN_OBJECT,
                "required": REQUIRED,
                "text": TEXT,
                "whole_seconds": WHOLE_SECONDS,
                "in_range": IN_RANGE,
            },
        )
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


_EXTRACTED = ("event", "timestamp", *TEXT_FIELDS, *INTEGER_FIELDS)
_TEXT_TYPES = "'VARCHAR', 'BIGINT', 'UBIGINT', 'DOUBLE'"


def _typed_fields() -> str:
    """Each field's value when its JSON type fits (else null), and whether it was there
    with another type (an object, a list, true, an integer past BIGINT): to be emptied."""
    columns = []
    for name in TEXT_FIELDS:
        fits = f"{name}_type in ({_TEXT_TYPES})"
        columns.append(f"case when {fits} then {name}_text end as {name}")
        columns.append(f"coalesce({name}_type <> 'NULL' and not {fits}, false) as {name}_wrong")
    for name in INTEGER_FIELDS:
        integer = f"{name}_type in ('BIGINT', 'UBIGINT')"
        value = f"case when {integer} then try_cast({name}_text as bigint) end"
        columns.append(f"{value} as {name}")
        columns.append(
            f"coalesce({name}_type <> 'NULL' and {value} is null, false) as {name}_wrong"
        )
    return _COLUMN_BREAK.join(columns)


def _field_texts() -> str:
    """Each extracted field's JSON type and text (an object's or a list's as JSON text)."""
    return _COLUMN_BREAK.join(
        f"json_type(found[{i}]) as {name}_type, found[{i}]->>'$' as {name}_text"
        for i, name in enumerate(_EXTRACTED, 1)
    )


_COLUMN_BREAK = ",\n        "
_PATHS = "[" + ", ".join(f"'$.{name}'" for name in _EXTRACTED) + "]"


# Each line parsed once, and every field taken out of it in one pass (json_type(doc, path)
# per field would parse the line again for each): its typed fields, and the rule it breaks
# (null when none). A blank line holds no event (the webhook never writes one, an editor
# might): skipped, not reported.
_CHECKED_EVENTS = f"""
create or replace temp table checked_events as
with parsed as (
    select source_row, try_cast(line as json) as doc
    from event_file_lines
    where not regexp_full_match(line, '\\s*')
),
extracted as (
    select
        source_row, coalesce(json_type(doc) = 'OBJECT', false) as is_object,
        json_extract(doc, {_PATHS}) as found
    from parsed
),
fields as (
    select
        source_row, is_object,
        {_field_texts()}
    from extracted
),
typed as (
    select
        *,
        case when timestamp_type in ('BIGINT', 'UBIGINT', 'DOUBLE')
             then try_cast(timestamp_text as double) end as seconds,
        {_typed_fields()}
    from fields
),
checked as (
    select
        *,
        case when not is_object then $not_an_object end as line_problem,
        case when not is_object then null
             when coalesce(event_type, 'NULL') = 'NULL' or event_text = '' then $required
             when event_type <> 'VARCHAR' then $text end as event_problem,
        case when not is_object then null
             when coalesce(timestamp_type, 'NULL') = 'NULL' then $required
             when seconds is null or seconds <> floor(seconds) then $whole_seconds
             when seconds < $earliest or seconds > $latest then $in_range
        end as timestamp_problem
    from typed
)
select
    *,
    line_problem is null and event_problem is null and timestamp_problem is null as loads
from checked
"""

_INSERT_EVENTS = """
insert into raw.sendgrid_events (
    source_file, source_row, sg_event_id, event, email, event_timestamp, sg_message_id,
    reason, bounce_type, asm_group_id, campaign, contact_id, send_id
)
select
    $file, source_row, sg_event_id, event_text, lower(trim(email)),
    to_timestamp(seconds::bigint),
    sg_message_id, reason, type, asm_group_id, campaign, contact_id, send_id
from checked_events
where loads
"""


def _problems_sql() -> str:
    """Every rule broken, one row each: a line left out, or an optional value emptied on an
    event that loads. The line itself is not shown (an IP address, a user agent): its
    number finds it in the file."""
    left_out = [
        "select source_row, 'line' as column_name, line_problem as rule, null as value, "
        "'row_quarantined' as action from checked_events where line_problem is not null",
        *(
            f"select source_row, '{name}', {name}_problem, {name}_text, 'row_quarantined' "
            f"from checked_events where {name}_problem is not null"
            for name in ("event", "timestamp")
        ),
    ]
    emptied = [
        f"select source_row, '{name}', ${'integer' if name in INTEGER_FIELDS else 'text'}, "
        f"{name}_text, 'value_removed' from checked_events where loads and {name}_wrong"
        for name in (*TEXT_FIELDS, *INTEGER_FIELDS)
    ]
    return "\nunion all\n".join(left_out + emptied) + "\norder by source_row, column_name"


_PROBLEMS = _problems_sql()


def _quarantine(con: duckdb.DuckDBPyConnection, source: str, received: dt.date) -> list[Problem]:
    """The file's problems into raw.quarantine, values masked as every extract's are."""
    found = con.execute(_PROBLEMS, {"text": TEXT, "integer": INTEGER}).fetchall()
    if not found:
        return []
    lines, columns, rules, values, actions = (list(each) for each in zip(*found, strict=True))
    frame = pa.table(
        {
            "source_file": pa.array([source] * len(found), pa.string()),
            "source_row": pa.array(lines, pa.int64()),
            "column_name": pa.array(columns, pa.string()),
            "rule": pa.array(rules, pa.string()),
            "value": pa.array(map(_shown_briefly, columns, values), pa.string()),
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


def _shown_briefly(column: str, value: str | None) -> str | None:
    shown = _shown(column, value)
    if shown is not None and len(shown) > MAX_SHOWN_CHARACTERS:
        return shown[:MAX_SHOWN_CHARACTERS] + "…"
    return shown


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
        loaded = load_event_files(settings.landing, settings.warehouse)
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
