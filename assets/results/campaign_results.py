"""Results assets: one per campaign, what its recent sends achieved against the control
group, as of the partition's business date."""

import base64
import datetime as dt

import duckdb
import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.results.report import (
    EMAIL_OUTCOMES,
    Lift,
    by_send_date,
    chart_png,
    lift,
    markdown_table,
    write_report,
)
from assets.shared.owners import OWNERS
from assets.shared.partitions import ONE_RUN_PER_DATE, WAREHOUSE_POOL, nightly_partitions
from assets.shared.resources import NightjarResource
from assets.shared.warehouse import connect
from models.campaigns import Campaign
from models.descriptions import effective_vars


def _totals(daily: pl.DataFrame) -> dict:
    if not daily.height:
        return dict.fromkeys(daily.columns, 0)
    return daily.drop("send_date").sum().row(0, named=True)


def _lift(totals: dict) -> Lift | None:
    return lift(
        totals["conversions_messaged"],
        totals["messaged"],
        totals["conversions_holdout"],
        totals["held_out"],
    )


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
        # tonight's values, as dbt got them (the description has those of load time)
        applied = effective_vars(settings.dbt_vars)
        window, days = applied["conversion_window_days"], applied["results_window_days"]
        with connect(settings.warehouse) as con:
            try:
                outcomes = con.sql(
                    "select * from main.campaign_outcomes where campaign = $campaign",
                    params={"campaign": campaign.name},
                ).pl()
            except duckdb.CatalogException:
                raise Failure(
                    description=f"main.campaign_outcomes does not exist yet: materialize the "
                    f"warehouse for {day} first."
                ) from None
        built_for = outcomes["as_of_date"].max() if outcomes.height else None
        if built_for is not None and built_for != day:
            raise Failure(
                description=f"campaign_outcomes was built for {built_for}, not {day}: "
                f"materialize the warehouse for {day} first."
            )
        daily = by_send_date(outcomes)
        totals = _totals(daily)
        messaged, held_out = totals["messaged"], totals["held_out"]
        # Both groups of a send date have had the same days to buy, so "so far" compares like
        # with like; the windows already over give the figure that will not move any more.
        overall = _lift(totals)
        complete = outcomes.filter(pl.col("is_window_complete"))
        final = _lift(_totals(by_send_date(complete)))
        png = chart_png(campaign.name, day, daily, overall, days)
        path = write_report(settings.reports, campaign.name, day, png)
        open_windows = outcomes.height - complete.height
        metadata: dict = {
            "summary": (
                f"{overall.sentence()} (orders so far; {open_windows:,} of "
                f"{outcomes.height:,} members' {window}-day windows still open)"
                if overall
                else "no holdout or no send yet: no lift"
            )
        }
        for prefix, result in (("", overall), ("complete_windows_", final)):
            if result:  # numbers, so that Dagster plots them night by night
                metadata |= {
                    f"{prefix}lift_pp": round(100 * result.difference, 4),
                    f"{prefix}lift_ci_low_pp": round(100 * result.low, 4),
                    f"{prefix}lift_ci_high_pp": round(100 * result.high, 4),
                    f"{prefix}conversion_rate_messaged": round(result.messaged_rate, 6),
                    f"{prefix}conversion_rate_holdout": round(result.holdout_rate, 6),
                }
        metadata["members_window_complete"] = complete.height
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
