"""Send assets: one per declared campaign, sending each cohort member its message once."""

import datetime as dt
import json
import re
import time
from decimal import Decimal
from typing import Any

import duckdb
import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.shared.owners import OWNERS
from assets.shared.partitions import ONE_RUN_PER_DATE, WAREHOUSE_POOL, nightly_partitions
from assets.shared.previews import send_preview
from assets.shared.resources import NightjarResource, make_sender
from assets.shared.state_store import synced as state_synced
from assets.shared.warehouse import connect, ensure_schema
from models.campaigns import Campaign
from models.descriptions import current_vars, vars_record
from models.landing import list_folders
from models.privacy import mask_email
from models.settings import Settings, effective_dbt_vars
from senders.base import Message, Sender, batches
from senders.decision_words import DECISION_WORDS
from senders.delivery import Delivery, SendSummary
from senders.late_suppressions import LateSuppressions
from senders.ledger import (
    SENDABLE_STATUSES,
    WENT_OUT_STATUSES,
    Ledger,
    RehearsalLedger,
    send_id,
)
from senders.outbox import remove_stale_temp_files
from senders.settlement import (
    SendLockTimeout,
    send_ids_seen_by_sendgrid,
    send_lock,
    settle_in_flight,
)


def past_date_reason(
    con: duckdb.DuckDBPyConnection, settings: Settings, day: dt.date
) -> str | None:
    """Why `day` may not send: only the latest business date sends (docs/contract.md §5)."""
    later_sent = con.execute(
        """
        select max(business_date) from (
            select business_date from nightjar.send_ledger
            union all
            select business_date from nightjar.cohort_membership
        )
        """
    ).fetchall()[0][0]
    if later_sent and later_sent > day:
        return f"a later business date ({later_sent}) has already been sent"
    later = [f.business_date for f in list_folders(settings.landing) if f.complete]
    if later and max(later) > day:
        return f"a later business date ({max(later)}) has landed; only the latest date sends"
    return None


LEDGER_REASONS = {
    "refused": "refused",
    "held_out": "holdout",
    "skipped": "cooling_down",
    "withdrawn": "suppressed",
    "baseline": "baseline",
}


def _check_decisions_are_current(
    con: duckdb.DuckDBPyConnection, campaign: Campaign, day: dt.date, settings: Settings
) -> None:
    """send_decisions must be today's, recent and cover the whole cohort, or nothing goes."""
    built_for, decided_at = con.execute(
        "select max(as_of_date), max(decided_at) from main.send_decisions"
    ).fetchall()[0]
    if built_for is not None and built_for != day:
        raise Failure(
            description=f"send_decisions was built for {built_for}, not {day}: materialize "
            f"the warehouse for {day} before sending {campaign.name}."
        )
    age = dt.datetime.now(dt.UTC) - decided_at if decided_at else None
    if age is not None and age > dt.timedelta(minutes=settings.max_decision_age_minutes):
        # Unsubscribes, send times and caps have moved on since: decide again, then send.
        raise Failure(
            description=f"The send decisions for {day} were made {_duration(age)} ago (at "
            f"{decided_at:%Y-%m-%d %H:%M:%S} UTC), more than "
            f"NIGHTJAR_MAX_DECISION_AGE_MINUTES={settings.max_decision_age_minutes:g}: run "
            f"the date again (nightjar run --date {day}) to decide again and send."
        )
    members, decided = con.execute(
        f"""
        select
            (select count(*) from main."{campaign.cohort}"),
            (select count(*) from main.send_decisions where campaign = $campaign)
        """,
        {"campaign": campaign.name},
    ).fetchall()[0]
    if members != decided:
        raise Failure(
            description=f"{campaign.cohort} has {members} member(s) but send_decisions decided "
            f"{decided} for {campaign.name}: the decisions were built from another version of "
            "the campaigns. Materialize the warehouse again (nightjar run) before sending."
        )


def _duration(age: dt.timedelta) -> str:
    seconds = age.total_seconds()
    return f"{seconds:.0f} seconds" if seconds < 120 else f"{seconds / 60:.0f} minutes"


