"""Results assets: one per campaign, what its sends of the last 30 days achieved against
the control group, as of the partition's business date."""

import base64
import datetime as dt

from dagster import (
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.campaigns import Campaign
from pipelines.owners import OWNERS
from pipelines.partitions import ONE_RUN_PER_DATE, WAREHOUSE_POOL, nightly_partitions
from pipelines.resources import NightjarResource
from pipelines.results import (
    EMAIL_OUTCOMES,
    by_send_date,
    chart_png,
    lift,
    markdown_table,
    write_report,
)
from pipelines.warehouse import connect


def build_results_asset(campaign: Campaign, dbt_vars: dict):
    window = dbt_vars["conversion_window_days"]
    days = dbt_vars["results_window_days"]

    @asset(
        name=f"results_{campaign.name}",
        group_name="results",
        owners=OWNERS["results"],
        deps=[AssetKey([campaign.asset_name]), AssetKey(["campaign_outcomes"])],
        partitions_def=nightly_partitions,
        kinds={"duckdb", "matplotlib"},
        pool=WAREHOUSE_POOL,
        backfill_policy=ONE_RUN_PER_DATE,
        description=(
            f"What the '{campaign.name}' campaign's sends of the last {days} business dates "
            f"achieved, as of the business date: messages sent, delivered, opened, clicked, "
            f"bounced and unsubscribed (SendGrid's events), and the share of members with a "
            f"completed order in the {window} days after the send's date, for the messaged "
            f"group and the control group (held out, never messaged). The lift is the "
            f"difference of the two, with its 95% confidence interval; the chart shows both "
            f"groups day by day."
        ),
    )
    def _results(context: AssetExecutionContext, nightjar: NightjarResource) -> MaterializeResult:
        settings = nightjar.settings()
        day = dt.date.fromisoformat(context.partition_key)
        with connect(settings.warehouse) as con:
            built_for = con.execute(
                "select max(as_of_date) from main.campaign_outcomes"
            ).fetchall()[0][0]
            outcomes = con.sql(
                "select * from main.campaign_outcomes where campaign = $campaign",
                params={"campaign": campaign.name},
            ).pl()
        if built_for is not None and built_for != day:
            raise Failure(
                description=f"campaign_outcomes was built for {built_for}, not {day}: "
                f"materialize the warehouse for {day} first."
            )
        daily = by_send_date(outcomes)
        totals = daily.drop("send_date").sum().row(0, named=True) if daily.height else {}
        messaged, held_out = totals.get("messaged", 0), totals.get("held_out", 0)
        overall = lift(
            totals.get("conversions_messaged", 0),
            messaged,
            totals.get("conversions_holdout", 0),
            held_out,
        )
        png = chart_png(campaign.name, day, daily, overall)
        path = write_report(settings.reports, campaign.name, day, png)
        metadata: dict = {
            "summary": overall.sentence() if overall else "no holdout or no send yet: no lift"
        }
        if overall:
            # numbers, so that Dagster plots them night by night
            metadata |= {
                "lift_pp": round(100 * overall.difference, 4),
                "lift_ci_low_pp": round(100 * overall.low, 4),
                "lift_ci_high_pp": round(100 * overall.high, 4),
                "conversion_rate_messaged": round(overall.messaged_rate, 6),
                "conversion_rate_holdout": round(overall.holdout_rate, 6),
            }
        metadata |= {
            "messaged": messaged,
            "held_out": held_out,
            **{name: totals.get(name, 0) for name in EMAIL_OUTCOMES},
            "conversions_messaged": totals.get("conversions_messaged", 0),
            "conversions_holdout": totals.get("conversions_holdout", 0),
            "revenue_messaged": float(totals.get("revenue_messaged") or 0),
            "conversion_window_days": window,
            "by_send_date": MetadataValue.md(markdown_table(daily)),
            "chart": MetadataValue.md(
                f"![{campaign.name} results](data:image/png;base64,"
                f"{base64.b64encode(png).decode()})"
            ),
            "chart_path": MetadataValue.path(str(path)),
        }
        context.log.info(f"{campaign.name}: {metadata['summary']}; chart in {path}")
        return MaterializeResult(metadata=metadata)

    return _results
