"""A journey's instances as Nightjar keeps them (nightjar.journey_instances), written before
any of the night's messages leave (docs/contract.md §15): tonight's entries with their
control group drawn once, the exits, and where each instance stands after tonight's
decisions. Which steps went is the ledger's; this row says what a marketer asks (current
step, next step and when, finished or exited and why) and fixes what must not be drawn
again (the entry, the control group, the end)."""

from __future__ import annotations

import datetime as dt

import duckdb

from models.campaigns import Campaign

# Tonight's decisions that settle the step due (its ledger row is then no longer sendable):
# the others (capped, lower_priority, unmailable...) leave it due, to go the next night it can.
SETTLING_DECISIONS = (
    "send", "holdout", "global_control", "too_late", "condition_not_met", "baseline", "refused",
)  # fmt: skip
# What each settles as in the ledger, for the journey's skips (senders/dispatch.py).
SKIPS = {
    "too_late": "more than max_late_days overdue",
    "condition_not_met": "its condition was false and it has no else step",
}


def record_journey_state(con: duckdb.DuckDBPyConnection, journey: Campaign, day: dt.date) -> int:
    """Write every instance of `journey` in play tonight as it stands after tonight's
    decisions, where that differs from what the state holds (a new entry, an exit, a step
    settled); the number of rows written. In SQL: a night at a million contacts holds
    hundreds of thousands of instances, most of them only waiting."""
    sequence = sorted((s for s in journey.steps if s.in_sequence), key=lambda s: s.position)
    parameters = {
        "journey": journey.name,
        "day": day,
        "settling": list(SETTLING_DECISIONS),
        "names": [s.name for s in sequence],
        "waits": [s.wait_days for s in sequence],
        "positions": [s.position for s in sequence],
    }
    tonight = """
        with sequence as (
            select unnest($positions) as position, unnest($names) as name,
                unnest($waits) as wait_days
        ),
        decided as (
            select
                progress.*,
                decisions.decision,
                progress.status = 'active' and progress.step is not null
                    and decisions.decision in (select unnest($settling)) as settles
            from main.journey_progress as progress
            left join main.send_decisions as decisions
                on decisions.campaign = progress.journey
                and decisions.contact_id = progress.contact_id
                and decisions.journey_occasion = progress.occasion
            where progress.journey = $journey
        ),
        after as (
            -- a settled step moves the instance on; the next step is due its wait after
            -- tonight, or the instance is finished
            select
                decided.*,
                case when settles then next_position else steps_done end as done,
                case when settles then step else last_step end as done_step,
                case when settles then $day else last_step_on end as done_on,
                case when settles then next_position + 1 else next_position end as upcoming
            from decided
        )
        select
            after.journey, after.contact_id, after.occasion,
            cast(after.entered_on as date) as entered_on,
            cast(after.entered_at as timestamp) as entered_at,
            after.in_control_group,
            case
                when after.status = 'active' and following.position is null then 'finished'
                else after.status
            end as status,
            after.end_reason,
            case
                when after.status <> 'active' or following.position is null then $day
            end as ended_on,
            cast(after.done as integer) as steps_done,
            after.done_step as last_step,
            cast(after.done_on as date) as last_step_on,
            case when after.status = 'active' then following.name end as next_step,
            case
                when after.status = 'active' and after.settles
                    then cast($day + following.wait_days as date)
                when after.status = 'active' and following.position is not null
                    then cast(after.due_on as date)
            end as next_due_on
        from after
        left join sequence as following on following.position = after.upcoming
    """
    changed = f"""
        select tonight.*
        from ({tonight}) as tonight
        left join nightjar.journey_instances as known
            on known.journey = tonight.journey
            and known.contact_id = tonight.contact_id
            and known.occasion = tonight.occasion
        where known.journey is null
            or known.status is distinct from tonight.status
            or known.steps_done is distinct from tonight.steps_done
            or known.last_step_on is distinct from tonight.last_step_on
            or known.next_step is distinct from tonight.next_step
            or known.next_due_on is distinct from tonight.next_due_on
    """
    con.execute(f"create or replace temp table journey_rows as {changed}", parameters)
    try:
        written = con.execute("select count(*) from journey_rows").fetchall()[0][0]
        con.execute(
            """
            insert into nightjar.journey_instances by name
            select *, now() as updated_at from journey_rows
            on conflict (journey, contact_id, occasion) do update set
                status = excluded.status, end_reason = excluded.end_reason,
                ended_on = excluded.ended_on, steps_done = excluded.steps_done,
                last_step = excluded.last_step, last_step_on = excluded.last_step_on,
                next_step = excluded.next_step, next_due_on = excluded.next_due_on,
                updated_at = excluded.updated_at
            where journey_instances.status = 'active'
            """
        )
    finally:
        con.execute("drop table if exists journey_rows")
    return written


def journey_figures(con: duckdb.DuckDBPyConnection, journey: Campaign, day: dt.date) -> dict:
    """The night of a journey as a marketer reads it, per step: due, sent, held out and
    each other decision; and for the journey: entered, exited by reason, finished, still
    active (nightjar.journey_instances after tonight)."""
    steps: dict[str, dict[str, int]] = {}
    for step, decision, count in con.execute(
        """
        -- a baseline night's decisions went nowhere: the ledger says so
        select
            decisions.step,
            case when ledger.status = 'baseline' then 'baseline' else decisions.decision end,
            count(*)
        from main.send_decisions as decisions
        left join nightjar.send_ledger as ledger
            on ledger.campaign = decisions.campaign
            and ledger.contact_id = decisions.contact_id
            and ledger.occasion = decisions.occasion
        where decisions.campaign = $journey and decisions.step is not null
        group by all
        """,
        {"journey": journey.name},
    ).fetchall():
        figures = steps.setdefault(step, {"due": 0})
        figures["due"] += count
        figures[decision] = count
    instances = con.execute(
        """
        select
            (select count(*) from main.journey_progress
             where journey = $journey and is_new_entry),
            count(*) filter (where status = 'active'),
            count(*) filter (where status = 'finished' and ended_on = $day)
        from nightjar.journey_instances where journey = $journey
        """,
        {"journey": journey.name, "day": day},
    ).fetchall()[0]
    exited = dict(
        con.execute(
            """
            select end_reason, count(*) from nightjar.journey_instances
            where journey = $journey and status = 'exited' and ended_on = $day
            group by end_reason order by end_reason
            """,
            {"journey": journey.name, "day": day},
        ).fetchall()
    )
    order = {s.name: (s.position, not s.in_sequence) for s in journey.steps}
    return {
        "entered": instances[0],
        "steps": {name: steps[name] for name in sorted(steps, key=lambda n: order.get(n, (99,)))},
        "exited": exited,
        "finished": instances[2],
        "still active": instances[1],
    }
