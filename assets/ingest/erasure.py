"""Erasure: a contact with `is_deleted` true loses its personal data everywhere Nightjar
keeps it, and keeps only what the ledger needs to stay exactly-once (ids, never addresses).

Run after every load, so an erasure takes effect the night it lands: raw contact versions
lose their personal fields, orders and SendGrid events lose the erased address (unless a live
contact still holds it: a guest order may still be theirs), the published and built tables
lose the contact's personal fields (so even a night whose dbt build fails holds none), and
the outbox's record of past messages keeps its send_ids but loses address, name and data.

The files Nightjar writes itself are scrubbed too: the SendGrid event files `nightjar webhook`
lands (an erased contact's or address's events keep their ids and lose the rest, see
EVENT_KEYS_KEPT), and the temporary files a write killed half-way left behind (removed).

`nightjar.erasures` remembers each erased address only as a SHA-256 hash: enough to scrub an
order or event with that address landing on a later night, and to keep suppressing an
address that had unsubscribed or bounced if its owner registers again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from models.landing import EVENTS_FOLDER, events_folder_lock
from senders.late_suppressions import SUPPRESSING_EVENTS
from senders.outbox import remove_stale_temp_files, write_atomically

PERSONAL_FIELDS = ("email", "first_name", "last_name", "birth_date", "country", "timezone")
# Where dbt's tables live: scrubbed in place, since a failed build publishes nothing.
_MODEL_SCHEMAS = ("main", "build")
# What a SendGrid event of an erased contact or address keeps: the ids and facts that
# exactly-once and the results need, none personal (the ledger keeps ids by design).
# send_id settles the ledger, sg_event_id deduplicates (the webhook's too), sg_message_id
# is SendGrid's id the ledger keeps; event, timestamp, campaign, variant, category, type and
# asm_group_id are what the campaign results count. Everything else goes: email, ip,
# useragent, url, reason and response (bounce texts quote addresses), and any key SendGrid
# adds later, unknown and so never assumed harmless.
EVENT_KEYS_KEPT = (
    "asm_group_id", "campaign", "category", "contact_id", "event", "send_id", "sg_event_id",
    "sg_message_id", "timestamp", "type", "variant",
)  # fmt: skip


def erase_in_warehouse(
    con: duckdb.DuckDBPyConnection, dates: Iterable[str] = (), event_files: Iterable[str] = ()
) -> int:
    """Scrub the warehouse of every erased contact's personal data still in raw contact rows
    (a new erasure, or an erased contact's version landing again: a re-run, a snapshot), and
    of erased addresses in orders landed on `dates` and in the SendGrid event files just
    loaded. Returns contacts newly erased."""
    newly = [
        row[0]
        for row in con.execute(
            """
            select distinct contact_id from raw.crm_contacts where is_deleted
            except select contact_id from nightjar.erasures
            """
        ).fetchall()
    ]
    erased, addresses = _record(con, newly)
    if erased:
        _empty_personal_fields(con, "raw.crm_contacts", PERSONAL_FIELDS, erased)
        _scrub_models_by_contact(con, erased)
    event_files = list(event_files)
    addresses += _erased_addresses_landed_again(con, list(dates), event_files)
    orphaned = _held_by_no_live_contact(con, sorted(set(addresses)))
    if orphaned or erased:
        _remember_suppressions(con, orphaned)
        _scrub_addresses(con, orphaned, erased, list(dates))
        _no_valid_address_left(con)
    if erased or event_files:
        _scrub_events_of_erased_contacts(con, erased, event_files)
    return len(newly)


def _no_valid_address_left(con: duckdb.DuckDBPyConnection) -> None:
    """An emptied address is no valid address, as a rebuild would say (incremental tables
    keep a row until its key is touched again)."""
    for schema, table in _model_tables(con, "is_email_valid"):
        con.execute(
            f'update {schema}."{table}" set is_email_valid = false '
            "where email is null and is_email_valid"
        )


def _record(con: duckdb.DuckDBPyConnection, newly: list[str]) -> tuple[list[str], list[str]]:
    """Remember newly erased contacts, and the hash of every address still on an erased
    contact's raw rows. Returns (contacts with rows to scrub, those addresses)."""
    con.execute(
        """
        create or replace temp table unscrubbed as
        select distinct contact_id, lower(trim(email)) as email from raw.crm_contacts
        where (contact_id in (select contact_id from nightjar.erasures)
               or contact_id in (select unnest($newly::varchar[])))
          and (email is not null or first_name is not null or last_name is not null
               or birth_date is not null or country is not null or timezone is not null)
        """,
        {"newly": newly},
    )
    con.execute(
        """
        insert into nightjar.erasures (contact_id, email_sha256, was_suppressed, erased_at)
        select contact_id, sha256(email), false, now()
        from (
            select contact_id, email from unscrubbed where email is not null
            union
            -- every erased contact is remembered, with an address or without one
            select unnest($newly::varchar[]), null
        ) as found
        where not exists (
            select 1 from nightjar.erasures as known
            where known.contact_id = found.contact_id
              and known.email_sha256 is not distinct from sha256(found.email)
        )
        """,
        {"newly": newly},
    )
    rows = con.execute("select contact_id, email from unscrubbed").fetchall()
    con.execute("drop table unscrubbed")
    erased = sorted({contact for contact, _ in rows} | set(newly))
    return erased, sorted({email for _, email in rows if email})


def _remember_suppressions(con: duckdb.DuckDBPyConnection, addresses: list[str]) -> None:
    """An erased address that bounced, unsubscribed or was refused (whenever the event
    lands) stays suppressed by its hash, before the address itself is scrubbed."""
    con.execute(
        """
        update nightjar.erasures set was_suppressed = true
        where not was_suppressed and email_sha256 in (
            select sha256(lower(trim(email))) from raw.sendgrid_events
            where lower(trim(email)) in (select unnest($addresses::varchar[]))
              and event in (select unnest($suppressing::varchar[]))
            union
            select sha256(lower(trim(email))) from nightjar.suppressions
            where lower(trim(email)) in (select unnest($addresses::varchar[]))
        )
        """,
        {"addresses": addresses, "suppressing": sorted(SUPPRESSING_EVENTS)},
    )


def _erased_addresses_landed_again(
    con: duckdb.DuckDBPyConnection, dates: list[str], event_files: list[str]
) -> list[str]:
    """Addresses of erased contacts in orders of `dates` whose CRM extract is loaded (a
    late guest order; before that, a contact registering again that night is not known yet)
    and in the event files just loaded."""
    return [
        row[0]
        for row in con.execute(
            """
            with landed as (
                select distinct lower(trim(email)) as email from raw.orders
                where business_date in (select unnest($dates::date[]))
                  and business_date in (
                      select business_date from raw.loaded_files where extract = 'crm_contacts')
                  and email is not null
                union
                select distinct lower(trim(email)) from raw.sendgrid_events
                where source_file in (select unnest($files::varchar[])) and email is not null
            )
            select email from landed
            where sha256(email) in (
                select email_sha256 from nightjar.erasures where email_sha256 is not null)
            """,
            {"dates": dates, "files": event_files},
        ).fetchall()
    ]


def _held_by_no_live_contact(con: duckdb.DuckDBPyConnection, addresses: list[str]) -> list[str]:
    if not addresses:
        return []
    held = {
        row[0]
        for row in con.execute(
            """
            select distinct lower(trim(email)) from raw.crm_contacts
            where lower(trim(email)) in (select unnest($addresses::varchar[]))
              and contact_id not in (select contact_id from nightjar.erasures)
            """,
            {"addresses": addresses},
        ).fetchall()
    }
    return [address for address in addresses if address not in held]


def _scrub_addresses(
    con: duckdb.DuckDBPyConnection, addresses: list[str], erased: list[str], dates: list[str]
) -> None:
    con.execute(
        """
        update raw.orders set email = null
        where email is not null and (
            contact_id in (select unnest($erased::varchar[]))
            -- a later order of an erased contact, by its id
            or (business_date in (select unnest($dates::date[]))
                and contact_id in (select contact_id from nightjar.erasures))
            or lower(trim(email)) in (select unnest($addresses::varchar[])))
        """,
        {"addresses": addresses, "erased": erased, "dates": dates},
    )
    # Events and suppressions by address only: an unsubscribe from an address a live contact
    # still holds must keep suppressing it. An erased address's suppression lives on as its
    # hash in nightjar.erasures.
    by_address = {"addresses": addresses}
    con.execute(
        # a bounce's reason quotes the address it bounced
        "update raw.sendgrid_events set email = null, reason = null "
        "where lower(trim(email)) in (select unnest($addresses::varchar[]))",
        by_address,
    )
    con.execute(
        "delete from nightjar.suppressions "
        "where lower(trim(email)) in (select unnest($addresses::varchar[]))",
        by_address,
    )
    for schema, table in _model_tables(con, "email"):
        # dbt's addresses are normalized in staging: an exact match, no function over
        # millions of rows
        con.execute(
            f'update {schema}."{table}" set email = null '
            "where email in (select unnest($addresses::varchar[]))",
            by_address,
        )


def _scrub_events_of_erased_contacts(
    con: duckdb.DuckDBPyConnection, erased: list[str], event_files: list[str]
) -> None:
    """Events of an erased contact (by the contact_id Nightjar's custom_args echo) of the
    contacts just erased, or in the files just loaded, lose their bounce reason and their
    address unless a live contact holds it too: what the rewritten event file will hold."""
    con.execute(
        """
        create or replace temp table erased_events as
        with found as (
            select rowid as row_id, contact_id, lower(trim(email)) as email, event
            from raw.sendgrid_events
            where (contact_id in (select unnest($erased::varchar[]))
                   or (source_file in (select unnest($files::varchar[]))
                       and contact_id in (select contact_id from nightjar.erasures)))
              and (email is not null or reason is not null)
        )
        select found.*, found.email in (
            select lower(trim(email)) from raw.crm_contacts
            where lower(trim(email)) in (select email from found)
              and contact_id not in (select contact_id from nightjar.erasures)
        ) as email_kept
        from found
        """,
        {"erased": erased, "files": event_files},
    )
    _remember_event_addresses(con, "erased_events")
    con.execute(
        """
        update raw.sendgrid_events set
            reason = null,
            email = case when erased_events.email_kept then raw.sendgrid_events.email end
        from erased_events where raw.sendgrid_events.rowid = erased_events.row_id
        """
    )
    con.execute("drop table erased_events")


def _remember_event_addresses(con: duckdb.DuckDBPyConnection, relation: str) -> None:
    """Before events of erased contacts or addresses lose their address (`relation`: their
    contact_id, normalized email, event and whether the address stays), remember by hash the
    addresses they showed unsubscribed or bounced, so the suppression outlives the address.
    An address an erased contact's events show that its CRM rows never had is remembered as
    one of its addresses (its events elsewhere are then scrubbed too)."""
    con.execute(
        f"""
        insert into nightjar.erasures (contact_id, email_sha256, was_suppressed, erased_at,
                                       outbox_scrubbed)
        select distinct contact_id, sha256(email), false, now(), true
        from {relation} as seen
        where not email_kept and email <> ''
          and contact_id in (select contact_id from nightjar.erasures)
          and sha256(email) not in (
              select email_sha256 from nightjar.erasures where email_sha256 is not null)
        """
    )
    con.execute(
        f"""
        update nightjar.erasures set was_suppressed = true
        where not was_suppressed and email_sha256 in (
            select sha256(email) from {relation}
            where not email_kept and event in (select unnest($suppressing::varchar[])))
        """,
        {"suppressing": sorted(SUPPRESSING_EVENTS)},
    )


def _scrub_models_by_contact(con: duckdb.DuckDBPyConnection, erased: list[str]) -> None:
    for (schema, table), columns in _model_tables(con, "contact_id").items():
        personal = sorted(columns & set(PERSONAL_FIELDS))
        if personal:
            _empty_personal_fields(con, f'{schema}."{table}"', personal, erased)


def _empty_personal_fields(con, relation: str, fields, erased: list[str]) -> None:
    # Only rows still holding something: DuckDB rewrites every row group an update touches
    # when it next checkpoints, seconds for a table of millions.
    nulls = ", ".join(f'"{field}" = null' for field in fields)
    holding = " or ".join(f'"{field}" is not null' for field in fields)
    con.execute(
        f"update {relation} set {nulls} "
        f"where contact_id in (select unnest($erased::varchar[])) and ({holding})",
        {"erased": erased},
    )


def _model_tables(con: duckdb.DuckDBPyConnection, key: str) -> dict[tuple[str, str], set[str]]:
    """dbt's tables (not views) that have the column `key`, with all their columns."""
    rows = con.execute(
        """
        select columns.schema_name, columns.table_name, list(columns.column_name)
        from duckdb_columns() as columns
        inner join duckdb_tables() as tables using (database_name, schema_name, table_name)
        where columns.database_name = current_database()
          and columns.schema_name in (select unnest($schemas::varchar[]))
        group by all
        having list_contains(list(columns.column_name), $key)
        order by all
        """,
        {"schemas": list(_MODEL_SCHEMAS), "key": key},
    ).fetchall()
    return {(schema, table): set(columns) for schema, table, columns in rows}


def outbox_erasures_pending(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        row[0]
        for row in con.execute(
            "select distinct contact_id from nightjar.erasures where not outbox_scrubbed "
            "order by contact_id"
        ).fetchall()
    ]


def mark_outbox_scrubbed(con: duckdb.DuckDBPyConnection, erased: list[str]) -> None:
    con.execute(
        "update nightjar.erasures set outbox_scrubbed = true "
        "where contact_id in (select unnest($erased::varchar[]))",
        {"erased": erased},
    )


def erase_in_outbox(outbox: Path, erased: list[str]) -> int:
    """Past outbox messages to erased contacts keep send_id, campaign, contact and occasion
    (what exactly-once needs) and lose address, name and data; the temporary files of writes
    killed half-way (partial copies, addresses and names included) are removed. Call it
    holding the send lock, the lock every outbox writer holds. Returns messages scrubbed."""
    remove_stale_temp_files(outbox)
    targets = set(erased)
    scrubbed = 0
    for path in sorted(outbox.glob("*/*.jsonl")) if outbox.is_dir() else []:
        lines = path.read_text(encoding="utf-8").splitlines()
        changed = False
        for index, line in enumerate(lines):
            if not line.strip():
                continue
            record = json.loads(line)
            if record.get("contact_id") in targets and record.get("to") is not None:
                record.update(to=None, to_name=None, data={}, erased=True)
                lines[index] = json.dumps(record, ensure_ascii=False)
                changed = True
                scrubbed += 1
        if changed:
            write_atomically(path, "".join(line + "\n" for line in lines))
    return scrubbed


@dataclass(frozen=True)
class EventFile:
    """A SendGrid event file as read at one moment: its lines numbered from 1 (source_row,
    line), and which file (inode, last change) and how many bytes they are."""

    path: Path
    inode: int
    modified_ns: int  # an inode may be reused by a rewrite; its change time is not
    size: int
    lines: pa.Table


@dataclass(frozen=True)
class ErasedLines:
    """Lines of an event file that hold an erased contact's or address's personal data:
    line number -> whether the address stays (a live contact holds it too)."""

    path: Path
    inode: int
    modified_ns: int
    size: int
    rows: dict[int, bool]

    def describes(self, stat: os.stat_result) -> bool:
        """The file is still the one these line numbers were found in."""
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size) == (
            self.inode,
            self.modified_ns,
            self.size,
        )


