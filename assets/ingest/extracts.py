"""Ingest: the night's extracts (the three every folder holds, and the order lines when they
landed), loaded together from every complete landing folder up to the run's date, so that a
night is loaded whole or not at all."""

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from assets.ingest.erasure import erase_in_warehouse
from assets.ingest.erasure_events import erase_in_event_files
from assets.ingest.erasure_outbox import (
    erase_in_outbox,
    mark_outbox_scrubbed,
    outbox_erasures_pending,
)
from assets.shared.owners import OWNERS
from assets.shared.partitions import (
    ONE_RUN_PER_DATE,
    WAREHOUSE_POOL,
    business_date,
    nightly_partitions,
)
from assets.shared.resources import NightjarResource
from assets.shared.spark_files import refresh_after_load
from assets.shared.state_store import synced as state_synced
from assets.shared.warehouse import connect, ensure_schema, transaction
from models.extract_files import load_extract
from models.extracts import EXTRACTS, ExtractError
from models.landing import (
    LandingFolder,
    LandingNotReady,
    complete_folders_through,
    incomplete_folders_through,
    require_ready,
)
from models.privacy import redact
from models.quarantine import Checked
from models.settings import Settings
from senders.lock import SendLockTimeout, send_lock

# Folders validated and inserted together: few enough to bound memory on a history load
# (text, its checks and its parsed copy are all in memory at once), many enough that a
# catch-up is a handful of statements. Bounded by bytes above all, as a day's size varies:
# a small retailer's year of folders is one chunk (31 folders a chunk made the checks'
# fixed cost a quarter of the XS history's ingest; its peak went from 0.76 to 0.95 GB).
# 128 MB, not 64: half as many commits (each a DuckDB checkpoint) and less CPU; the M
# history's ingest 171 s against 210 s, its peak 2.3 GB against 1.8 GB (docs/performance.md).
FOLDERS_PER_CHUNK = 366
BYTES_PER_CHUNK = 128 * 1024 * 1024

DESCRIPTIONS = {
    "crm_contacts": "CRM contacts as landed each night (crm_contacts.csv), checked against "
    "the extract contract and kept with the date and file they came from.",
    "orders": "Orders and their later refunds or cancellations (orders.csv), checked and kept "
    "with the date and file they came from.",
    "web_events": "Web analytics events (web_events.csv), checked and kept with the date and "
    "file they came from; repeated events are removed downstream.",
    "order_lines": "The lines of orders (order_lines.csv, optional: a night without it has "
    "none), checked and kept with the date and file they came from; a line follows its order.",
}


@dataclass(frozen=True)
class IngestSummary:
    extract: str
    rows: int
    dates: list[date]
    skipped_incomplete: list[date]
    rows_quarantined: int = 0  # left out: a required value broke the contract
    values_removed: int = 0  # an optional value broke it: emptied, the row kept


@dataclass
class _Counted:
    rows: int = 0
    quarantined: int = 0
    removed: int = 0

    def add(self, checked: Checked) -> None:
        self.rows += checked.frame.height
        actions = checked.quarantine["action"]
        self.quarantined += (
            checked.quarantine.filter(actions == "row_quarantined")
            .select("source_file", "source_row")
            .n_unique()
        )
        self.removed += int((actions == "value_removed").sum())


def ingest_night(
    settings: Settings, business_date: date, extracts: tuple[str, ...] = tuple(EXTRACTS)
) -> dict[str, IngestSummary]:
    """Load the extracts from every complete folder <= business_date not loaded yet, and from
    the business date's own folder again; a reloaded date replaces its rows, never doubles
    them. The extracts of a folder load together or not at all: a refused orders file leaves
    that night's contacts, web events and order lines unloaded too, never half a night."""
    require_ready(settings.landing, business_date)
    # Spark's copy of the raw rows follows, with tonight's erasures, even when a file was
    # refused (then the refusal is what the night reports, and a failed copy is the next
    # load's to finish)
    try:
        summaries = _ingest_night(settings, business_date, extracts)
    except BaseException:
        with contextlib.suppress(Exception):
            refresh_after_load(settings)
        raise
    refresh_after_load(settings)
    return summaries


