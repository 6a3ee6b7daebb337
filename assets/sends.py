"""Send assets: one per declared campaign, sending each cohort member its message once."""

import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field
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

from assets.campaigns import Campaign
from pipelines.landing import list_folders
from pipelines.partitions import ONE_RUN_PER_DATE, WAREHOUSE_POOL, nightly_partitions
from pipelines.resources import NightjarResource, make_sender
from pipelines.settings import Settings
from pipelines.warehouse import connect, ensure_schema
from senders.base import Message, Sender, batches, mask_email
from senders.ledger import (
    SENDABLE_STATUSES,
    WENT_OUT_STATUSES,
    Ledger,
    RehearsalLedger,
    send_id,
)
from senders.outbox import OutboxSender
from senders.settlement import SendLockTimeout, send_ids_seen_by_sendgrid, send_lock


@dataclass
class SendSummary:
    campaign: str
    business_date: str
    channel: str
    skipped_reason: str | None = None
    cohort_size: int = 0
    # What the ledger said of each member before sending (to_send, already_sent, in_flight,
    # cooling_down, skipped, abandoned, refused).
    decisions: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    failed: int = 0  # refused for now: sent again by the next run
    refused: int = 0  # refused for good (an address the provider will not take)
    pending: int = 0  # fate unknown: waiting for SendGrid's events
    not_attempted: int = 0  # left planned when the channel stopped answering
    settled_from_earlier_runs: int = 0
    abandoned: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.pending or self.not_attempted)

    def metadata(self) -> dict[str, Any]:
        flat = {k: v for k, v in asdict(self).items() if k not in ("errors", "decisions")}
        flat.update({f"decision_{k}": v for k, v in sorted(self.decisions.items())})
        return {k: v for k, v in flat.items() if v is not None}


def past_date_reason(
    con: duckdb.DuckDBPyConnection, settings: Settings, day: dt.date
) -> str | None:
    """Why `day` may not send: only the latest business date sends (CONTRACT §5)."""
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


def _check_cohort_is_current(con: duckdb.DuckDBPyConnection, campaign: Campaign, day: dt.date):
    built_for = con.execute(f'select max(as_of_date) from main."{campaign.cohort}"').fetchall()[0][
        0
    ]
    if built_for is not None and built_for != day:
        raise Failure(
            description=f"{campaign.cohort} was built for {built_for}, not {day}: materialize "
            f"the warehouse for {day} before sending {campaign.name}."
        )


def _candidates(con: duckdb.DuckDBPyConnection, campaign: Campaign, day: dt.date) -> pl.DataFrame:
    """The cohort with each member's decision: to_send, cooling_down, already_sent, or the
    ledger status that keeps its message from going (in_flight, skipped, abandoned, refused)."""
    sendable = ", ".join(f"'{s}'" for s in SENDABLE_STATUSES)
    went_out = ", ".join(f"'{s}'" for s in WENT_OUT_STATUSES)
    return con.sql(
        f"""
        with cohort as (
            select *, cast("{campaign.occasion_column}" as varchar) as nightjar_occasion
            from main."{campaign.cohort}"
        ),
        ledger as (
            select * from nightjar.send_ledger where campaign = $campaign
        )
        select
            cohort.*,
            case
                when this.status = 'accepted' then 'already_sent'
                when this.status is not null and this.status not in ({sendable}) then this.status
                when exists (
                    select 1 from ledger as earlier
                    where earlier.contact_id = cohort.contact_id
                      and earlier.status in ({went_out})
                      and earlier.business_date > $day - to_days($cooldown)
                ) then 'cooling_down'
                else 'to_send'
            end as nightjar_decision
        from cohort
        left join ledger as this
            on this.contact_id = cohort.contact_id and this.occasion = cohort.nightjar_occasion
        order by cohort.contact_id
        """,
        params={"campaign": campaign.name, "day": day, "cooldown": campaign.cooldown_days},
    ).pl()


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
    return Message(
        send_id=send_id(campaign.name, row["contact_id"], occasion),
        campaign=campaign.name,
        contact_id=row["contact_id"],
        occasion=occasion,
        to_email=row["email"],
        to_name=_display_name(row),
        template_id=campaign.template_id,
        subject=campaign.subject,
        from_email=campaign.from_email,
        from_name=campaign.from_name,
        categories=campaign.categories,
        data={column: _json_safe(row.get(column)) for column in campaign.template_data},
    )


def _settle_in_flight(ledger: Ledger, settings: Settings, campaign: Campaign, summary) -> None:
    """Messages whose request may have reached the channel (a crash, a timeout) are settled
    before anything new goes: from the outbox file itself, or from SendGrid's events."""
    rows = ledger.in_flight(campaign.name)
    outbox = OutboxSender(settings.outbox)
    for business_date in sorted({r[1] for r in rows if r[2] == outbox.channel}):
        ids = [r[0] for r in rows if r[2] == outbox.channel and r[1] == business_date]
        written = outbox.already_delivered(business_date.isoformat(), campaign.name)
        ledger.mark([i for i in ids if i in written], "accepted")
        ledger.mark([i for i in ids if i not in written], "failed", error="never written")
        summary.settled_from_earlier_runs += len(ids)
    others = [r for r in rows if r[2] != outbox.channel]
    seen = send_ids_seen_by_sendgrid(settings.landing, [r[0] for r in others])
    ledger.mark(sorted(seen), "accepted")
    summary.settled_from_earlier_runs += len(seen)
    overdue = [r[0] for r in others if r[0] not in seen and r[3] >= settings.settle_grace_hours]
    if settings.unsettled_policy == "resend":
        ledger.mark(overdue, "failed", error="no SendGrid event within the grace period")
    else:
        ledger.mark(overdue, "abandoned", error="no SendGrid event within the grace period")
        summary.abandoned += len(overdue)
    summary.pending += len(others) - len(seen) - len(overdue)