def read_event_file(path: Path) -> EventFile:
    """The file's lines, numbered as an editor numbers them (shared with the events load)."""
    with path.open("rb") as handle:
        stat = os.fstat(handle.fileno())
        data = handle.read()
    # A write cut inside a character leaves bytes that are not UTF-8: replaced, so that the
    # line is still read (and found, reported) rather than the whole file refused.
    texts = data.decode("utf-8", "replace").split("\n")
    if texts[-1] == "":
        texts.pop()  # the break after the last line
    lines = pa.table(
        {
            "source_row": pa.array(range(1, len(texts) + 1), pa.int64()),
            "line": pa.array(texts, pa.string()),
        }
    )
    return EventFile(path, stat.st_ino, stat.st_mtime_ns, len(data), lines)


# Lines holding an erased contact's (by contact_id) or erased address's (by its hash, unless a
# live contact holds it too) data beyond EVENT_KEYS_KEPT. A line that is no JSON object (cut
# short by a crash) is matched by pattern, and has nothing worth keeping.
_ERASED_LINES = r"""
create or replace temp table erased_lines as
with parsed as (
    select source_row, line, try_cast(line as json) as doc from event_file_lines
),
fields as (
    select
        source_row, doc, coalesce(json_type(doc) = 'OBJECT', false) as is_object,
        lower(trim(case when json_type(doc) = 'OBJECT' then doc->>'$.email'
                        else regexp_extract(line, '"email"\s*:\s*"([^"]*)"', 1) end)) as email,
        case when json_type(doc) = 'OBJECT' then doc->>'$.contact_id'
             else regexp_extract(line, '"contact_id"\s*:\s*"([^"]*)"', 1) end as contact_id,
        case when json_type(doc) = 'OBJECT' then doc->>'$.event' end as event
    from parsed
),
candidates as (
    select * from fields
    where sha256(email) in (
            select email_sha256 from nightjar.erasures where email_sha256 is not null)
       or contact_id in (select contact_id from nightjar.erasures)
),
held as (
    select distinct lower(trim(email)) as email from raw.crm_contacts
    where lower(trim(email)) in (select email from candidates)
      and contact_id not in (select contact_id from nightjar.erasures)
),
matched as (
    select candidates.*, coalesce(email in (select email from held), false) as email_kept
    from candidates
)
select
    source_row, contact_id, email, event, email_kept,
    not is_object or len(list_filter(
        json_keys(doc),
        lambda k: not list_contains($allowed, k) and not (k = 'email' and email_kept)
    )) > 0 as holds_personal_data
from matched
where contact_id in (select contact_id from nightjar.erasures) or not email_kept
"""


