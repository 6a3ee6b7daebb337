"""send_decisions for tests of the sending machinery, which take the contact policy as given."""

from __future__ import annotations

from pathlib import Path

import duckdb

from assets.shared.warehouse import connect, ensure_schema
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


def news_cohort(warehouse: Path, size: int, bad: str | None = None, day: str = "2025-11-20"):
    """main.cohort_news of `size` members C00000.. (c00000@example.com..), each due NEWS on
    `day`; member 3's address is `bad` when given."""
    with connect(warehouse) as con:
        ensure_schema(con)
        con.execute(
            """
            create or replace table main.cohort_news as
            select printf('C%05d', i) as contact_id,
                   case when i = 3 and ? is not null then ? else printf('c%05d@example.com', i)
                   end as email,
                   'N' as first_name, 'M' as last_name, 'first' as edition, ?::date as as_of_date
            from range(?) as t(i)
            """,
            [bad, bad, day, size],
        )
        decide_to_send_everyone(con, NEWS)