def _ingest_night(
    settings: Settings, business_date: date, extracts: tuple[str, ...]
) -> dict[str, IngestSummary]:
    with connect(settings.warehouse) as con:
        ensure_schema(con)
        folders = _folders_to_load(con, settings.landing, business_date, extracts)
        counted = {extract: _Counted() for extract in extracts}
        try:
            _load_chunks(con, settings, folders, extracts, counted)
        except BaseException:
            # The folders loaded before the fault are scrubbed tonight all the same; should
            # that fail too, their dates stay unchecked for the next run, and the fault is
            # what the night reports.
            with contextlib.suppress(Exception):
                _apply_erasures(con, extracts)
            raise
        _apply_erasures(con, extracts)
        pending = outbox_erasures_pending(con)
    if pending:
        _erase_in_outbox(settings, pending)
    skipped = [f.business_date for f in incomplete_folders_through(settings.landing, business_date)]
    dates = [folder.business_date for folder in folders]
    return {
        extract: IngestSummary(extract, c.rows, dates, skipped, c.quarantined, c.removed)
        for extract, c in counted.items()
    }


def _load_chunks(
    con,
    settings: Settings,
    folders: list[LandingFolder],
    extracts: tuple[str, ...],
    counted: dict[str, _Counted],
) -> None:
    """Check each chunk's files, then write its rows, the next chunk checked while DuckDB
    writes this one (a thread of its own: DuckDB works without Python's lock, and checking
    is mostly polars'), so that a history load costs about its checks alone.

    Every file of a chunk is checked before anything of it is written, and each chunk is
    written in one transaction: DuckDB holds a transaction's inserts in memory until it
    commits (14 GB for a 730-day history at a million contacts, under 1 GB a chunk). A
    refused file loads nothing of its chunk; chunks before it stay loaded and are not
    loaded again next run. Chunks commit in order, one at a time, and the connection is
    used by one thread at a time: the writer's, or, once it finished, this one's."""
    # Leaving the with block waits for a write still running: the caller's erasures use the
    # connection next, whatever was raised here.
    with ThreadPoolExecutor(1, thread_name_prefix="ingest-writer") as writer:
        writing: Future | None = None
        try:
            for chunk in _chunks(folders, extracts):
                checked = _check_all(settings, chunk, extracts)
                if writing is not None:
                    writing.result()
                writing = writer.submit(_write_chunk, con, chunk, checked, counted)
            if writing is not None:
                writing.result()
        except Exception as error:
            # A write that failed is the night's fault even when the next chunk was refused
            # while it ran: its chunk is not loaded. The refusal did not cause it, so it is
            # told beside it (a note), not as its cause, which an alert would name as such;
            # only an ExtractError's words, which never quote a value.
            failed = writing.exception() if writing is not None else None
            if failed is not None and failed is not error:
                told = str(error) if isinstance(error, ExtractError) else type(error).__name__
                failed.add_note(f"The next chunk, checked meanwhile, failed too: {told}")
                raise failed from None
            raise


def _write_chunk(
    con, chunk: list[LandingFolder], checked: dict[str, Checked], counted: dict[str, _Counted]
) -> None:
    with transaction(con):
        for extract, rows in checked.items():
            _replace_rows(con, extract, chunk, rows)
    for extract, rows in checked.items():  # what the night reports: committed rows alone
        counted[extract].add(rows)


def ingest_extract(settings: Settings, extract: str, business_date: date) -> IngestSummary:
    """One extract alone, as ingest_night loads it (a tool's or a test's load; the nightly
    run loads them together)."""
    return ingest_night(settings, business_date, (extract,))[extract]