def _decisions(con: duckdb.DuckDBPyConnection, campaign: Campaign) -> pl.DataFrame:
    """The cohort with each member's decision from send_decisions, and the ledger's status
    now: a message another run sent since the decisions were made never goes twice."""
    frame = con.sql(
        f"""
        select
            cohort.*,
            decisions.occasion as nightjar_occasion,
            decisions.decision as nightjar_decision,
            decisions.variant as nightjar_variant,
            decisions.send_at as nightjar_send_at,
            decisions.deliver_by as nightjar_deliver_by,
            ledger.status as nightjar_ledger_status,
            decisions.ledger_status as nightjar_decided_status
        from main.send_decisions as decisions
        inner join main."{campaign.cohort}" as cohort
            on decisions.contact_id = cohort.contact_id
        left join nightjar.send_ledger as ledger
            on ledger.campaign = decisions.campaign
            and ledger.contact_id = decisions.contact_id
            and ledger.occasion = decisions.occasion
        where decisions.campaign = $campaign
        order by decisions.contact_id
        """,
        params={"campaign": campaign.name},
    ).pl()
    # the reason send_decisions gives for each ledger status that keeps a message from going
    gone = pl.col("nightjar_ledger_status").replace_strict(
        {**dict.fromkeys(WENT_OUT_STATUSES, "already_sent"), **LEDGER_REASONS},
        default=None,
        return_dtype=pl.String,
    )
    # A message in flight when the decisions were made, which settlement has since found
    # never went (resend policy), goes now as it was decided the night it was planned.
    found_unsent = (
        (pl.col("nightjar_decision") == "already_sent")
        & (pl.col("nightjar_decided_status") == "in_flight")
        & pl.col("nightjar_ledger_status").is_in(SENDABLE_STATUSES)
    )
    # The baseline night records every member's occasion after the decisions were made
    # (assets/sends/checks.py): the control group is served by it too, never held out.
    baselined = (pl.col("nightjar_decision") == "holdout") & (
        pl.col("nightjar_ledger_status") == "baseline"
    )
    return frame.with_columns(
        nightjar_decision=pl.when((pl.col("nightjar_decision") == "send") & gone.is_not_null())
        .then(gone)
        .when(baselined)
        .then(pl.lit("baseline"))
        .when(found_unsent)
        .then(pl.lit("send"))
        .otherwise(pl.col("nightjar_decision"))
    )


