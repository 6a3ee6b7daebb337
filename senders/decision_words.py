"""send_decisions' decisions in the words a marketer reads, with the reason behind each: what
the contact policy decided, and what the send ledger says became of it since (the message
went, failed, was withdrawn...). Used by the send assets' metadata and previews, the night's
summary and `nightjar explain`. Addresses are always masked; nothing here imports Dagster.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import duckdb

from models.privacy import mask_emails_in
from senders.ledger import WENT_OUT_STATUSES

# send_decisions' decisions as a marketer reads them (metadata labels, previews, explain):
# the reasons not to message first, in the order send_decisions applies them.
DECISION_WORDS = {
    "paused": "paused",
    "too_late": "too late",
    "condition_not_met": "condition not met",
    "deleted": "deleted",
    "invalid_email": "invalid email",
    "opted_out": "opted out",
    "suppressed": "suppressed",
    "unsubscribed_topic": "unsubscribed from the topic",
    "global_control": "global control group",
    "already_sent": "sent before",
    "refused": "refused",
    "baseline": "baseline",
    "cooling_down": "cooldown",
    "lower_priority": "lower priority",
    "capped": "capped",
    "holdout": "held out",
    "send": "to send",
}
_SUPPRESSION_WORDS = {
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed from the group",
    "bounce": "bounced",
    "blocked": "blocked by the receiving server",
    "spam_report": "reported as spam",
    "refused": "refused by SendGrid for good",
    "manual": "suppressed by hand",
}


def ledger_sql(con: duckdb.DuckDBPyConnection) -> str:
    """The send ledger, or an empty one where no state exists yet (a reader before any night
    attaches none)."""
    exists = con.execute(
        "select count(*) from duckdb_tables() "
        "where database_name = 'nightjar' and table_name = 'send_ledger'"
    ).fetchall()[0][0]
    if exists:
        return "select * from nightjar.send_ledger"
    return (
        "select null::varchar as campaign, null::varchar as contact_id, null::varchar as occasion,"
        " null::date as business_date, null::varchar as status, null::integer as attempts,"
        " null::varchar as error where false"
    )


# The campaigns due the same day instead of a lower-priority one, by priority.
_DUE_INSTEAD = """
            (
                select string_agg(other.campaign, ', ' order by other.priority desc, other.campaign)
                from main.send_decisions as other
                where
                    other.contact_id = d.contact_id
                    and other.campaign <> d.campaign
                    and other.decision in ('send', 'holdout')
                    and (
                        other.priority > d.priority
                        or (other.priority = d.priority and other.campaign < d.campaign)
                    )
            ) as due_instead"""

# The last message of the campaign to the contact for another occasion: behind a cooldown.
_LAST_MESSAGE_ON = """
            (
                select max(earlier.business_date) from ledger as earlier
                where
                    earlier.campaign = d.campaign
                    and earlier.contact_id = d.contact_id
                    and earlier.occasion <> d.occasion
                    and earlier.status in ('in_flight', 'accepted', 'abandoned', 'held_out')
            ) as last_message_on"""


def decision_rows(
    con: duckdb.DuckDBPyConnection,
    campaign: str | None = None,
    contact_id: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """send_decisions' rows (of one campaign, one contact, or both), by contact id, each with
    what explains it: the ledger's status now, the contact's masked-to-be address and time zone,
    the suppression behind 'suppressed', the campaigns due instead of a lower-priority one and
    the last message of the campaign behind a cooldown."""
    params = {"campaign": campaign, "contact": contact_id, "limit": limit or 2**62}
    relation = con.execute(_decision_rows_sql(ledger_sql(con)), params)
    columns = [c[0] for c in relation.description]
    return [dict(zip(columns, row, strict=True)) for row in relation.fetchall()]


def _decision_rows_sql(ledger: str) -> str:
    """decision_rows' query over `ledger` (ledger_sql), taking $campaign, $contact, $limit."""
    return f"""
        with decisions as (
            select * from main.send_decisions
            where coalesce(campaign = $campaign, true) and coalesce(contact_id = $contact, true)
            order by contact_id, campaign
            limit $limit
        ),
        -- only the rows of the contacts shown: a preview of 20 reads no whole table
        ledger as (
            select * from ({ledger}) as ledger
            where ledger.contact_id in (select decisions.contact_id from decisions)
        ),
        audience as (
            select * from main.audience
            where audience.contact_id in (select decisions.contact_id from decisions)
        )
        select
            d.campaign, d.cohort, d.contact_id, d.occasion, d.step, d.journey_occasion,
            d.decision, d.topic, d.variant, d.send_at,
            d.priority, d.messages_today, d.messages_7d,
            audience.email, audience.timezone,
            strftime(timezone(audience.timezone, d.send_at), '%Y-%m-%d %H:%M') as local_send_at,
            hour(timezone(audience.timezone, d.send_at)) as local_hour,
            ledger.status, ledger.attempts, ledger.error, ledger.business_date as ledger_date,
            suppressed.reason as suppression_reason,
            suppressed.suppressed_at::date as suppressed_on,{_DUE_INSTEAD},{_LAST_MESSAGE_ON}
        from decisions as d
        left join audience on d.contact_id = audience.contact_id
        left join ledger
            on
                d.campaign = ledger.campaign
                and d.contact_id = ledger.contact_id
                and d.occasion = ledger.occasion
        left join main.suppression_list as suppressed
            on audience.email = suppressed.email and suppressed.scope = 'all'
        order by d.contact_id, d.campaign
    """


