"""Why a contact got a message or not, in words: `nightjar explain --date D --contact ID`.

Everything here reads: the warehouse is opened read-only, so it also works while a run holds
its lock. Addresses are always masked. Nothing here imports Dagster: the CLI answers without
loading it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from assets.shared.previews import masked
from assets.shared.warehouse import connect
from models.descriptions import described_campaigns
from models.manifest import load_manifest
from models.privacy import mask_emails_in
from models.settings import effective_dbt_vars
from senders.decision_words import DECISION_WORDS, decision_rows, ledger_sql, outcome
from senders.ledger import WENT_OUT_STATUSES


class Unknown(LookupError):
    """The contact or the date is not in the warehouse, or the warehouse cannot be read now;
    the message is one sentence."""


def explain_contact(
    warehouse: Path,
    day: dt.date,
    contact_id: str,
    campaigns: Sequence[Any] = (),
    default_send_hour: int | None = None,
    wait_seconds: float = 10.0,
) -> list[str]:
    """What every campaign decided for `contact_id` on `day`, and why, as lines to print.
    `campaigns`: the dbt project's (models.campaigns.Campaign: cohort rule, cooldown, send
    hour); without them, those send_decisions names. Raises Unknown, in one sentence."""
    if not warehouse.exists():
        raise Unknown(f"There is no warehouse at {warehouse}: no night has run there yet.")
    with _read_only(warehouse, wait_seconds) as con:
        tables = _tables(con)
        published = None
        if ("main", "send_decisions") in tables:
            # a night may decide nothing (no cohort member, no step due): its customer view
            # still says which night `main` holds
            published = con.execute(
                "select coalesce((select max(as_of_date) from main.send_decisions), "
                "(select max(as_of_date) from main.customer_360))"
            ).fetchall()[0][0]
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
        # a journey's entry model lists entries long past too: no step due is no decision
        journey = _is_journey(campaign)
        if row is None and not journey and _in_cohort(con, tables, cohort, contact_id):
            lines.append(f"  {name}: no decision")
            lines.append(
                f"    cohort: in {cohort}, but send_decisions decided nothing for it: the "
                "decisions were built before the campaign was declared"
            )
            continue
        if row is None:
            if journey:
                lines.append(f"  {name}: no step due")
                lines += _journey_lines(con, tables, name, contact_id) or [
                    f"    journey: never entered; {_rule(tables, cohort, campaign)}"
                ]
                continue
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
            f"    cohort: in {cohort} (occasion {row.get('journey_occasion') or row['occasion']})",
            f"    reason: {reason}",
            f"    send_decisions: decision {row['decision']}, variant {row['variant'] or 'none'}, "
            f"send time {_time(row['send_at'])}",
            f"    ledger: {_ledger_line(row)}",
        ]
        if journey:
            lines.insert(len(lines) - 3, f"    step: {row['step']}")
            lines += _journey_lines(con, tables, name, contact_id)
    if len(lines) == 1 + (profile is not None):
        lines.append("  no campaign is declared")
    return lines


def _is_journey(campaign: Any) -> bool:
    return bool(getattr(campaign, "is_journey", False))


def _journey_lines(
    con: duckdb.DuckDBPyConnection, tables: set, journey: str, contact_id: str
) -> list[str]:
    """Where each of the contact's instances of the journey stands (nightjar.journey_instances,
    as the latest night left it)."""
    if ("nightjar", "journey_instances") not in tables:
        return []
    rows = con.execute(
        """
        select occasion, entered_on, status, end_reason, ended_on, last_step, last_step_on,
               next_step, next_due_on, in_control_group
        from nightjar.journey_instances where journey = ? and contact_id = ?
        order by entered_on, occasion
        """,
        [journey, contact_id],
    ).fetchall()
    lines = []
    for occasion, entered, status, reason, ended, last, last_on, following, due, control in rows:
        done = f", last step {last} on {last_on}" if last else ""
        state = {
            "active": f"active{done}, next {following} due {due}",
            "finished": f"finished on {ended}{done}",
            "exited": f"exited on {ended} ({reason}){done}",
        }.get(status, status)
        group = " (control group)" if control else ""
        lines.append(f"    journey: occasion {occasion}, entered {entered}{group}: {state}")
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


# The statuses whose ledger note says what went wrong; the others' says why (held out,
# skipped, withdrawn, baseline), which no reader should take for a fault.
_FAULT_STATUSES = ("in_flight", "failed", "refused", "abandoned")


def _ledger_line(row: Mapping[str, Any]) -> str:
    if row.get("status") is None:
        return "nothing recorded for this occasion"
    note = mask_emails_in(" ".join(str(row.get("error") or "").split()))
    told = "error" if row["status"] in _FAULT_STATUSES else "reason"
    return (
        f"{row['status']}, {row.get('attempts') or 0} attempt(s), business date "
        f"{row['ledger_date']}" + (f", {told}: {note}" if note else ", no error")
    )


# What a ledger status says of a night's decision, when send_decisions no longer holds it.
_STATUS_WORDS = {
    **dict.fromkeys(WENT_OUT_STATUSES, "sent"),
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
        "what the cohort history and the send ledger kept; of the reasons not to message, "
        "the ledger keeps a hold-out's and a skip's alone)",
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
        with ledger as ({ledger_sql(con)})
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
        dbt_vars = effective_dbt_vars(settings)
        send_hour = dbt_vars.get("send_hour")
        campaigns = described_campaigns(load_manifest(), dbt_vars)
    except (OSError, ValueError):  # a campaign's bad block too (CampaignConfigError)
        pass  # no manifest (dbt never parsed here): the campaigns send_decisions names
    return explain_contact(settings.warehouse, day, contact_id, campaigns, send_hour)