def _json_safe(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def _display_name(row: dict[str, Any]) -> str | None:
    # A header may not hold line breaks, and SendGrid silently drops mail whose recipient
    # name holds a comma or semicolon: personal data never gets to shape the message.
    parts = [str(row.get(k) or "").strip() for k in ("first_name", "last_name")]
    name = " ".join(" ".join(p for p in parts if p).replace(",", " ").replace(";", " ").split())
    return name or None


def build_message(campaign: Campaign, row: dict[str, Any]) -> Message:
    occasion = row["nightjar_occasion"]
    variant = campaign.variant(row.get("nightjar_variant"))
    return Message(
        send_id=send_id(campaign.name, row["contact_id"], occasion),
        campaign=campaign.name,
        contact_id=row["contact_id"],
        occasion=occasion,
        to_email=row["email"] or "",
        to_name=_display_name(row),
        template_id=variant.template_id,
        subject=variant.subject,
        from_email=campaign.from_email,
        from_name=campaign.from_name,
        categories=campaign.categories,
        data={column: _json_safe(row.get(column)) for column in campaign.template_data},
        variant=row.get("nightjar_variant"),
        send_at=row.get("nightjar_send_at"),
        deliver_by=row.get("nightjar_deliver_by"),
    )


def _wait_for_settlement(ledger: Ledger, settings: Settings, batch: list[Message], summary) -> bool:
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


def _record_membership(con: duckdb.DuckDBPyConnection, campaign: Campaign, day: dt.date) -> None:
    """Keep who was in the cohort today, so tomorrow can tell who entered (docs/contract.md §3)."""
    params = {"cohort": campaign.cohort, "day": day}
    con.execute("begin")
    con.execute(
        "delete from nightjar.cohort_membership where cohort = $cohort and business_date = $day",
        params,
    )
    # One snapshot row per date, even for an empty cohort: "the previous date" must be the
    # previous night, not the last night someone was in it.
    con.execute(
        f"""
        insert or replace into nightjar.cohort_snapshots
        select $cohort, $day, count(*) from main."{campaign.cohort}"
        """,
        params,
    )
    con.execute(
        f"""
        insert into nightjar.cohort_membership
        select $cohort, $day, cohort.contact_id, coalesce(previous.entered_on, $day)
        from main."{campaign.cohort}" as cohort
        left join (
            select contact_id, entered_on from nightjar.cohort_membership
            where cohort = $cohort and business_date = (
                select max(business_date) from nightjar.cohort_snapshots
                where cohort = $cohort and business_date < $day
            )
        ) as previous on cohort.contact_id = previous.contact_id
        """,
        params,
    )
    con.execute("commit")


def send_campaign(
    campaign: Campaign, day: dt.date, settings: Settings, sender: Sender, log=None
) -> SendSummary:
    """Send `campaign` for business date `day`: exactly the members not yet sent this occasion."""
    summary = SendSummary(campaign.name, day.isoformat(), sender.channel)
    with (
        send_lock(settings.warehouse, settings.send_lock_wait_seconds),
        state_synced(settings) as mirror,  # PostgreSQL's state, when it has one
        connect(settings.warehouse) as con,
    ):
        ensure_schema(con)
        summary.skipped_reason = past_date_reason(con, settings, day)
        if summary.skipped_reason:
            return summary
        _check_decisions_are_current(con, campaign, day, settings)
        # A write killed half way left a temporary copy of an outbox file, with addresses.
        remove_stale_temp_files(settings.outbox)
        rehearsal = not sender.records_sends
        ledger = RehearsalLedger(con) if rehearsal else Ledger(con, mirror)
        if rehearsal and sender.channel == "sendgrid":
            summary.channel += " sandbox (nothing recorded)"
        # Normally settled before the decisions were made (raw/sendgrid_events); events that
        # arrived since count too, and what stays unsettled is reported as pending.
        settled = settle_in_flight(ledger, settings, campaign.name)
        summary.settled_from_earlier_runs += settled.settled
        summary.abandoned += settled.abandoned
        summary.pending += settled.pending
        candidates = _decisions(con, campaign)
        summary.cohort_size = candidates.height
        summary.decisions = dict(candidates.group_by("nightjar_decision").len().iter_rows())
        if not rehearsal:
            # Before any message leaves: a crash mid-send must not make tomorrow's run see
            # today's members as entering again.
            _record_membership(con, campaign, day)

        def decided(decision: str) -> list[Message]:
            rows = candidates.filter(pl.col("nightjar_decision") == decision)
            return [build_message(campaign, row) for row in rows.iter_rows(named=True)]

        # Decisions the ledger keeps for good: a control group member stays one, and an
        # occasion passed over while the campaign cooled down is not sent later.
        open_ = pl.col("nightjar_ledger_status").is_null() | pl.col("nightjar_ledger_status").is_in(
            SENDABLE_STATUSES
        )
        for decision, status, why in (
            ("holdout", "held_out", "in the campaign's control group"),
            ("cooling_down", "skipped", f"due within {campaign.cooldown_days} days of another"),
        ):
            rows = candidates.filter((pl.col("nightjar_decision") == decision) & open_)
            held = [build_message(campaign, row) for row in rows.iter_rows(named=True)]
            ledger.plan(_ledger_rows(held), day, sender.channel, status, why)
        messages = decided("send")  # ordered by contact_id, as the query returns them
        for message in messages:
            summary.samples.setdefault(message.variant or "", message)
        ledger.plan(_ledger_rows(messages), day, sender.channel)
        if log:
            log.info(f"{campaign.name}: sending {len(messages)} message(s) via {sender.channel}")
        # template_id belongs to a request, so each variant is batched apart
        by_variant: dict[str | None, list[Message]] = {}
        for message in messages:
            by_variant.setdefault(message.variant, []).append(message)
        planned = [
            batch
            for group in by_variant.values()
            for batch in batches(
                group, sender.max_batch_size, sender.max_batch_bytes, sender.message_bytes
            )
        ]
        Delivery(
            sender,
            ledger,
            day,
            summary,
            withheld=LateSuppressions(settings.landing, con).withheld,
            settled=lambda lost: _wait_for_settlement(ledger, settings, lost, summary),
            log=log,
        ).run(planned)
    return summary


def _masked(value: Any) -> Any:
    """Text (names, dates of birth, ...) shows its first character only; numbers stay, so
    the preview still shows the shape of what the template gets."""
    if isinstance(value, str):
        return f"{value[:1]}***" if value else value
    return value


def render_sample(message: Message) -> str:
    """One message as a marketer previews it: personal data masked, the rest escaped."""
    masked = {key: _masked(value) for key, value in message.data.items()}
    data = json.dumps(masked, ensure_ascii=False, indent=2, sort_keys=True)
    variant = f" · variant {message.variant}" if message.variant else ""
    when = f" · at {message.send_at.isoformat()}" if message.send_at else ""
    # Personal data stays inside the code block: its fence is longer than any run of
    # backticks a name could hold, so a name cannot close it and become markdown or HTML.
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", data)), default=0))
    return (
        f"**{message.subject}** (template `{message.template_id}`{variant})\n\n"
        f"To: {mask_email(message.to_email)} · occasion {message.occasion}{when}\n\n"
        f"{fence}json\n{data}\n{fence}"
    )


def marketer_metadata(
    summary: SendSummary, preview: str | None, night: dict[str, Any]
) -> dict[str, Any]:
    """A send's materialization as a marketer reads it: the night's figures first, in words
    (Dagster plots each number under its name), then who got what and why, one message as
    it went out, and last what only an engineer needs."""
    metadata: dict[str, Any] = {}
    if summary.skipped_reason:
        metadata["not sent because"] = summary.skipped_reason
    metadata["cohort size"] = summary.cohort_size
    metadata["sent"] = summary.sent
    metadata["held out"] = summary.decisions.get("holdout", 0)
    # each reason not to message that applied, in send_decisions' order of them
    for decision in [*DECISION_WORDS, *sorted(set(summary.decisions) - set(DECISION_WORDS))]:
        if decision not in ("send", "holdout") and summary.decisions.get(decision):
            label = DECISION_WORDS.get(decision, decision.replace("_", " "))
            metadata[label] = summary.decisions[decision]
    metadata["failed"] = summary.failed
    if preview:
        metadata["preview"] = MetadataValue.md(preview)
    for variant, sample in sorted(summary.samples.items()):
        key = f"sample message, variant {variant}" if variant else "sample message"
        metadata[key] = MetadataValue.md(render_sample(sample))
    metadata["channel"] = summary.channel
    metadata["delivery"] = MetadataValue.json(
        {
            "refused": summary.refused,  # by the provider tonight, for good
            "withdrawn": summary.withdrawn,
            "pending": summary.pending,
            "not_attempted": summary.not_attempted,
            "settled_from_earlier_runs": summary.settled_from_earlier_runs,
            "abandoned": summary.abandoned,
        }
    )
    # The contact policy this run applies (the description is the code location's).
    metadata["vars"] = MetadataValue.json(vars_record(night))
    return metadata


def _preview(campaign: Campaign, settings: Settings, send_hour: int, log) -> str | None:
    """The first members of the campaign with what became of them, read after the send."""
    try:
        with connect(settings.warehouse) as con:
            return send_preview(con, campaign.name, campaign.cooldown_days, send_hour)
    except duckdb.Error as error:  # a preview never fails a send
        log.warning(f"{campaign.name}: no preview of its members: {error}")
        return None


def _ledger_rows(messages: list[Message]):
    return (
        (m.send_id, m.campaign, m.contact_id, m.occasion, m.variant, m.send_at) for m in messages
    )


def _require_send_checks(settings: Settings, day: dt.date) -> None:
    """The send checks guard every send, also one materialized on its own."""
    with connect(settings.warehouse) as con:
        ensure_schema(con)
        if past_date_reason(con, settings, day):
            return  # nothing will be sent
        passed = con.execute(
            "select count(*) from nightjar.night_metrics where business_date = ?", [day]
        ).fetchall()[0][0]
    if not passed:
        raise Failure(
            description=f"The send checks have not passed for {day}: materialize send_checks "
            "(or run the date: nightjar run) before sending."
        )


def build_send_asset(campaign: Campaign):
    @asset(
        name=campaign.asset_name,
        group_name="sends",
        owners=OWNERS["sends"],
        deps=[
            AssetKey([campaign.cohort]),
            AssetKey(["send_decisions"]),
            AssetKey(["send_checks"]),
        ],
        partitions_def=nightly_partitions,
        kinds={"sendgrid"},
        pool=WAREHOUSE_POOL,
        backfill_policy=ONE_RUN_PER_DATE,
        description=campaign.describe(current_vars()),
        metadata={
            "campaign": campaign.name,
            "template_id": campaign.template_id,
            "occasion_column": campaign.occasion_column,
            "cooldown_days": campaign.cooldown_days,
            "priority": campaign.priority,
            "variants": ", ".join(v.name for v in campaign.variants) or "none",
        },
    )
    def _send(context: AssetExecutionContext, nightjar: NightjarResource) -> MaterializeResult:
        settings = nightjar.settings()
        day = dt.date.fromisoformat(context.partition_key)
        sender = make_sender(settings, dry_run=nightjar.dry_run)
        if not nightjar.dry_run:
            _require_send_checks(settings, day)
        try:
            summary = send_campaign(campaign, day, settings, sender, context.log)
        except SendLockTimeout as error:
            raise Failure(description=str(error)) from None
        night = {**effective_dbt_vars(settings), "as_of_date": context.partition_key}
        # A past date's decisions are not its own: nothing to preview.
        send_hour = campaign.send_hour if campaign.send_hour is not None else night["send_hour"]
        preview = (
            None if summary.skipped_reason else _preview(campaign, settings, send_hour, context.log)
        )
        metadata = marketer_metadata(summary, preview, night)
        if summary.skipped_reason:
            context.log.info(f"{campaign.name}: not sending for {day}: {summary.skipped_reason}")
        if not summary.ok:
            raise Failure(
                description=(
                    f"{campaign.name} for {day}: {summary.sent} sent, {summary.failed} failed, "
                    f"{summary.pending} still pending (sent, but no answer yet), "
                    f"{summary.not_attempted} not attempted. "
                    + " | ".join(summary.errors[:3])
                    + " Run the date again to send the rest: failed messages are retried, "
                    "pending ones are settled from SendGrid's events first (see the README)."
                ),
                metadata=metadata,
            )
        return MaterializeResult(metadata=metadata)

    return _send
