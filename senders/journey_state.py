"""A journey's instances as Nightjar keeps them (nightjar.journey_instances), written before
any of the night's messages leave (docs/contract.md §15): tonight's entries with their
control group drawn once, the exits, and where each instance stands after tonight's
decisions. Which steps went is the ledger's; this row says what a marketer asks (current
step, next step and when, finished or exited and why) and fixes what must not be drawn
again (the entry, the control group, the end)."""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

from models.campaigns import Campaign

# Tonight's decisions that settle the step due (its ledger row is then no longer sendable):
# the others (capped, lower_priority, unmailable...) leave it due, to go the next night it can.
SETTLING_DECISIONS = ("send", "holdout", "too_late", "condition_not_met", "baseline", "refused")
# What each settles as in the ledger, for the journey's skips (senders/dispatch.py).
SKIPS = {
    "too_late": "more than max_late_days overdue",
    "condition_not_met": "its condition was false and it has no else step",
}

_STATE_COLUMNS = {
    "journey": pl.String,
    "contact_id": pl.String,
    "occasion": pl.String,
    "entered_on": pl.Date,
    "entered_at": pl.Datetime("us"),  # UTC, as the session's time zone reads it
    "in_control_group": pl.Boolean,
    "status": pl.String,
    "end_reason": pl.String,
    "ended_on": pl.Date,
    "steps_done": pl.Int32,
    "last_step": pl.String,
    "last_step_on": pl.Date,
    "next_step": pl.String,
    "next_due_on": pl.Date,
}


def record_journey_state(con: duckdb.DuckDBPyConnection, journey: Campaign, day: dt.date) -> int:
    """Write every instance of `journey` in play tonight as it stands after tonight's
    decisions; the number of rows written."""
    rows = con.execute(
        """
        select
            progress.contact_id, progress.occasion, cast(progress.entered_on as date),
            cast(progress.entered_at as timestamp),
            progress.in_control_group, progress.status, progress.end_reason,
            progress.steps_done, progress.last_step, cast(progress.last_step_on as date),
            progress.next_position, cast(progress.due_on as date), progress.step,
            decisions.decision
        from main.journey_progress as progress
        left join main.send_decisions as decisions
            on decisions.campaign = progress.journey
            and decisions.contact_id = progress.contact_id
            and decisions.journey_occasion = progress.occasion
        where progress.journey = $journey
        """,
        {"journey": journey.name},
    ).fetchall()
    sequence = sorted((s for s in journey.steps if s.in_sequence), key=lambda s: s.position)
    states = [_after_tonight(journey.name, row, sequence, day) for row in rows]
    if not states:
        return 0
    frame = pl.DataFrame(states, schema=_STATE_COLUMNS, orient="row")
    con.register("journey_rows", frame)
    try:
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
        con.unregister("journey_rows")
    return len(states)


def _after_tonight(name: str, row: tuple, sequence: list, day: dt.date) -> tuple:
    (contact_id, occasion, entered_on, entered_at, control, status, end_reason, done,
     last_step, last_on, next_position, due_on, step, decision) = row  # fmt: skip
    next_step, next_due = None, None
    if status == "active" and step is not None and decision in SETTLING_DECISIONS:
        done, last_step, last_on = next_position, step, day
        next_position = done + 1 if done < len(sequence) else None
        status = "active" if next_position else "finished"
        if next_position:
            following = sequence[next_position - 1]
            next_step, next_due = following.name, day + dt.timedelta(days=following.wait_days)
    elif status == "active" and next_position:
        next_step, next_due = sequence[next_position - 1].name, due_on
    ended_on = day if status != "active" else None
    return (
        name, contact_id, occasion, entered_on, entered_at, control, status, end_reason,
        ended_on, done, last_step, last_on, next_step, next_due,
    )  # fmt: skip


def journey_figures(con: duckdb.DuckDBPyConnection, journey: Campaign, day: dt.date) -> dict:
    """The night of a journey as a marketer reads it, per step: due, sent, held out and
    each other decision; and for the journey: entered, exited by reason, finished, still
    active (nightjar.journey_instances after tonight)."""
    steps: dict[str, dict[str, int]] = {}
    for step, decision, count in con.execute(
        """
        select step, decision, count(*) from main.send_decisions
        where campaign = $journey and step is not null
        group by step, decision
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