def find_erased_event_lines(con: duckdb.DuckDBPyConnection, events: EventFile) -> ErasedLines:
    """The lines of `events` to scrub. First remembers, by hash, which erased addresses they
    show unsubscribed or bounced: the suppression must outlive the address."""
    if not con.execute("select count(*) from nightjar.erasures").fetchall()[0][0]:
        return ErasedLines(events.path, events.inode, events.modified_ns, events.size, {})
    con.register("event_file_lines", events.lines)
    try:
        con.execute(_ERASED_LINES, {"allowed": [*EVENT_KEYS_KEPT, "erased"]})
        _remember_event_addresses(con, "erased_lines")
        rows = con.execute(
            "select source_row, email_kept from erased_lines where holds_personal_data"
        ).fetchall()
    finally:
        con.unregister("event_file_lines")
        con.execute("drop table if exists erased_lines")
    return ErasedLines(events.path, events.inode, events.modified_ns, events.size, dict(rows))


def scrub_event_file(con: duckdb.DuckDBPyConnection, landing: Path, found: ErasedLines) -> int:
    """Rewrite an event file with its `found` lines scrubbed: an event keeps EVENT_KEYS_KEPT
    (and its address if a live contact holds it too) and gains `"erased": true`; a line cut
    short goes. Atomic (a temporary file beside it, fsync, rename), under the events folder's
    lock, which the webhook takes for every append. Returns lines scrubbed."""
    with events_folder_lock(landing):
        path = found.path
        current = path.stat()
        if not found.describes(current):
            # appended to, or rewritten by another run, since it was searched: search it again
            found = find_erased_event_lines(con, read_event_file(path))
        if not found.rows:
            return 0
        lines = path.read_bytes().split(b"\n")
        for row, email_kept in found.rows.items():
            lines[row - 1] = _scrubbed_event(lines[row - 1], email_kept)
        write_atomically(
            path, b"\n".join(line for line in lines if line is not None), mode=current.st_mode
        )
    return len(found.rows)


