"""send_decisions for tests of the sending machinery, which take the contact policy as given."""

from __future__ import annotations

import duckdb

from models.campaigns import Campaign

# A one-shot campaign over main.cohort_news, which a test builds itself (contact_id, email,
# first_name, last_name, edition as the occasion, as_of_date); dataclasses.replace for more.
NEWS = Campaign(
    name="news",
    cohort="cohort_news",
    template_id="d-1",
    subject="News",
    from_email="hello@shop.example.com",
    occasion_column="edition",
)


def decide_to_send_everyone(con: duckdb.DuckDBPyConnection, campaign: Campaign) -> None:
    """The table dbt's send_decisions would hold if every cohort member were due its message
    (the policy itself is tested in dbt's unit tests and end to end). For a journey, its
    members are main.journey_progress's rows with a step due."""
    if campaign.is_journey:
        members = (
            f"(select * from main.journey_progress where journey = '{campaign.name}' "
            "and step is not null)"
        )
        occasion, step, instance = "occasion || '#' || step", "step", "occasion"
    else:
        members = f'main."{campaign.cohort}"'
        occasion = f'cast("{campaign.occasion_column}" as varchar)'
        step = instance = "cast(null as varchar)"
    con.execute(
        f"""
        create or replace table main.send_decisions as
        select
            '{campaign.name}' as campaign,
            '{campaign.cohort}' as cohort,
            contact_id,
            {occasion} as occasion,
            {step} as step,
            {instance} as journey_occasion,
            'send' as decision,
            cast(null as varchar) as variant,
            cast(null as timestamptz) as send_at,
            cast(null as timestamptz) as deliver_by,
            cast(null as varchar) as ledger_status,
            now() as decided_at,
            as_of_date
        from {members}
        """
    )
