"""The night's cohort as a send reads it: whether the date may send at all, whether
send_decisions is tonight's, each member's decision beside the ledger's status now, and who
was in the cohort (docs/contract.md §3, §5). Handed a connection; nothing here sends."""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

from models.campaigns import Campaign
from models.landing import list_folders
from models.settings import Settings
from senders.ledger import SENDABLE_STATUSES, WENT_OUT_STATUSES


class DecisionsNotCurrent(Exception):
    """send_decisions is not tonight's, too old, or from other campaigns: nothing may go."""


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
    later = [
        f.business_date
        for f in list_folders(settings.landing)
        if f.business_date > day and f.complete  # the earlier folders' markers unread
    ]
    if later:
        return f"a later business date ({max(later)}) has landed; only the latest date sends"
    return None


def check_decisions_are_current(
    con: duckdb.DuckDBPyConnection, campaign: Campaign, day: dt.date, settings: Settings
) -> None:
    """send_decisions must be today's, recent and cover the whole cohort, or nothing goes:
    DecisionsNotCurrent says why."""
    built_for, decided_at = con.execute(
        "select max(as_of_date), max(decided_at) from main.send_decisions"
    ).fetchall()[0]
    if built_for is not None and built_for != day:
        raise DecisionsNotCurrent(
            f"send_decisions was built for {built_for}, not {day}: materialize "
            f"the warehouse for {day} before sending {campaign.name}."
        )
    age = dt.datetime.now(dt.UTC) - decided_at if decided_at else None
    if age is not None and age > dt.timedelta(minutes=settings.max_decision_age_minutes):
        # Unsubscribes, send times and caps have moved on since: decide again, then send.
        raise DecisionsNotCurrent(
            f"The send decisions for {day} were made {_duration(age)} ago (at "
            f"{decided_at:%Y-%m-%d %H:%M:%S} UTC), more than "
            f"NIGHTJAR_MAX_DECISION_AGE_MINUTES={settings.max_decision_age_minutes:g}: run "
            f"the date again (nightjar run --date {day}) to decide again and send."
        )
    members, decided = con.execute(
        f"""
        select
            (select count(*) from {members_relation(campaign)}),
            (select count(*) from main.send_decisions where campaign = $campaign)
        """,
        {"campaign": campaign.name},
    ).fetchall()[0]
    if members != decided:
        raise DecisionsNotCurrent(
            f"{campaign.cohort} has {members} member(s) due but send_decisions decided "
            f"{decided} for {campaign.name}: the decisions were built from another version of "
            "the campaigns. Materialize the warehouse again (nightjar run) before sending."
        )


def _duration(age: dt.timedelta) -> str:
    seconds = age.total_seconds()
    return f"{seconds:.0f} seconds" if seconds < 120 else f"{seconds / 60:.0f} minutes"


# The reason send_decisions gives for each ledger status that keeps a message from going.
LEDGER_REASONS = {
    "refused": "refused",
    "held_out": "holdout",
    "skipped": "cooling_down",
    "withdrawn": "suppressed",
    "baseline": "baseline",
}


def members_relation(campaign: Campaign) -> str:
    """The rows send_decisions decided for `campaign`, as SQL: its cohort, or for a journey
    the instances with a step due tonight (journey_progress)."""
    if campaign.is_journey:
        return (
            "(select * from main.journey_progress "
            f"where journey = '{campaign.name}' and step is not null)"
        )
    return f'main."{campaign.cohort}"'


def cohort_decisions(con: duckdb.DuckDBPyConnection, campaign: Campaign) -> pl.DataFrame:
    """The cohort with each member's decision from send_decisions, and the ledger's status
    now: a message another run sent since the decisions were made never goes twice."""
    same_instance = (
        "and decisions.journey_occasion = cohort.occasion" if campaign.is_journey else ""
    )
    frame = con.sql(
        f"""
        select
            cohort.*,
            decisions.occasion as nightjar_occasion,
            decisions.step as nightjar_step,
            decisions.journey_occasion as nightjar_journey_occasion,
            decisions.decision as nightjar_decision,
            decisions.variant as nightjar_variant,
            decisions.send_at as nightjar_send_at,
            decisions.deliver_by as nightjar_deliver_by,
            ledger.status as nightjar_ledger_status,
            decisions.ledger_status as nightjar_decided_status
        from main.send_decisions as decisions
        inner join {members_relation(campaign)} as cohort
            on decisions.contact_id = cohort.contact_id {same_instance}
        left join nightjar.send_ledger as ledger
            on ledger.campaign = decisions.campaign
            and ledger.contact_id = decisions.contact_id
            and ledger.occasion = decisions.occasion
        where decisions.campaign = $campaign
        order by decisions.contact_id
        """,
        params={"campaign": campaign.name},
    ).pl()
    return frame.with_columns(nightjar_decision=_decision_now())


def _decision_now() -> pl.Expr:
    """send_decisions' decision, as the ledger's status now makes it."""
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
    # (assets/sends/first_night.py): the control group is served by it too, never held out.
    baselined = (pl.col("nightjar_decision") == "holdout") & (
        pl.col("nightjar_ledger_status") == "baseline"
    )
    return (
        pl.when((pl.col("nightjar_decision") == "send") & gone.is_not_null())
        .then(gone)
        .when(baselined)
        .then(pl.lit("baseline"))
        .when(found_unsent)
        .then(pl.lit("send"))
        .otherwise(pl.col("nightjar_decision"))
    )


def record_membership(con: duckdb.DuckDBPyConnection, campaign: Campaign, day: dt.date) -> None:
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