def _folders_to_load(
    con, landing: Path, business_date: date, extracts: tuple[str, ...]
) -> list[LandingFolder]:
    """Complete folders up to the date of which an extract is not loaded yet (an older run
    may have loaded a night in part), and the date's own folder again. An optional extract
    counts only where its file landed: a folder without order lines records no row of them
    in raw.loaded_files, and a recorded empty row instead would make every folder loaded
    before order lines existed look half loaded, and reload the whole history once."""
    loaded: dict[date, set[str]] = {}
    for day, extract in con.execute(
        "select business_date, extract from raw.loaded_files "
        "where extract in (select unnest($extracts::varchar[]))",
        {"extracts": list(extracts)},
    ).fetchall():
        loaded.setdefault(day, set()).add(extract)
    required = {e for e in extracts if EXTRACTS[e].required}
    optional = [e for e in extracts if not EXTRACTS[e].required]

    def done(folder: LandingFolder) -> bool:
        expected = required | {e for e in optional if folder.extract_file(e) is not None}
        return bool(expected) and expected <= loaded.get(folder.business_date, set())

    return [
        folder
        for folder in complete_folders_through(landing, business_date)
        if not done(folder) or folder.business_date == business_date
    ]


def _check_all(
    settings: Settings, chunk: list[LandingFolder], extracts: tuple[str, ...]
) -> dict[str, Checked]:
    """Each extract of the chunk checked; every refused file is named at once, so that one
    export fixes them all."""
    checked, refused = {}, []
    for extract in extracts:
        try:
            checked[extract] = _check(settings, chunk, extract)
        except ExtractError as error:
            refused.append(str(error))
    if refused:
        raise ExtractError("\n".join(refused))
    return checked


def _check(settings: Settings, chunk: list[LandingFolder], extract: str) -> Checked:
    return load_extract(
        chunk,
        EXTRACTS[extract],
        settings.base_currency,
        settings.quarantine_max_share,
        crm_snapshot=settings.crm_export == "snapshot",
    )


def _apply_erasures(con, extracts: tuple[str, ...]) -> None:
    """Erasures land with the CRM, and a late guest order may carry an erased address: apply
    them for every folder loaded and not checked yet (a run killed between a batch and this
    leaves its folders to the next run)."""
    for extract in ("crm_contacts", "orders"):
        if extract in extracts:
            _apply_erasures_of(con, extract)


def _apply_erasures_of(con, extract: str) -> None:
    # Statement by statement, not one transaction: DuckDB writes one file per transaction,
    # and erasure writes the state (remembering) before the warehouse (forgetting). A crash
    # in between leaves the dates unchecked, and the next run applies them again.
    unchecked = "from raw.loaded_files where extract = ? and not erasure_checked"
    dates = [
        row[0] for row in con.execute(f"select business_date {unchecked}", [extract]).fetchall()
    ]
    if dates:
        erase_in_warehouse(con, dates)
        con.execute(
            "update raw.loaded_files set erasure_checked = true "
            "where extract = ? and not erasure_checked",
            [extract],
        )


def _replace_rows(con, extract: str, chunk: list, checked) -> None:
    """The chunk's rows and quarantine; a reloaded date replaces its own, never adds to them."""
    frame = checked.frame
    dates = [folder.business_date for folder in chunk]
    con.execute(
        f"delete from raw.{extract} where business_date in (select unnest($dates::date[]))",
        {"dates": dates},
    )
    con.execute(
        "delete from raw.quarantine where extract = $extract "
        "and business_date in (select unnest($dates::date[]))",
        {"dates": dates, "extract": extract},
    )
    for table, rows_in in ((f"raw.{extract}", frame), ("raw.quarantine", checked.quarantine)):
        if rows_in.height:
            con.register("incoming", rows_in)
            con.execute(f"insert into {table} by name select * from incoming")
            con.unregister("incoming")
    # A reloaded folder that no longer holds an optional file has none of it loaded either.
    absent = [f.business_date for f in chunk if f.extract_file(extract) is None]
    if absent:
        con.execute(
            "delete from raw.loaded_files where extract = $extract "
            "and business_date in (select unnest($dates::date[]))",
            {"dates": absent, "extract": extract},
        )
    rows = _rows_per_folder(chunk, frame, extract)
    if rows:
        # One statement for the chunk: executemany runs one per folder, 2 ms each against
        # the table's key, which was a quarter of a history load's ingest.
        dates, extracts, files, counts = (list(column) for column in zip(*rows, strict=True))
        con.execute(
            "insert or replace into raw.loaded_files "
            "(business_date, extract, source_file, row_count, loaded_at, erasure_checked) "
            "select unnest($dates::date[]), unnest($extracts::varchar[]), "
            "unnest($files::varchar[]), unnest($counts::bigint[]), now(), false",
            {"dates": dates, "extracts": extracts, "files": files, "counts": counts},
        )