def outcome(
    row: Mapping[str, Any], cooldown_days: int | None = None, send_hour: int | None = None
) -> tuple[str, str]:
    """(the decision in words, its reason) for one of decision_rows: what send_decisions
    decided, and what became of it since (the ledger's status now). `cooldown_days` and
    `send_hour`, the campaign's, make the reason more precise when known."""
    decision, status = row["decision"], row.get("status")
    if decision == "send":
        return _sent(row, status, send_hour)
    if decision == "holdout" and status == "baseline":
        decision = "baseline"  # the baseline night served the control group too
    reason = {
        "paused": "the program is paused (enabled: false in its block, or nightjar run "
        "--pause): nothing is sent or recorded, the member stays due",
        "unsubscribed_topic": "the address unsubscribed from this program's topic"
        + (f" ({row['topic']})" if row.get("topic") else "")
        + "; other topics may still mail it",
        "global_control": "in the global control group (global_control_share, a stable draw): "
        "no program mails it, so that the whole program can be measured against it",
        "too_late": "the journey's step was due more than its max_late_days before this "
        "night (a night missed): skipped, the next step follows",
        "condition_not_met": "the step's condition (and any else step's) was false: skipped",
        "deleted": "the contact was erased: never messaged again",
        "invalid_email": "the address on record is not a valid email address",
        "opted_out": "the contact has not opted in to email",
        "suppressed": _suppressed(row),
        "already_sent": "this occasion's message already went"
        + (f" (business date {row['ledger_date']})" if row.get("ledger_date") else ""),
        "refused": "SendGrid refused this address for good for this occasion",
        "baseline": "this occasion was current on the baseline night: served before Nightjar, "
        "never messaged",
        "cooling_down": _cooldown(row, cooldown_days),
        "lower_priority": "a higher-priority campaign is due the same day"
        + (f" ({row['due_instead']})" if row.get("due_instead") else ""),
        "capped": f"the frequency cap is reached: {row.get('messages_today') or 0} message(s) "
        f"already that day, {row.get('messages_7d') or 0} in the 7 days to it",
        "holdout": "in the campaign's control group (a stable draw): not messaged, so that "
        "the results can measure the campaign against it",
    }.get(decision, decision)
    return DECISION_WORDS.get(decision, decision), reason


def _sent(row: Mapping[str, Any], status: str | None, send_hour: int | None) -> tuple[str, str]:
    error = mask_emails_in(" ".join(str(row.get("error") or "").split()))
    if status in WENT_OUT_STATUSES:
        waiting = " (SendGrid's answer is still awaited)" if status == "in_flight" else ""
        return "sent", f"due and mailable{waiting}; {_schedule(row, send_hour)}"
    if status == "failed":
        return "failed", (
            f"SendGrid did not take it{f' ({error})' if error else ''}; the next run sends it again"
        )
    if status == "refused":
        return "refused", f"SendGrid refused it for good{f' ({error})' if error else ''}"
    if status == "withdrawn":
        return "withdrawn", "the address was suppressed after the decisions were made"
    if status == "baseline":
        return "baseline", "recorded as served on the baseline night, never messaged"
    if status == "planned":
        return "not sent yet", "planned, but the send stopped before it; the next run sends it"
    return "to send", f"due and mailable, not sent (yet); {_schedule(row, send_hour)}"


def _schedule(row: Mapping[str, Any], send_hour: int | None) -> str:
    if row.get("send_at") is None:
        return "no send time"
    utc = row["send_at"].astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
    local = f"{row['local_send_at']} {row['timezone']}" if row.get("local_send_at") else ""
    when = f"{local} ({utc} UTC)" if local else f"{utc} UTC"
    moved = (
        f", moved out of the quiet hours (the campaign's hour is {send_hour}:00)"
        if send_hour is not None and row.get("local_hour") not in (None, send_hour)
        else ""
    )
    variant = f", variant {row['variant']}" if row.get("variant") else ""
    return f"scheduled for {when}{moved}{variant}"


def _suppressed(row: Mapping[str, Any]) -> str:
    why = _SUPPRESSION_WORDS.get(row.get("suppression_reason") or "")
    since = f" on {row['suppressed_on']}" if row.get("suppressed_on") else ""
    return f"the address is suppressed ({why}{since})" if why else "the address is suppressed"


def _cooldown(row: Mapping[str, Any], days: int | None) -> str:
    within = f"its {days}-day cooldown" if days else "its cooldown"
    if row.get("last_message_on"):
        return (
            f"a message of this campaign went to the contact on {row['last_message_on']}, "
            f"within {within}: this occasion is passed over"
        )
    return f"within the campaign's cooldown ({within}): this occasion is passed over"
