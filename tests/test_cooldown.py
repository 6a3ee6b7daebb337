"""A campaign's cool-down: an occasion due within it passes without a message, for good."""

from __future__ import annotations

import datetime as dt

from assets.campaigns import Campaign
from assets.sends import send_campaign
from pipelines.settings import load_settings
from pipelines.warehouse import connect, ensure_schema
from senders.outbox import OutboxSender

LOYALTY = Campaign(
    name="welcome",
    cohort="cohort_welcome",
    template_id="d-1",
    subject="Welcome",
    from_email="hello@shop.example.com",
    occasion_column="entered_on",
    cooldown_days=90,
)


def night(workspace, day: str, entered_on: str | None):
    with connect(workspace.warehouse) as con:
        ensure_schema(con)
        con.execute(
            """
            create or replace table main.cohort_welcome as
            select 'vip' as contact_id, 'vip@example.com' as email, 'Vi' as first_name,
                   'P' as last_name, ?::date as entered_on, ?::date as as_of_date
            where ? is not null
            """,
            [entered_on, day, entered_on],
        )
    settings = load_settings()
    return send_campaign(
        LOYALTY, dt.date.fromisoformat(day), settings, OutboxSender(settings.outbox)
    )


def test_a_reentry_within_the_cool_down_is_skipped_not_delayed(workspace):
    assert night(workspace, "2025-01-01", "2025-01-01").sent == 1
    assert night(workspace, "2025-01-02", None).sent == 0  # a refund: out of the cohort
    reentry = night(workspace, "2025-01-03", "2025-01-03")
    assert (reentry.sent, reentry.decisions) == (0, {"cooling_down": 1})
    # Still in the cohort once the cool-down is over: that entry has passed, no message.
    assert night(workspace, "2025-04-10", "2025-01-03").sent == 0
    # A new entry after the cool-down gets its message.
    assert night(workspace, "2025-07-20", "2025-07-20").sent == 1
    assert workspace.query(
        "select occasion::varchar, status from nightjar.send_ledger order by occasion"
    ) == [("2025-01-01", "accepted"), ("2025-01-03", "skipped"), ("2025-07-20", "accepted")]


def test_a_message_left_in_flight_by_a_crash_still_counts_for_the_cool_down(workspace):
    assert night(workspace, "2025-01-01", "2025-01-01").sent == 1
    with connect(workspace.warehouse) as con:
        con.execute("update nightjar.send_ledger set status = 'in_flight'")
    # Settled from the outbox file (it went), so the next entry is within its cool-down.
    assert night(workspace, "2025-01-05", "2025-01-05").decisions == {"cooling_down": 1}
