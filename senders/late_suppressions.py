"""Addresses suppressed after the send decisions were made, looked up before every batch.

The decisions read the suppression list as the night's load left it. An unsubscribe that
reaches `nightjar webhook` later, or an address SendGrid refuses for another campaign that
same night, must still stop a message that has not left. Each look reads only the bytes the
webhook appended since the last one, so it costs what is new, not the whole day's events.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from pipelines.landing import EVENTS_FOLDER
from senders.base import Message

# SendGrid events that suppress an address for good (as the suppression_list model reads).
SUPPRESSING_EVENTS = frozenset({"bounce", "spamreport", "unsubscribe", "group_unsubscribe"})


class LateSuppressions:
    """What the webhook landed beyond what the night's load read, and nightjar.suppressions."""

    def __init__(self, landing: Path, con: duckdb.DuckDBPyConnection):
        self.folder = landing / EVENTS_FOLDER
        self.con = con
        # The loader recorded each file's size: the decisions saw everything before it.
        self._read_to: dict[str, int] = dict(
            con.execute("select source_file, size_bytes from raw.loaded_event_files").fetchall()
        )
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
            start = self._read_to.get(str(path), 0)
            size = path.stat().st_size
            if size < start:
                start = 0  # rewritten (erasure scrubs its files): read it again
            if size == start:
                continue
            with path.open("rb") as handle:
                handle.seek(start)
                data = handle.read(size - start)
            # Only whole lines: the webhook may be writing the next one.
            complete = data[: data.rfind(b"\n") + 1]
            self._read_to[str(path)] = start + len(complete)
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