def _wait_for_settlement(ledger: Ledger, settings: Settings, ids: list[str], summary) -> bool:
    """A batch with no answer is not sent again; SendGrid's events may still prove it took
    it. True when every message of the batch is settled."""
    deadline = time.monotonic() + settings.settle_wait_seconds
    pending = set(ids)
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
    """Keep who was in the cohort today, so tomorrow can tell who entered (CONTRACT §3)."""
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
        connect(settings.warehouse) as con,
    ):
        ensure_schema(con)
        summary.skipped_reason = past_date_reason(con, settings, day)
        if summary.skipped_reason:
            return summary
        _check_cohort_is_current(con, campaign, day)
        rehearsal = not sender.records_sends
        ledger = RehearsalLedger(con) if rehearsal else Ledger(con)
        if rehearsal and sender.channel == "sendgrid":
            summary.channel += " sandbox (nothing recorded)"
        _settle_in_flight(ledger, settings, campaign, summary)
        candidates = _candidates(con, campaign, day)
        summary.cohort_size = candidates.height
        summary.decisions = dict(candidates.group_by("nightjar_decision").len().iter_rows())
        if not rehearsal:
            # Before any message leaves: a crash mid-send must not make tomorrow's run see
            # today's members as entering again.
            _record_membership(con, campaign, day)

        def decided(decision: str) -> list[Message]:
            rows = candidates.filter(pl.col("nightjar_decision") == decision)
            return [build_message(campaign, row) for row in rows.iter_rows(named=True)]

        cooldown = f"due within {campaign.cooldown_days} days of an earlier message"
        ledger.plan(_ledger_rows(decided("cooling_down")), day, sender.channel, "skipped", cooldown)
        messages = decided("to_send")  # ordered by contact_id, as the query returns them
        ledger.plan(_ledger_rows(messages), day, sender.channel)
        if log:
            log.info(f"{campaign.name}: sending {len(messages)} message(s) via {sender.channel}")
        planned = list(batches(messages, sender.max_batch_size))
        for index, batch in enumerate(planned):
            unanswered = _send_one_batch(ledger, sender, day, batch, summary, log)
            if unanswered and not _wait_for_settlement(ledger, settings, unanswered, summary):
                # The channel stopped answering: the rest stay planned for the next run.
                summary.not_attempted = sum(len(b) for b in planned[index + 1 :])
                break
    return summary


def render_sample(message: Message) -> str:
    """One message as a marketer previews it; the address is masked, the data escaped."""
    data = json.dumps(message.data, ensure_ascii=False, indent=2, sort_keys=True)
    return (
        f"**{message.subject}** (template `{message.template_id}`)\n\n"
        f"To: {mask_email(message.to_email)} · occasion {message.occasion}\n\n"
        f"```json\n{data}\n```"
    )


def _ledger_rows(messages: list[Message]):
    return ((m.send_id, m.campaign, m.contact_id, m.occasion) for m in messages)


def _send_one_batch(ledger, sender, day, batch, summary, log) -> list[str]:
    """Send one batch; returns the send_ids whose fate is unknown."""
    ledger.mark([m.send_id for m in batch], "in_flight")
    outcome = sender.send_batch(day.isoformat(), batch)
    for refused_id, reason in outcome.refused.items():
        ledger.mark([refused_id], "refused", error=reason)
    summary.refused += len(outcome.refused)
    if outcome.refused and log:
        log.warning(f"{summary.campaign}: {len(outcome.refused)} address(es) refused for good")
    ids = [m.send_id for m in batch if m.send_id not in outcome.refused]
    if outcome.accepted:
        ledger.mark(ids, "accepted", provider_message_id=outcome.provider_message_id)
        summary.sent += len(ids)
        return []
    summary.errors.append(f"{len(ids)} message(s): {outcome.error}")
    if log:
        log.error(f"{summary.campaign}: batch of {len(ids)} not accepted: {outcome.error}")
    if outcome.fate_unknown:
        ledger.note(ids, outcome.error)
        summary.pending += len(ids)
        return ids
    ledger.mark(ids, "failed", error=outcome.error)
    summary.failed += len(ids)
    return []


def build_send_asset(campaign: Campaign):
    @asset(
        name=campaign.asset_name,
        group_name="sends",
        deps=[AssetKey([campaign.cohort])],
        partitions_def=nightly_partitions,
        kinds={"sendgrid"},
        pool=WAREHOUSE_POOL,
        backfill_policy=ONE_RUN_PER_DATE,
        description=campaign.describe(),
        metadata={
            "campaign": campaign.name,
            "template_id": campaign.template_id,
            "occasion_column": campaign.occasion_column,
            "cooldown_days": campaign.cooldown_days,
        },
    )
    def _send(context: AssetExecutionContext, nightjar: NightjarResource) -> MaterializeResult:
        settings = nightjar.settings()
        day = dt.date.fromisoformat(context.partition_key)
        sender = make_sender(settings, dry_run=nightjar.dry_run)
        try:
            summary = send_campaign(campaign, day, settings, sender, context.log)
        except SendLockTimeout as error:
            raise Failure(description=str(error)) from None
        metadata = summary.metadata()
        sample = getattr(sender, "samples", {}).get(campaign.name)
        if sample is not None:
            metadata["sample_message"] = MetadataValue.md(render_sample(sample))
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
