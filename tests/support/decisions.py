"""send_decisions for tests of the sending machinery, which take the contact policy as given."""

from __future__ import annotations

import duckdb

from models.campaigns import Campaign


def decide_to_send_everyone(con: duckdb.DuckDBPyConnection, campaign: Campaign) -> None:
    """The table dbt's send_decisions would hold if every cohort member were due its message
    (the policy itself is tested in dbt's unit tests and end to end)."""
    con.execute(
        f"""
        create or replace table main.send_decisions as
        select
            '{campaign.name}' as campaign,
            '{campaign.cohort}' as cohort,
            contact_id,
            cast("{campaign.occasion_column}" as varchar) as occasion,
            'send' as decision,
            cast(null as varchar) as variant,
            cast(null as timestamptz) as send_at,
            cast(null as timestamptz) as deliver_by,
            cast(null as varchar) as ledger_status,
            now() as decided_at,
            as_of_date
        from main."{campaign.cohort}"
        """
    )
