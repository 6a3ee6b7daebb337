"""Why a contact got a message or not, in words: `nightjar explain --date D --contact ID`, and
the masked previews of the cohort and send assets (the same words for the same decisions).

A decision is send_decisions' (the contact policy), what became of it the send ledger's (the
message went, failed, was withdrawn...). Addresses are always masked. Everything here reads:
`nightjar explain` opens the warehouse read-only, so it also works while a run holds its lock.

Nothing here imports Dagster: the CLI answers without loading it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from senders.base import mask_email, mask_emails_in

PREVIEW_ROWS = 20  # members a preview lists, by contact id
WENT_OUT = ("in_flight", "accepted", "abandoned")  # senders/ledger.py's WENT_OUT_STATUSES

# send_decisions' decisions as a marketer reads them (metadata labels, previews, explain):
# the reasons not to message first, in the order send_decisions applies them.
DECISION_WORDS = {
    "deleted": "deleted",
    "invalid_email": "invalid email",
    "opted_out": "opted out",
    "suppressed": "suppressed",
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


class Unknown(LookupError):
    """The contact or the date is not in the warehouse, or the warehouse cannot be read now;
    the message is one sentence."""


# ---------------------------------------------------------------------------------------------
# Decisions in words


def _ledger(con: duckdb.DuckDBPyConnection) -> str:
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
    sql = f"""
        with ledger as ({_ledger(con)}),
        decisions as (
            select * from main.send_decisions
            where coalesce(campaign = $campaign, true) and coalesce(contact_id = $contact, true)
            order by contact_id, campaign
            limit $limit
        )
        select
            d.campaign, d.cohort, d.contact_id, d.occasion, d.decision, d.variant, d.send_at,
            d.priority, d.messages_today, d.messages_7d,
            audience.email, audience.timezone,
            strftime(timezone(audience.timezone, d.send_at), '%Y-%m-%d %H:%M') as local_send_at,
            hour(timezone(audience.timezone, d.send_at)) as local_hour,
            ledger.status, ledger.attempts, ledger.error, ledger.business_date as ledger_date,
            suppressed.reason as suppression_reason,
            suppressed.suppressed_at::date as suppressed_on,
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
            ) as due_instead,
            (
                select max(earlier.business_date) from ledger as earlier
                where
                    earlier.campaign = d.campaign
                    and earlier.contact_id = d.contact_id
                    and earlier.occasion <> d.occasion
                    and earlier.status in ('in_flight', 'accepted', 'abandoned', 'held_out')
            ) as last_message_on
        from decisions as d
        left join main.audience as audience on d.contact_id = audience.contact_id
        left join ledger
            on
                d.campaign = ledger.campaign
                and d.contact_id = ledger.contact_id
                and d.occasion = ledger.occasion
        left join main.suppression_list as suppressed on audience.email = suppressed.email
        order by d.contact_id, d.campaign
    """
    params = {"campaign": campaign, "contact": contact_id, "limit": limit or 2**62}
    relation = con.execute(sql, params)
    columns = [c[0] for c in relation.description]
    return [dict(zip(columns, row, strict=True)) for row in relation.fetchall()]


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
    if status in WENT_OUT:
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


# ---------------------------------------------------------------------------------------------
# Markdown previews


_MARKDOWN = re.compile(r"([\\`*_\[\]<>|&~])")


def cell(value: Any) -> str:
    """A value as a markdown table cell: one line, any address masked, nothing that could
    become markup (a contact id is data, never code)."""
    if value is None:
        return "—"
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = mask_emails_in(" ".join(str(value).split()))
    return _MARKDOWN.sub(r"\\\1", text) or "—"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = [
        "| " + " | ".join(cell(h) for h in headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows),
    ]
    return "\n".join(lines)


def masked(email: str | None) -> str | None:
    return mask_email(email) if email else None


def preview_heading(total: int, shown: int, what: str = "member") -> str:
    if not total:
        return f"No {what}s."
    if shown < total:
        return f"{total:,} {what}(s): the first {shown} by contact id, addresses masked."
    return f"{total:,} {what}(s), by contact id, addresses masked."


def send_preview(
    con: duckdb.DuckDBPyConnection,
    campaign: str,
    cooldown_days: int | None = None,
    send_hour: int | None = None,
) -> str:
    """The first PREVIEW_ROWS members of a campaign by contact id: masked address, what was
    decided and what became of it, and why."""
    total = con.execute(
        "select count(*) from main.send_decisions where campaign = ?", [campaign]
    ).fetchall()[0][0]
    rows = decision_rows(con, campaign=campaign, limit=PREVIEW_ROWS)
    table = [
        (r["contact_id"], masked(r["email"]), *outcome(r, cooldown_days, send_hour)) for r in rows
    ]
    heading = preview_heading(total, len(table))
    if not table:
        return heading
    return heading + "\n\n" + markdown_table(("contact", "email", "decision", "reason"), table)


# ---------------------------------------------------------------------------------------------
# nightjar explain


def explain_contact(
    warehouse: Path,
    day: dt.date,
    contact_id: str,
    campaigns: Sequence[Any] = (),
    default_send_hour: int | None = None,
    wait_seconds: float = 10.0,
) -> list[str]:
    """What every campaign decided for `contact_id` on `day`, and why, as lines to print.
    `campaigns`: the dbt project's (assets.campaigns.Campaign: cohort rule, cooldown, send
    hour); without them, those send_decisions names. Raises Unknown, in one sentence."""
    if not warehouse.exists():
        raise Unknown(f"There is no warehouse at {warehouse}: no night has run there yet.")
    with _read_only(warehouse, wait_seconds) as con:
        tables = _tables(con)
        published = None
        if ("main", "send_decisions") in tables:
            published = con.execute("select max(as_of_date) from main.send_decisions").fetchall()
            published = published[0][0]
        if not _is_known(con, tables, contact_id):
            raise Unknown(
                f"No contact {_id(contact_id)!r} in the warehouse: no loaded CRM extract has it "
                "and no night decided anything for it (contact ids compare exactly)."
            )
        if published == day:
            return _explain_night(con, tables, day, contact_id, campaigns, default_send_hour)
        if day in _recorded_dates(con, tables):
            return _explain_history(con, tables, day, contact_id, campaigns, published)
    latest = f" (its latest night is {published})" if published else ""
    raise Unknown(f"No night ran for {day} in this warehouse{latest}.")


@contextlib.contextmanager
def _read_only(warehouse: Path, wait_seconds: float) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection. A step of a run writing the file at this moment holds DuckDB's
    lock for seconds: that is waited for, briefly. Nightjar's run lock is not DuckDB's."""
    from pipelines.warehouse import connect

    deadline = time.monotonic() + wait_seconds
    while True:
        opened = contextlib.ExitStack()
        try:
            con = opened.enter_context(connect(warehouse, read_only=True))
            break
        except duckdb.IOException as error:
            opened.close()
            if "lock" not in str(error).lower():
                raise
            if time.monotonic() >= deadline:
                raise Unknown(
                    f"{warehouse} is being written by another process right now (a step of a "
                    "run, or a shell holding it open): try again in a moment."
                ) from None
            time.sleep(0.2)
    with opened:
        yield con


