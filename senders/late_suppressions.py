"""Addresses suppressed after the send decisions were made, looked up before every batch.

The decisions read the suppression list as the night's load left it. An unsubscribe that
reaches `nightjar webhook` later, or an address SendGrid refuses for another campaign that
same night, must still stop a message that has not left. The first look reads the files
changed since the load (today's, as a rule), each later one only the bytes appended since.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb

from models.landing import EVENTS_FOLDER
from senders.base import Message

# SendGrid events that suppress an address for good (as the suppression_list model reads;
# erasure keeps an erased address suppressed by them).
SUPPRESSING_EVENTS = frozenset({"bounce", "spamreport", "unsubscribe", "group_unsubscribe"})


class LateSuppressions:
    """What the webhook landed beyond what the night's load read, and nightjar.suppressions."""

    def __init__(self, landing: Path, con: duckdb.DuckDBPyConnection):
        self.folder = landing / EVENTS_FOLDER
        self.con = con
        # What the night's load read: each file's size and modification time. A file changed
        # since (appended to, or rewritten by an erasure, perhaps into the same inode) is
        # read whole at the first look; one unchanged, not at all.
        self._loaded: dict[str, tuple[int, int]] = {
            name: (size, modified)
            for name, size, modified in con.execute(
                "select source_file, size_bytes, modified_ns from raw.loaded_event_files"
            ).fetchall()
        }
        self._read_to: dict[str, int] = {}
        self._suppressed: dict[str, str] = {}  # normalized address -> event

    def withheld(self, batch: list[Message]) -> dict[str, str]:
        """send_id -> why, for the batch's messages whose address is suppressed by now."""
        self._read_new_events()
        addresses = {m.to_email.strip().lower() for m in batch}
        found = {a: e for a, e in self._suppressed.items() if a in addresses}
        found.update(
            self.con.execute(
                "select email, reason from nightjar.suppressions "
                "where email in (select unnest($addresses::varchar[]))",
                {"addresses": sorted(addresses)},
            ).fetchall()
        )
        return {
            m.send_id: f"suppressed after the decisions were made ({found[key]})"
            for m in batch
            if (key := m.to_email.strip().lower()) in found
        }

    def _read_new_events(self) -> None:
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("*.jsonl")):
            with path.open("rb") as handle:
                stat = os.fstat(handle.fileno())
                name = str(path)
                if name not in self._read_to:  # the first look at it
                    unchanged = self._loaded.get(name) == (stat.st_size, stat.st_mtime_ns)
                    self._read_to[name] = stat.st_size if unchanged else 0
                start = self._read_to[name]
                if stat.st_size < start:
                    start = 0  # rewritten meanwhile (erasure): read it whole again
                if stat.st_size == start:
                    continue
                handle.seek(start)
                data = handle.read(stat.st_size - start)
            # Only whole lines: the webhook may be writing the next one.
            complete = data[: data.rfind(b"\n") + 1]
            self._read_to[name] = start + len(complete)
            for line in complete.splitlines():
                self._note(line)

    def _note(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return  # a line cut short by a crash
        if not isinstance(event, dict):
            return
        kind, email = event.get("event"), event.get("email")
        if (
            isinstance(kind, str)
            and kind in SUPPRESSING_EVENTS
            and isinstance(email, str)
            and email.strip()
        ):
            self._suppressed[email.strip().lower()] = kind
