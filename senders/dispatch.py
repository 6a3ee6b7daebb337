"""A campaign's night of sending, over a connection its caller holds (with the send lock and
the state synced): settle what earlier runs left in flight, record in the ledger every
decision it keeps and every message before any leaves, then deliver them in batches, one
variant apart from the other. And what the night's summary says, in a marketer's words."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import duckdb
import polars as pl

from models.campaigns import Campaign
from models.privacy import mask_emails_in
from models.settings import Settings
from senders.base import Message, Sender, batches
from senders.channels import one_click
from senders.cohort import (
    check_decisions_are_current,
    cohort_decisions,
    past_date_reason,
    record_membership,
)
from senders.decision_words import DECISION_WORDS
from senders.delivery import Delivery, SendSummary
from senders.journey_state import SKIPS, record_journey_state
from senders.late_suppressions import LateSuppressions
from senders.ledger import SENDABLE_STATUSES, Ledger, RehearsalLedger
from senders.messages import MessageMaker, OneClick, ledger_frame, message_columns
from senders.outbox import remove_stale_temp_files
from senders.settlement import send_ids_seen_by_sendgrid, settle_in_flight


def send_decided(
    con: duckdb.DuckDBPyConnection,
    mirror: Any,
    campaign: Campaign,
    day: dt.date,
    settings: Settings,
    sender: Sender,
    log: Any = None,
    paused: str | None = None,
) -> SendSummary:
    """Send `campaign` for business date `day`: exactly the members not yet sent this occasion.
    `mirror` is the ledger's copy in PostgreSQL, if any. Raises DecisionsNotCurrent
    (senders/cohort.py) when send_decisions may not be sent from. A paused program
    (`paused`: Campaign.paused_reason) is counted, and nothing of it sent or recorded."""
    summary = SendSummary(campaign.name, day, sender.channel)
    summary.skipped_reason = past_date_reason(con, settings, day)
    if summary.skipped_reason:
        return summary
    check_decisions_are_current(con, campaign, day, settings)
    # A write killed half way left a temporary copy of an outbox file, with addresses.
    remove_stale_temp_files(settings.outbox)
    ledger = _ledger(con, mirror, sender, summary)
    _settle_earlier_runs(ledger, settings, campaign, summary)
    candidates = cohort_decisions(con, campaign)
    summary.cohort_size = candidates.height
    summary.decisions = dict(candidates.group_by("nightjar_decision").len().iter_rows())
    if paused:
        summary.skipped_reason = paused
        return summary

    def record(planned: pl.DataFrame) -> None:
        """What the night records before any message leaves (by a thread of its own, while
        Python builds the messages)."""
        # The cohort's and the journey's state are written beside the ledger's rows, over a
        # connection of their own (other tables; DuckDB takes both at once): one after the
        # other, they took about 0.8 and 2.5 s of a send of 200,000 (docs/performance.md).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nightjar-state") as aside:
            state = sender.records_sends and aside.submit(
                _record_state, _own_connection(con), campaign, day
            )
            try:
                _record_kept_decisions(ledger, campaign, candidates, day, sender.channel)
                ledger.plan_frame(planned, day, sender.channel)
            except Exception as error:
                if state and (also := state.exception()) is not None:  # told, not lost
                    what = mask_emails_in(f"{type(also).__name__}: {also}")
                    error.add_note(f"The cohort's or the journey's state failed too: {what}")
                raise
            if state:
                state.result()

    messages, requests = _plan_sends(
        record, campaign, candidates, summary, one_click(settings), sender
    )
    if log:
        log.info(f"{campaign.name}: sending {len(messages)} message(s) via {sender.channel}")
    Delivery(
        sender,
        ledger,
        day,
        summary,
        withheld=LateSuppressions(
            settings.landing, con, settings.topic_of_group, messages, ledger
        ).withheld,
        settled=lambda lost: wait_for_settlement(ledger, settings, lost, summary),
        log=log,
    ).run(requests)
    return summary


def _own_connection(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Another connection to `con`'s database, for another thread, in `con`'s time zone (a
    connection's own setting; the state's timestamps are written in it)."""
    [(zone,)] = con.execute("select current_setting('TimeZone')").fetchall()  # all: done
    own = con.cursor()
    quoted = zone.replace("'", "''")
    own.execute(f"set TimeZone = '{quoted}'")
    return own