def _tables(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    """(main or nightjar, table) of the published tables and the state's."""
    rows = con.execute(
        "select database_name, table_name from duckdb_tables() where schema_name = 'main'"
    ).fetchall()
    return {("nightjar" if db == "nightjar" else "main", table) for db, table in rows}


def _is_known(con: duckdb.DuckDBPyConnection, tables: set, contact_id: str) -> bool:
    """In the customer view, the state, or a loaded CRM extract."""
    sources = [
        f"{schema}.{table}"
        for schema, table in (
            ("main", "audience"),
            ("nightjar", "send_ledger"),
            ("nightjar", "cohort_membership"),
        )
        if (schema, table) in tables
    ]
    if con.execute(
        "select count(*) from duckdb_tables() where schema_name = 'raw' "
        "and table_name = 'crm_contacts'"
    ).fetchall()[0][0]:
        sources.append("raw.crm_contacts")
    return any(
        con.execute(f"select 1 from {source} where contact_id = ? limit 1", [contact_id]).fetchall()
        for source in sources
    )


def _recorded_dates(con: duckdb.DuckDBPyConnection, tables: set) -> set[dt.date]:
    parts = [
        f"select business_date from nightjar.{table}"
        for table in ("cohort_snapshots", "send_ledger")
        if ("nightjar", table) in tables
    ]
    if not parts:
        return set()
    return {row[0] for row in con.execute(" union ".join(parts)).fetchall()}


def _heading(
    con: duckdb.DuckDBPyConnection, tables: set, day: dt.date, contact_id: str
) -> tuple[str, dict[str, Any] | None]:
    """The contact's line, with its address masked, and its row of the customer view now."""
    if ("main", "audience") not in tables:
        return f"Contact {_id(contact_id)} on {day}", None
    relation = con.execute("select * from main.audience where contact_id = ?", [contact_id])
    found = relation.fetchone()
    if found is None:
        return f"Contact {_id(contact_id)} on {day} (not in the customer view)", None
    profile = dict(zip([c[0] for c in relation.description], found, strict=True))
    address = masked(profile.get("email")) or "no address"
    return f"Contact {_id(contact_id)} ({address}) on {day}", profile


def _id(contact_id: str) -> str:
    """A contact id as printed: an exporter that uses addresses as ids gets them masked."""
    return mask_emails_in(contact_id)


def _facts(profile: Mapping[str, Any], day: dt.date) -> str:
    """What the cohort rules read of the contact, to hold a rule against."""
    if profile.get("is_erased"):
        return "erased: no personal data is kept"
    reason = profile.get("unmailable_reason")
    mailable = "mailable" if profile.get("is_mailable") else f"not mailable ({_word(reason)})"
    last = profile.get("last_purchase_date")
    bought = (
        f"last completed purchase {last} ({profile.get('days_since_last_purchase')} days "
        f"before {day})"
        if last
        else "no completed purchase"
    )
    spend = profile.get("spend_730d")
    spent = f", spent {spend:,.2f} in the last 730 days" if spend is not None else ""
    birthday = "on record" if profile.get("birth_date") else "not on record"
    return f"{mailable}; {bought}{spent}; birth date {birthday}"


def _word(decision: str | None) -> str:
    return DECISION_WORDS.get(decision or "", decision or "unknown")


def _explain_night(
    con: duckdb.DuckDBPyConnection,
    tables: set,
    day: dt.date,
    contact_id: str,
    campaigns: Sequence[Any],
    default_send_hour: int | None,
) -> list[str]:
    """The night send_decisions holds: membership, decision and its reason, the ledger."""
    heading, profile = _heading(con, tables, day, contact_id)
    lines = [heading]
    if profile is not None:
        lines.append(f"  customer view: {_facts(profile, day)}")
    rows = {r["campaign"]: r for r in decision_rows(con, contact_id=contact_id)}
    by_name = {c.name: c for c in campaigns}
    for name in sorted(set(by_name) | set(rows)):
        campaign, row = by_name.get(name), rows.get(name)
        cohort = row["cohort"] if row else campaign.cohort
        if row is None and _in_cohort(con, tables, cohort, contact_id):
            lines.append(f"  {name}: no decision")
            lines.append(
                f"    cohort: in {cohort}, but send_decisions decided nothing for it: the "
                "decisions were built before the campaign was declared"
            )
            continue
        if row is None:
            lines.append(f"  {name}: not in the cohort")
            lines.append(f"    cohort: not in {cohort}; {_rule(tables, cohort, campaign)}")
            continue
        send_hour = default_send_hour
        if campaign is not None and campaign.send_hour is not None:
            send_hour = campaign.send_hour
        cooldown = campaign.cooldown_days if campaign is not None else None
        word, reason = outcome(row, cooldown, send_hour)
        lines += [
            f"  {name}: {word}",
            f"    cohort: in {cohort} (occasion {row['occasion']})",
            f"    reason: {reason}",
            f"    send_decisions: decision {row['decision']}, variant {row['variant'] or 'none'}, "
            f"send time {_time(row['send_at'])}",
            f"    ledger: {_ledger_line(row)}",
        ]
    if len(lines) == 1 + (profile is not None):
        lines.append("  no campaign is declared")
    return lines


def _in_cohort(con: duckdb.DuckDBPyConnection, tables: set, cohort: str, contact_id: str) -> bool:
    if ("main", cohort) not in tables:
        return False
    found = con.execute(
        f'select 1 from main."{cohort}" where contact_id = ? limit 1', [contact_id]
    ).fetchall()
    return bool(found)


def _rule(tables: set, cohort: str, campaign: Any) -> str:
    if ("main", cohort) not in tables:
        return "the cohort is not built yet"
    rule = " ".join(str(getattr(campaign, "cohort_description", "") or "").split())
    return f"its rule: {rule}" if rule else "its rule does not select the contact"


def _time(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "none"


def _ledger_line(row: Mapping[str, Any]) -> str:
    if row.get("status") is None:
        return "nothing recorded for this occasion"
    error = mask_emails_in(" ".join(str(row.get("error") or "").split()))
    return (
        f"{row['status']}, {row.get('attempts') or 0} attempt(s), business date "
        f"{row['ledger_date']}" + (f", error: {error}" if error else ", no error")
    )


# What a ledger status says of a night's decision, when send_decisions no longer holds it.
_STATUS_WORDS = {
    **dict.fromkeys(WENT_OUT, "sent"),
    "held_out": "held out",
    "skipped": "cooldown",
    "planned": "not sent yet",
}


def _explain_history(
    con: duckdb.DuckDBPyConnection,
    tables: set,
    day: dt.date,
    contact_id: str,
    campaigns: Sequence[Any],
    published: dt.date | None,
) -> list[str]:
    """A night whose decisions send_decisions no longer holds: what the cohort history and the
    send ledger recorded of it."""
    heading, _ = _heading(con, tables, day, contact_id)
    lines = [
        heading,
        f"  (send_decisions holds the decisions of {published or 'no night'} now: for {day}, "
        "what the cohort history and the send ledger kept; a reason not to message is not kept)",
    ]
    members = dict(
        con.execute(
            "select cohort, entered_on from nightjar.cohort_membership "
            "where business_date = ? and contact_id = ?",
            [day, contact_id],
        ).fetchall()
        if ("nightjar", "cohort_membership") in tables
        else []
    )
    relation = con.execute(
        f"""
        with ledger as ({_ledger(con)})
        select campaign, occasion, status, attempts, error, business_date as ledger_date,
            variant, send_at
        from ledger where business_date = ? and contact_id = ?
        """,
        [day, contact_id],
    )
    columns = [c[0] for c in relation.description]
    ledger = {r[0]: dict(zip(columns, r, strict=True)) for r in relation.fetchall()}
    by_name = {c.name: c for c in campaigns}
    for name in sorted(set(by_name) | set(ledger)):
        campaign, row = by_name.get(name), ledger.get(name)
        member = campaign is not None and campaign.cohort in members
        if row is not None:
            word = _STATUS_WORDS.get(row["status"], row["status"])
        else:
            word = "not messaged" if member or campaign is None else "not in the cohort"
        lines.append(f"  {name}: {word}")
        if campaign is not None:
            lines.append(
                f"    cohort: in {campaign.cohort} (entered {members[campaign.cohort]})"
                if member
                else f"    cohort: not in {campaign.cohort} that night"
            )
        if row is not None:
            lines.append(
                f"    occasion {row['occasion']}, variant {row['variant'] or 'none'}, send time "
                f"{_time(row['send_at'])}"
            )
        lines.append(f"    ledger: {_ledger_line(row) if row else 'nothing recorded that night'}")
    return lines


def explain(settings: Any, day: dt.date, contact_id: str) -> list[str]:
    """`nightjar explain`: explain_contact with the dbt project's campaigns, their cohort rules
    stated with the vars this installation applies. Raises Unknown."""
    campaigns: list[Any] = []
    send_hour = None
    try:
        from assets.campaigns import campaigns_from_manifest
        from pipelines.dbt_setup import load_manifest
        from pipelines.settings import effective_dbt_vars

        dbt_vars = effective_dbt_vars(settings)
        send_hour = dbt_vars.get("send_hour")
        campaigns = campaigns_from_manifest(load_manifest(), dbt_vars)
    except (OSError, ValueError):  # a campaign's bad block too (CampaignConfigError)
        pass  # no manifest (dbt never parsed here): the campaigns send_decisions names
    return explain_contact(settings.warehouse, day, contact_id, campaigns, send_hour)