def _scrubbed_event(line: bytes, email_kept: bool) -> bytes | None:
    """The event with only what EVENT_KEYS_KEPT allows, or None for a line that is no
    event (cut short by a crash): nothing in it is worth keeping."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    kept = {k: v for k, v in event.items() if k in EVENT_KEYS_KEPT or (email_kept and k == "email")}
    kept["erased"] = True
    return json.dumps(kept, ensure_ascii=False, sort_keys=True).encode("utf-8")


def remove_stale_event_temp_files(landing: Path) -> list[Path]:
    """Temporary files of event-file rewrites killed half-way, removed under the folder's
    lock (no rewrite can be running then)."""
    if not (landing / EVENTS_FOLDER).is_dir():
        return []  # no events yet: the lock would create the folder
    with events_folder_lock(landing) as folder:
        return remove_stale_temp_files(folder)


def erase_in_event_files(con: duckdb.DuckDBPyConnection, landing: Path) -> int:
    """After new erasures (`events_scrubbed` false), every SendGrid event file is searched,
    and those holding their events rewritten; nothing is read when there are none. Newly
    loaded files are searched as they load (assets/ingest/sendgrid_events.py). Returns lines
    scrubbed."""
    pending = con.execute(
        "select contact_id, email_sha256 from nightjar.erasures where events_scrubbed is not true"
    ).fetchall()
    if not pending:
        return 0
    remove_stale_event_temp_files(landing)
    scrubbed = 0
    for path in _files_with_erased_events(con, landing):
        found = find_erased_event_lines(con, read_event_file(path))
        if found.rows:
            scrubbed += scrub_event_file(con, landing, found)
    # Only the erasures searched for: one remembered during the search waits for the next.
    con.execute(
        """
        update nightjar.erasures set events_scrubbed = true
        from (select unnest($contacts::varchar[]) as contact_id,
                     unnest($hashes::varchar[]) as email_sha256) as searched
        where nightjar.erasures.contact_id = searched.contact_id
          and nightjar.erasures.email_sha256 is not distinct from searched.email_sha256
        """,
        {"contacts": [c for c, _ in pending], "hashes": [h for _, h in pending]},
    )
    return scrubbed


def _files_with_erased_events(con: duckdb.DuckDBPyConnection, landing: Path) -> list[Path]:
    """The event files that may hold an erased contact's or address's events: one streaming
    DuckDB scan of every file's lines, so that a year of events is not read line by line in
    Python on every night an erasure lands. A line cut short is matched by pattern."""
    files = sorted(str(p) for p in (landing / EVENTS_FOLDER).glob("*.jsonl"))
    if not files:
        return []
    try:
        rows = _erased_event_files_query(con, files)
    except duckdb.Error:
        # A line DuckDB cannot read (bytes cut inside a character, a line of 16 MB): every
        # file is searched line by line instead, as a newly loaded one is. The error is not
        # shown: it quotes the line.
        return [Path(name) for name in files]
    return [Path(row[0]) for row in sorted(rows)]


def _erased_event_files_query(con: duckdb.DuckDBPyConnection, files: list[str]) -> list:
    return con.execute(
        r"""
        with lines as (
            select filename, line, try_cast(line as json) as doc
            from read_csv($files, columns = {'line': 'VARCHAR'}, header = false,
                          delim = chr(1), quote = '', escape = '', filename = true,
                          max_line_size = 16777216, strict_mode = false)
        )
        select distinct filename from lines
        where coalesce(doc->>'$.contact_id',
                       regexp_extract(line, '"contact_id"\s*:\s*"([^"]*)"', 1))
                  in (select contact_id from nightjar.erasures)
           or sha256(lower(trim(coalesce(doc->>'$.email',
                       regexp_extract(line, '"email"\s*:\s*"([^"]*)"', 1))))) in (
                  select email_sha256 from nightjar.erasures where email_sha256 is not null)
        """,
        {"files": files},
    ).fetchall()