def _rows_per_folder(chunk, frame, extract: str) -> list[tuple]:
    """(date, extract, file, rows) of each folder of the chunk that holds the extract's file."""
    counts = dict(frame.group_by("business_date").len().iter_rows()) if frame.height else {}
    return [
        (folder.business_date, extract, str(path), counts.get(folder.business_date, 0))
        for folder in chunk
        if (path := folder.extract_file(extract)) is not None
    ]


def _extract_spec(extract: str) -> AssetSpec:
    return AssetSpec(
        AssetKey(["raw", extract]),
        group_name="ingest",
        owners=OWNERS["ingest"],
        kinds={"polars", "pandera", "duckdb"},
        description=DESCRIPTIONS[extract],
        metadata={"extract_file": f"{extract}.csv"},
    )


def _materialization(extract: str, summary: IngestSummary) -> MaterializeResult:
    return MaterializeResult(
        asset_key=AssetKey(["raw", extract]),
        metadata={
            "dagster/row_count": summary.rows,
            "rows_quarantined": summary.rows_quarantined,
            "values_removed": summary.values_removed,
            "folders_loaded": len(summary.dates),
            "first_date_loaded": str(min(summary.dates)),
            "last_date_loaded": str(max(summary.dates)),
            "incomplete_folders_skipped": MetadataValue.json(
                [str(d) for d in summary.skipped_incomplete]
            ),
        },
    )


# One step for the extracts (step key raw__extracts): a night's files are loaded together or
# not at all, so they cannot be materialized one without the others.
@multi_asset(
    name="raw__extracts",
    specs=[_extract_spec(extract) for extract in EXTRACTS],
    partitions_def=nightly_partitions,
    can_subset=False,
    pool=WAREHOUSE_POOL,
    backfill_policy=ONE_RUN_PER_DATE,
    description="Load the night's extracts together (order lines when they landed), checked "
    "against the contract.",
)
def raw_extracts(context: AssetExecutionContext, nightjar: NightjarResource):
    settings = nightjar.settings()
    try:
        with state_synced(settings):  # PostgreSQL's state: pulled first, erasures pushed after
            summaries = ingest_night(settings, business_date(context))
    except (LandingNotReady, ExtractError) as error:
        raise Failure(description=redact(str(error))) from None
    for skipped in summaries["crm_contacts"].skipped_incomplete:
        context.log.warning(f"Skipped {skipped}: its landing folder has no _SUCCESS yet.")
    for extract, summary in summaries.items():
        yield _materialization(extract, summary)


ingest_assets = [raw_extracts]


def _erase_in_outbox(settings: Settings, erased: list[str]) -> None:
    """New erasures reach the files Nightjar wrote: the SendGrid event files the webhook
    landed, and the outbox (with the temporary files of writes killed half-way), under the
    send lock, as only a sender writes there."""
    with connect(settings.warehouse) as con:
        erase_in_event_files(con, settings.landing)
    try:
        with send_lock(settings.warehouse, settings.send_lock_wait_seconds):
            erase_in_outbox(settings.outbox, erased)
    except SendLockTimeout:
        return  # a sender holds the outbox; the next load scrubs it
    with connect(settings.warehouse) as con:
        mark_outbox_scrubbed(con, erased)


def _chunks(folders: list[LandingFolder], extracts: tuple[str, ...]):
    """Consecutive folders, at most FOLDERS_PER_CHUNK and (unless one alone is bigger)
    BYTES_PER_CHUNK of the extracts' files at a time."""
    chunk, size = [], 0
    for folder in folders:
        bytes_ = sum(
            path.stat().st_size
            for path in (folder.extract_file(extract) for extract in extracts)
            if path
        )
        if chunk and (len(chunk) == FOLDERS_PER_CHUNK or size + bytes_ > BYTES_PER_CHUNK):
            yield chunk
            chunk, size = [], 0
        chunk.append(folder)
        size += bytes_
    if chunk:
        yield chunk
