"""Addresses suppressed after the send decisions were made, looked up before every batch.

The decisions read the suppression list as the night's load left it. An unsubscribe that
reaches `nightjar webhook` later, or an address SendGrid refuses for another campaign that
same night, must still stop a message that has not left. The first look reads the files
changed since the load (today's, as a rule), each later one only the bytes appended since.
A group or one-click unsubscribe stops its topic's messages only (as suppression_list
scopes it); a one-click one names the contact rather than the address.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb
import polars as pl

from models.landing import EVENTS_FOLDER
from senders.base import Message
from senders.ledger import Ledger

# SendGrid events that suppress an address for good (as the suppression_list model reads;
# erasure keeps an erased address suppressed by them).
SUPPRESSING_EVENTS = frozenset({"bounce", "spamreport", "unsubscribe", "group_unsubscribe"})


class LateSuppressions:
    """What the webhook landed beyond what the night's load read, and nightjar.suppressions."""

    def __init__(
        self,
        landing: Path,
        con: duckdb.DuckDBPyConnection,
        topic_of_group: Mapping[int, str] | None = None,
        messages: Sequence[Message] = (),
        ledger: Ledger | None = None,
    ):
        """`messages`: tonight's, whose addresses are looked up in nightjar.suppressions at
        once, here; a batch then looks up only the addresses it brings anew. `ledger`: the
        send's, whose suppressions from here on (SendGrid refused an address in a batch's
        answer) stop the later batches' messages to the address."""
        self.folder = landing / EVENTS_FOLDER
        self.con = con
        self._ledger = ledger
        self._ledger_read = len(ledger.suppressed) if ledger is not None else 0
        self._topic_of_group = dict(topic_of_group or {})
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
        # (("email", address) or ("contact", id), scope: "all" or a topic) -> event
        self._suppressed: dict[tuple[tuple[str, str], str], str] = {}
        self._looked_up: set[str] = set()  # addresses whose rows were read
        self._look_up({m.to_email.strip().lower() for m in messages})

    def withheld(self, batch: list[Message]) -> dict[str, str]:
        """send_id -> why, for the batch's messages whose address (or contact) is suppressed
        by now, for everything or for the message's topic."""
        self._read_new_events()
        self._look_up({m.to_email.strip().lower() for m in batch} - self._looked_up)
        self._read_the_ledger()
        # who is suppressed for anything: most messages are looked up no further
        anyone = {who for who, _ in self._suppressed}
        return {
            message.send_id: f"suppressed after the decisions were made ({why})"
            for message in batch
            if (
                ("email", message.to_email.strip().lower()) in anyone
                or ("contact", message.contact_id) in anyone
            )
            and (why := self._suppression_of(message))
        }

    def _look_up(self, addresses: set[str]) -> None:
        """nightjar.suppressions' rows of `addresses` (registered as a frame, not passed as a
        list parameter: a night's many)."""
        if not addresses:
            return
        self.con.register("nightjar_addresses", pl.DataFrame({"email": list(addresses)}))
        try:
            rows = self.con.execute(
                "select email, reason from nightjar.suppressions "
                "where email in (select email from nightjar_addresses)"
            ).fetchall()
        finally:
            self.con.unregister("nightjar_addresses")
        for email, reason in rows:
            self._suppressed[(("email", email), "all")] = reason
        self._looked_up |= addresses

    def _read_the_ledger(self) -> None:
        """The addresses the send's ledger suppressed since the last look, as the table holds
        them (normalised by DuckDB); an address suppressed before keeps its first reason, as
        the table does (insert or ignore)."""
        if self._ledger is None:
            return
        new = self._ledger.suppressed[self._ledger_read :]
        self._ledger_read += len(new)
        for email, reason in new:
            self._suppressed.setdefault((("email", email), "all"), reason)

    def _suppression_of(self, message: Message) -> str | None:
        """The event that stops `message`, for its address or contact, for everything or for
        its topic."""
        who = (("email", message.to_email.strip().lower()), ("contact", message.contact_id))
        for key in who:
            for scope in ("all", message.topic):
                event = self._suppressed.get((key, scope))
                if event:
                    return event if scope == "all" else f"{event} from topic {scope}"
        return None

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
        kind = event.get("event")
        if not isinstance(kind, str) or kind not in SUPPRESSING_EVENTS:
            return
        scope = self._scope(kind, event)
        email, contact = event.get("email"), event.get("contact_id")
        if isinstance(email, str) and email.strip():
            self._suppressed[(("email", email.strip().lower()), scope)] = kind
        elif kind == "group_unsubscribe" and isinstance(contact, str) and contact:
            # a one-click unsubscribe names the contact, not the address (as suppression_list
            # reads it); an event with an address is that address's alone (a test send's
            # tester is not the member whose data it showed)
            self._suppressed[(("contact", contact), scope)] = kind

    def _scope(self, kind: str, event: dict) -> str:
        """As suppression_list scopes it: a group unsubscribe stops the topic of its group
        (or, without a group, the topic it names); one of a group Nightjar does not know,
        and every other event, stops everything."""
        if kind != "group_unsubscribe":
            return "all"
        group, topic = event.get("asm_group_id"), event.get("topic")
        if isinstance(group, int) and not isinstance(group, bool):  # else emptied at the load
            return self._topic_of_group.get(group, "all")
        return topic if isinstance(topic, str) and topic else "all"
