"""Erasure in the SendGrid event files `nightjar webhook` lands (landing/EVENTS_FOLDER): an
erased contact's or address's events keep their ids and lose the rest (EVENT_KEYS_KEPT), each
file rewritten atomically under the events folder's lock; the temporary files of rewrites
killed half-way are removed. Part of the erasure (assets/ingest/erasure.py); the events load
(assets/ingest/sendgrid_events.py) searches each file it loads with the same functions.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from assets.ingest.erasure_record import remember_event_addresses
from models.landing import EVENTS_FOLDER, events_folder_lock
from senders.outbox import remove_stale_temp_files, write_atomically

# What a SendGrid event of an erased contact or address keeps: the ids and facts that
# exactly-once and the results need, none personal (the ledger keeps ids by design).
# send_id settles the ledger, sg_event_id deduplicates (the webhook's too), sg_message_id
# is SendGrid's id the ledger keeps; event, timestamp, campaign, variant, category, type and
# asm_group_id are what the campaign results count. Everything else goes: email, ip,
# useragent, url, reason and response (bounce texts quote addresses), and any key SendGrid
# adds later, unknown and so never assumed harmless.
EVENT_KEYS_KEPT = (
    "asm_group_id", "campaign", "category", "contact_id", "event", "send_id", "sg_event_id",
    "sg_message_id", "timestamp", "topic", "type", "variant",
)  # fmt: skip


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
        remember_event_addresses(con, "erased_lines")
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
