"""Send assets: one per declared campaign, sending each cohort member its message once.

The asset holds the send lock, syncs the state and opens the warehouse; the sending itself
(the decisions, the ledger, the batches) is senders/dispatch.py's."""

import datetime as dt
from collections.abc import Callable
from typing import Any

import duckdb
from dagster import (
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.shared.owners import OWNERS
from assets.shared.partitions import (
    ONE_RUN_PER_DATE,
    WAREHOUSE_POOL,
    business_date,
    nightly_partitions,
)
from assets.shared.previews import markdown_table, send_preview
from assets.shared.resources import NightjarResource
from assets.shared.state_store import synced as state_synced
from assets.shared.warehouse import connect, ensure_schema
from models.campaigns import Campaign
from models.descriptions import current_vars, vars_record
from models.programs import project_topics
from models.settings import Settings, effective_dbt_vars
from senders.base import Sender
from senders.channels import deliverability_problem, make_sender
from senders.cohort import DecisionsNotCurrent, past_date_reason
from senders.decision_words import DECISION_WORDS
from senders.delivery import SendSummary
from senders.dispatch import delivery_figures, send_decided, summary_figures
from senders.journey_state import journey_figures
from senders.lock import SendLockTimeout, send_lock
from senders.messages import render_sample

__all__ = ["build_send_asset", "past_date_reason", "send_campaign"]


def send_campaign(
    campaign: Campaign,
    day: dt.date,
    settings: Settings,
    sender: Sender,
    log=None,
    *,
    before: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    after: Callable[[duckdb.DuckDBPyConnection, SendSummary], None] | None = None,
    paused: str | None = None,
) -> SendSummary:
    """Send `campaign` for business date `day`: exactly the members not yet sent this occasion.
    One sender at a time, with PostgreSQL's state (when it has one) pulled before and pushed
    after. `before` and `after` run on the send's own connection (each connection to a
    warehouse of a million contacts costs a noticeable part of a send)."""
    with (
        send_lock(settings.warehouse, settings.send_lock_wait_seconds),
        state_synced(settings) as mirror,
        connect(settings.warehouse) as con,
    ):
        ensure_schema(con)
        if before:
            before(con)
        summary = send_decided(con, mirror, campaign, day, settings, sender, log, paused)
        if after:
            after(con, summary)
        return summary


def marketer_metadata(
    summary: SendSummary, preview: str | None, night: dict[str, Any]
) -> dict[str, Any]:
    """A send's materialization as a marketer reads it: the night's figures first, in words
    (Dagster plots each number under its name), then who got what and why, one message as
    it went out, and last what only an engineer needs."""
    metadata = summary_figures(summary)
    if preview:
        metadata["preview"] = MetadataValue.md(preview)
    for label, sample in sorted(summary.samples.items()):
        key = f"sample message, {label}" if label else "sample message"
        metadata[key] = MetadataValue.md(render_sample(sample))
    metadata["channel"] = summary.channel
    metadata["delivery"] = MetadataValue.json(delivery_figures(summary))
    # The contact policy this run applies (the description is the code location's).
    metadata["vars"] = MetadataValue.json(vars_record(night))
    return metadata


def _preview(con: duckdb.DuckDBPyConnection, campaign: Campaign, send_hour: int, log) -> str | None:
    """The first members of the campaign with what became of them, read after the send."""
    try:
        return send_preview(con, campaign.name, campaign.cooldown_days, send_hour)
    except duckdb.Error as error:
        log.warning(f"{campaign.name}: no preview of its members: {error}")
        return None


def _journey_metadata(
    con: duckdb.DuckDBPyConnection, journey: Campaign, day: dt.date, log
) -> dict[str, Any]:
    """A journey's night: entered, exited by reason, finished and still active (each plotted
    night by night), and per step what was due and what became of it."""
    try:
        figures = journey_figures(con, journey, day)
    except duckdb.Error as error:
        log.warning(f"{journey.name}: no journey figures: {error}")
        return {}
    metadata: dict[str, Any] = {
        "entered": figures["entered"],
        "exited": sum(figures["exited"].values()),
        "finished": figures["finished"],
        "still active": figures["still active"],
    }
    for reason, count in figures["exited"].items():
        metadata[f"exited: {reason}"] = count
    rows = [
        (
            step,
            counts["due"],
            counts.get("send", 0),
            counts.get("holdout", 0),
            ", ".join(
                f"{DECISION_WORDS.get(d, d.replace('_', ' '))} {n}"
                for d, n in sorted(counts.items())
                if d not in ("due", "send", "holdout")
            ),
        )
        for step, counts in figures["steps"].items()
    ]
    metadata["steps tonight"] = MetadataValue.md(
        markdown_table(("step", "due", "sent", "held out", "not sent, by reason"), rows)
        if rows
        else "No step was due tonight."
    )
    return metadata


def _require_send_checks(con: duckdb.DuckDBPyConnection, settings: Settings, day: dt.date) -> None:
    """The send checks guard every send, also one materialized on its own."""
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


def _failed_send(campaign: Campaign, day: dt.date, summary: SendSummary, metadata) -> Failure:
    return Failure(
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


def build_send_asset(campaign: Campaign):
    @asset(
        name=campaign.asset_name,
        group_name="sends",
        owners=OWNERS["sends"],
        deps=[
            AssetKey([campaign.cohort]),
            *([AssetKey(["journey_progress"])] if campaign.is_journey else []),
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
        day = business_date(context)
        sender = make_sender(settings, dry_run=nightjar.dry_run)
        night = {**effective_dbt_vars(settings), "as_of_date": day.isoformat()}
        send_hour = campaign.send_hour if campaign.send_hour is not None else night["send_hour"]
        read: dict[str, Any] = {"preview": None, "journey": {}}
        paused = campaign.paused_reason(nightjar.pause)

        def before(con: duckdb.DuckDBPyConnection) -> None:
            problem = deliverability_problem(
                settings, [] if paused else [campaign], project_topics()
            )
            if problem:
                raise Failure(description=f"{campaign.name} was not sent: {problem}.")
            if not nightjar.dry_run:
                _require_send_checks(con, settings, day)

        def after(con: duckdb.DuckDBPyConnection, summary: SendSummary) -> None:
            if summary.skipped_reason:  # a past date's decisions are not its own
                return
            read["preview"] = _preview(con, campaign, send_hour, context.log)
            if campaign.is_journey:
                read["journey"] = _journey_metadata(con, campaign, day, context.log)

        try:
            summary = send_campaign(
                campaign,
                day,
                settings,
                sender,
                context.log,
                before=before,
                after=after,
                paused=paused,
            )
        except (SendLockTimeout, DecisionsNotCurrent) as error:
            raise Failure(description=str(error)) from None
        metadata = marketer_metadata(summary, read["preview"], night)
        metadata.update(read["journey"])
        if summary.skipped_reason:
            context.log.info(f"{campaign.name}: not sending for {day}: {summary.skipped_reason}")
        if not summary.ok:
            raise _failed_send(campaign, day, summary, metadata)
        return MaterializeResult(metadata=metadata)

    return _send
