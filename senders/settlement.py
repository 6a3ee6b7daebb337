"""Settling messages of unknown fate: from the outbox file, or from SendGrid's own events."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from models.landing import EVENTS_FOLDER
from senders.outbox import OutboxSender

if TYPE_CHECKING:
    from models.settings import Settings
    from senders.ledger import Ledger


@dataclass
class Settled:
    settled: int = 0  # in flight until now, now known: accepted, or failed (outbox)
    abandoned: int = 0  # no event within the grace period, given up (policy give_up)
    pending: int = 0  # still waiting for SendGrid's events


def settle_in_flight(ledger: Ledger, settings: Settings, campaign: str | None = None) -> Settled:
    """Messages whose request may have reached the channel (a crash, a timeout) are settled
    before they may count as sent or go again: from the outbox file itself, or from SendGrid's
    events; after the grace period the unsettled policy decides. All campaigns when None."""
    result = Settled()
    rows = ledger.in_flight(campaign)
    outbox = OutboxSender(settings.outbox)
    written_in: dict[tuple, set[str]] = {}
    for send_id, name, business_date, channel, _ in rows:
        if channel != outbox.channel:
            continue
        key = (business_date, name)
        if key not in written_in:
            written_in[key] = outbox.already_delivered(*key)
        if send_id in written_in[key]:
            ledger.mark([send_id], "accepted")
        else:
            ledger.mark([send_id], "failed", error="never written")
        result.settled += 1
    others = [r for r in rows if r[3] != outbox.channel]
    seen = send_ids_seen_by_sendgrid(settings.landing, [r[0] for r in others])
    ledger.mark(sorted(seen), "accepted")
    result.settled += len(seen)
    overdue = [r[0] for r in others if r[0] not in seen and r[4] >= settings.settle_grace_hours]
    if settings.unsettled_policy == "resend":
        ledger.mark(overdue, "failed", error="no SendGrid event within the grace period")
        result.settled += len(overdue)
    else:
        ledger.mark(overdue, "abandoned", error="no SendGrid event within the grace period")
        result.abandoned += len(overdue)
    result.pending = len(others) - len(seen) - len(overdue)
    return result


def send_ids_seen_by_sendgrid(landing: Path, send_ids: Collection[str]) -> set[str]:
    """The send_ids any SendGrid event mentions (processed, delivered, dropped, bounce...).

    SendGrid echoes each personalization's custom_args in its events, so one event proves the
    request was accepted, whatever became of the message afterwards.
    """
    files = sorted(str(p) for p in (landing / EVENTS_FOLDER).glob("*.jsonl"))
    if not files or not send_ids:
        return set()
    with duckdb.connect() as con:
        rows = con.execute(
            """
            select distinct send_id
            from read_json(
                $files, format = 'newline_delimited', columns = {send_id: 'VARCHAR'},
                ignore_errors = true  -- a line being written, or cut short by a crash
            )
            where send_id in (select unnest($ids::varchar[]))
            """,
            {"files": files, "ids": list(send_ids)},
        ).fetchall()
    return {row[0] for row in rows}