def _record_state(own: duckdb.DuckDBPyConnection, campaign: Campaign, day: dt.date) -> None:
    """Who was in the cohort and where each journey instance stands, before any message
    leaves: a crash mid-send must not make tomorrow's run see today's members as entering
    again, nor draw a journey's control group again. Closes `own`."""
    with own:
        if not campaign.is_journey or campaign.journey.records_membership:
            record_membership(own, campaign, day)
        if campaign.is_journey:
            record_journey_state(own, campaign, day)


def _ledger(
    con: duckdb.DuckDBPyConnection, mirror: Any, sender: Sender, summary: SendSummary
) -> Ledger:
    """The send ledger; for a rehearsal (a dry run, SendGrid's sandbox) one that reads it and
    records nothing."""
    if sender.records_sends:
        return Ledger(con, mirror)
    if sender.channel == "sendgrid":
        summary.channel += " sandbox (nothing recorded)"
    return RehearsalLedger(con)


def _settle_earlier_runs(
    ledger: Ledger, settings: Settings, campaign: Campaign, summary: SendSummary
) -> None:
    # Normally settled before the decisions were made (raw/sendgrid_events); events that
    # arrived since count too, and what stays unsettled is reported as pending.
    settled = settle_in_flight(ledger, settings, campaign.name)
    summary.settled_from_earlier_runs += settled.settled
    summary.abandoned += settled.abandoned
    summary.pending += settled.pending


def _messages(
    campaign: Campaign, rows: pl.DataFrame, send_ids: pl.Series, unsubscribe: OneClick | None
) -> list[Message]:
    read = rows.select(message_columns(campaign, rows.columns))
    make = MessageMaker(campaign, unsubscribe).message
    return [
        make(row, message_id)
        for row, message_id in zip(read.iter_rows(named=True), send_ids, strict=True)
    ]


def _record_kept_decisions(
    ledger: Ledger, campaign: Campaign, candidates: pl.DataFrame, day: dt.date, channel: str
) -> None:
    """Decisions the ledger keeps for good: a control group member stays one, and an
    occasion passed over while the campaign cooled down is not sent later."""
    open_ = pl.col("nightjar_ledger_status").is_null() | pl.col("nightjar_ledger_status").is_in(
        SENDABLE_STATUSES
    )
    kept = [
        ("holdout", "held_out", "in the campaign's control group"),
        ("cooling_down", "skipped", f"due within {campaign.cooldown_days} days of another"),
        # a journey's step passed over: the next step's wait starts tonight
        *((decision, "skipped", f"{decision}: {why}") for decision, why in SKIPS.items()),
    ]
    for decision, status, why in kept:
        rows = candidates.filter((pl.col("nightjar_decision") == decision) & open_)
        ledger.plan_frame(ledger_frame(campaign, rows), day, channel, status, why)


def _plan_sends(
    record: Callable[[pl.DataFrame], None],
    campaign: Campaign,
    candidates: pl.DataFrame,
    summary: SendSummary,
    unsubscribe: OneClick | None,
    sender: Sender,
) -> tuple[list[Message], list[list[Message]]]:
    """Tonight's messages and the requests to make of them (variant_batches), each message
    `record`ed (with the ledger's rows of them) before any leaves; the first of each step
    and variant is the summary's sample."""
    rows = candidates.filter(pl.col("nightjar_decision") == "send")
    planned = ledger_frame(campaign, rows)
    # DuckDB records while Python builds the messages and weighs the requests (its
    # statements do not hold Python's lock, and nothing else uses the connection
    # meanwhile): their times overlap
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nightjar-plan") as writer:
        recorded = writer.submit(record, planned)
        # ordered by contact_id, as the query returns them
        messages = _messages(campaign, rows, planned["send_id"], unsubscribe)
        requests = variant_batches(messages, sender)
        recorded.result()
    shown: set[tuple[str | None, str | None]] = set()
    for message in messages:
        if (message.step, message.variant) not in shown:
            shown.add((message.step, message.variant))
            summary.samples.setdefault(message.label, message)
    return messages, requests


