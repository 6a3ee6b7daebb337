"""The SendGrid events `nightjar webhook` stores: a signed body checked for structure, then
its events appended to the day's file, each sg_event_id once within DEDUP_DAYS.

De-duplication lives in a small SQLite index beside the files, not in memory: start-up reads
no event file, and memory does not grow with the events ever stored.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from models.landing import EVENTS_FOLDER, events_folder_lock

# Structural limits on a signed body, checked after its signature (SendGrid posts arrays of
# flat objects, batched up to about 768 KB; these are far above what it sends).
MAX_EVENTS_PER_POST = 10_000
MAX_NESTING = 16  # the array is level 1, an event level 2, a nested value level 3...
MAX_EVENT_BYTES = 64 * 1024  # one event, as the JSON line stored
# An sg_event_id de-duplicates only when it looks like one (SendGrid's are ~22-48 printable
# ASCII characters); anything else is stored as it came, without de-duplication.
_EVENT_ID = re.compile(r"[\x21-\x7e]{1,256}")

# SendGrid retries a failed post for up to 72 hours and the nightly dbt model de-duplicates
# by sg_event_id anyway: the webhook remembers ids for a bounded window, past the retries.
DEDUP_DAYS = 7
SEEN_INDEX = ".seen.sqlite"
_PRUNE_BATCH = 5_000  # ids forgotten per post at most: pruning never stalls a request
_CORRUPT = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}  # replaced; other errors (locked...) are not

log = logging.getLogger("nightjar.webhook")


class BadBatch(ValueError):
    """A signed body that is not an acceptable batch of events; its message is one line."""


@dataclass(frozen=True)
class Event:
    """One event as it will be stored, with its sg_event_id when usable for de-duplication."""

    id: str | None
    line: bytes  # the JSON line, newline included

    @classmethod
    def of(cls, event: dict) -> Event:
        event_id = event.get("sg_event_id")
        usable = isinstance(event_id, str) and _EVENT_ID.fullmatch(event_id) is not None
        return cls(event_id if usable else None, _json_line(event))


def _json_line(event: dict) -> bytes:
    text = json.dumps(event, ensure_ascii=False, sort_keys=True)
    try:
        return text.encode() + b"\n"
    except UnicodeEncodeError:
        # A lone surrogate ("\ud800") is valid JSON but not UTF-8: keep it escaped, as sent.
        return json.dumps(event, ensure_ascii=True, sort_keys=True).encode() + b"\n"


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        # 1e400 would be written back as Infinity, which no JSON reader accepts.
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def decode_batch(body: bytes) -> list[Event]:
    """The events of a signed body, or BadBatch saying in one line why it is refused."""
    try:
        value = json.loads(body, parse_float=_finite_float, parse_constant=_refuse_constant)
    except RecursionError:
        raise BadBatch(f"body nests deeper than {MAX_NESTING} levels") from None
    except ValueError as error:  # also undecodable UTF-8 and integers over 4300 digits
        reason = str(error).splitlines()[0][:160] if str(error) else "invalid"
        raise BadBatch(f"body is not JSON ({reason})") from None
    if not isinstance(value, list) or not all(isinstance(event, dict) for event in value):
        raise BadBatch("body must be a JSON array of events")
    if len(value) > MAX_EVENTS_PER_POST:
        raise BadBatch(f"more than {MAX_EVENTS_PER_POST} events in one post")
    if _nesting_exceeds(value, MAX_NESTING):
        raise BadBatch(f"body nests deeper than {MAX_NESTING} levels")
    events = [Event.of(event) for event in value]
    for number, event in enumerate(events, 1):
        if len(event.line) > MAX_EVENT_BYTES:
            raise BadBatch(f"event {number} is larger than {MAX_EVENT_BYTES // 1024} KiB")
    return events


def _nesting_exceeds(value: object, limit: int) -> bool:
    # Iterative: a recursive walk is what a hostile body would make overflow.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class SeenIndex:
    """sg_event_ids stored in the last DEDUP_DAYS days, in a SQLite file next to the events.

    Only an optimisation (the nightly model de-duplicates too), so it never fails a post: a
    missing file (folder deleted) is recreated, a corrupt one replaced, and while it cannot
    be used events are simply stored without de-duplication."""

    def __init__(self, path: Path, days: int = DEDUP_DAYS):
        self.path = path
        self.days = days
        self._db: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None

    def known(self, ids: Iterable[str], today: dt.date) -> set[str]:
        """The ids among `ids` first stored within the window ending `today`."""
        ids = list(ids)
        if not ids:
            return set()
        since = (today - dt.timedelta(days=self.days)).isoformat()

        def query(db: sqlite3.Connection) -> set[str]:
            found = set()
            for start in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"select id from seen where id in ({marks}) and day >= ?", [*chunk, since]
                )
                found.update(row[0] for row in rows)
            return found

        return self._use(query, set())

    def remember(self, ids: Iterable[str], today: dt.date) -> None:
        """Record ids stored `today` and forget a bounded number of expired ones."""
        rows = [(event_id, today.isoformat()) for event_id in ids]
        expired = (today - dt.timedelta(days=self.days)).isoformat()

        def write(db: sqlite3.Connection) -> None:
            with db:
                db.executemany("insert or ignore into seen (id, day) values (?, ?)", rows)
                db.execute(
                    "delete from seen where id in (select id from seen where day < ? limit ?)",
                    [expired, _PRUNE_BATCH],
                )

        self._use(write, None)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
        self._db = self._identity = None

    def _use(self, action, fallback):
        for _attempt in (1, 2):  # a corrupt file is replaced, then tried once more
            try:
                return action(self._connection())
            except (sqlite3.Error, OSError) as error:
                corrupt = getattr(error, "sqlite_errorname", "") in _CORRUPT
                log.warning(
                    "de-duplication index %s unusable (%s): %s",
                    self.path,
                    error,
                    "recreating it" if corrupt else "storing without it for now",
                )
                self.close()  # reopened on next use
                if not corrupt:  # locked, I/O error: the file may be fine; keep it
                    return fallback
                self._discard()
        return fallback

    def _connection(self) -> sqlite3.Connection:
        # The folder may have been deleted (or the file replaced) since it was opened: an
        # open connection would go on writing into a file nobody can see.
        try:
            stat = self.path.stat()
            identity = (stat.st_dev, stat.st_ino)
        except FileNotFoundError:
            identity = None
        if self._db is None or identity != self._identity:
            self.close()
            self._db = self._open()
            stat = self.path.stat()
            self._identity = (stat.st_dev, stat.st_ino)
        return self._db

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
        try:
            # WAL with synchronous=NORMAL: a crash loses at most the last ids (a retry is then
            # stored twice, which the nightly model de-duplicates) and never corrupts the file.
            db.execute("pragma journal_mode=wal")
            db.execute("pragma synchronous=normal")
            db.execute(
                "create table if not exists seen (id text primary key, day text not null) "
                "without rowid"
            )
            db.execute("create index if not exists seen_by_day on seen (day)")
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _discard(self) -> None:
        self.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)


class EventStore:
    """Appends events to the day's file, skipping event ids stored within DEDUP_DAYS."""

    def __init__(
        self,
        landing: Path,
        clock: Callable[[], dt.datetime] | None = None,
        dedup_days: int = DEDUP_DAYS,
    ):
        self.landing = landing
        self.folder = landing / EVENTS_FOLDER
        self.folder.mkdir(parents=True, exist_ok=True)
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._lock = threading.Lock()
        # Start-up reads no event file: only this index, opened on first use.
        self.seen = SeenIndex(self.folder / SEEN_INDEX, dedup_days)

    def append(self, events: list[Event]) -> int:
        """Store the new events durably; returns how many were new. Raises OSError when
        they could not be stored (the caller answers 500 and SendGrid sends them again)."""
        # The file lock: erasure rewrites these files from another process.
        with self._lock, events_folder_lock(self.landing) as folder:
            now = self._clock()
            today = now.date()
            known = self.seen.known({e.id for e in events if e.id}, today)
            fresh, ids = [], set()
            for event in events:
                if event.id:
                    if event.id in known or event.id in ids:
                        continue
                    ids.add(event.id)
                fresh.append(event)
            if fresh:
                self._write(folder / f"{now:%Y-%m-%d}.jsonl", b"".join(e.line for e in fresh))
            # Only once they are on disk: a failed write must not make SendGrid's retry
            # look like a duplicate.
            self.seen.remember(ids, today)
            return len(fresh)

    def close(self) -> None:
        with self._lock:  # not under an append still running
            self.seen.close()

    def _write(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a crash cut the last line short: start on a new one
            # One write call on an O_APPEND file: readers never see half a batch's line
            # boundaries move, and SendGrid retries only while we answer non-2xx.
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)