def variant_batches(messages: Sequence[Message], sender: Sender) -> list[list[Message]]:
    """The requests to make, in order: template_id belongs to a request, so each variant (and
    each journey step) is batched apart."""
    by_variant: dict[tuple[str | None, str | None], list[Message]] = {}
    for message in messages:
        by_variant.setdefault((message.step, message.variant), []).append(message)
    return [batch for group in by_variant.values() for batch in _sized_batches(group, sender)]


def _sized_batches(messages: Sequence[Message], sender: Sender) -> list[list[Message]]:
    """Batches of at most the sender's size; one of them that holds too many bytes, in
    batches by the exact size of each of its messages. Each batch weighed at once, not each
    message: a request is far from SendGrid's 20 MB but for giant fields, and weighing each
    message took a tenth of a send."""
    limit = sender.max_batch_bytes
    sized: list[list[Message]] = []
    for batch in batches(messages, sender.max_batch_size):
        if limit is None or sender.messages_bytes(batch) <= limit:
            sized.append(batch)
        else:
            exact = lambda m: sender.messages_bytes([m], exact=True)  # noqa: E731
            sized.extend(batches(batch, sender.max_batch_size, limit, exact))
    return sized


def wait_for_settlement(
    ledger: Ledger, settings: Settings, batch: list[Message], summary: SendSummary
) -> bool:
    """A batch with no answer is not sent again; SendGrid's events may still prove it took
    it. True when every message of the batch is settled. A batch scheduled for later is not
    waited for: SendGrid reports such messages when it releases them."""
    now = dt.datetime.now(dt.UTC)
    if any(m.send_at is not None and m.send_at > now for m in batch):
        return False
    deadline = time.monotonic() + settings.settle_wait_seconds
    pending = {m.send_id for m in batch}
    while pending:
        seen = send_ids_seen_by_sendgrid(settings.landing, pending)
        ledger.mark(sorted(seen), "accepted")
        summary.sent += len(seen)
        summary.pending -= len(seen)
        pending -= seen
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    return not pending


def summary_figures(summary: SendSummary) -> dict[str, Any]:
    """The night's figures in words, as a marketer reads them: why nothing was sent, if so;
    who was in the cohort, sent, held out, each reason not to message that applied, failed."""
    figures: dict[str, Any] = {}
    if summary.skipped_reason:
        figures["not sent because"] = summary.skipped_reason
    figures["cohort size"] = summary.cohort_size
    figures["sent"] = summary.sent
    figures["held out"] = summary.decisions.get("holdout", 0)
    # each reason not to message that applied, in send_decisions' order of them
    for decision in [*DECISION_WORDS, *sorted(set(summary.decisions) - set(DECISION_WORDS))]:
        if decision not in ("send", "holdout") and summary.decisions.get(decision):
            label = DECISION_WORDS.get(decision, decision.replace("_", " "))
            figures[label] = summary.decisions[decision]
    figures["failed"] = summary.failed
    return figures


def delivery_figures(summary: SendSummary) -> dict[str, int]:
    """What only an engineer needs: what became of the messages that did not simply go."""
    return {
        "refused": summary.refused,  # by the provider tonight, for good
        "withdrawn": summary.withdrawn,
        "pending": summary.pending,
        "not_attempted": summary.not_attempted,
        "settled_from_earlier_runs": summary.settled_from_earlier_runs,
        "abandoned": summary.abandoned,
    }
