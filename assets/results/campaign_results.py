"""Results assets: one per campaign, what its recent sends achieved against the control
group, as of the partition's business date."""

import base64
import datetime as dt
from pathlib import Path
from typing import Any

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

from assets.results.journey_report import by_step, first_steps, funnel, funnel_png, step_table
from assets.results.report import (
    EMAIL_OUTCOMES,
    by_send_date,
    chart_png,
    markdown_table,
    write_report,
)
from assets.shared.owners import OWNERS
from assets.shared.partitions import (
    ONE_RUN_PER_DATE,
    WAREHOUSE_POOL,
    business_date,
    nightly_partitions,
)
from assets.shared.resources import NightjarResource
from assets.shared.warehouse import connect
from models.campaigns import Campaign
from models.descriptions import effective_vars
from models.lift import Lift, lift
from models.settings import Settings


def build_results_asset(campaign: Campaign, dbt_vars: dict):
    @asset(
        name=f"results_{campaign.name}",
        group_name="results",
        owners=OWNERS["results"],
        deps=[AssetKey([campaign.asset_name]), AssetKey(["campaign_outcomes"])],
        partitions_def=nightly_partitions,
        kinds={"duckdb", "pillow"},
        pool=WAREHOUSE_POOL,
        backfill_policy=ONE_RUN_PER_DATE,
        description=_description(campaign, dbt_vars),
    )
    def _results(context: AssetExecutionContext, nightjar: NightjarResource) -> MaterializeResult:
        return _materialize(context, nightjar.settings(), campaign)

    return _results


def _description(campaign: Campaign, dbt_vars: dict) -> str:
    window = dbt_vars["conversion_window_days"]
    days = dbt_vars["results_window_days"]
    return (
        f"What the '{campaign.name}' campaign's sends of the last {days} business dates "
        f"achieved, as of the business date: messages sent, delivered, opened, clicked, "
        f"bounced and unsubscribed (SendGrid's events), and the share of members with a "
        f"completed order in the {window} days after the send's date, for the messaged "
        f"group and the control group (held out, never messaged). The lift is the "
        f"difference of the two, with its 95% confidence interval; the chart shows both "
        f"groups day by day."
        + (
            " For this journey the lift counts each instance once, at its first step (the "
            "control group was drawn at entry and held out of every step); by_step gives "
            "each step's figures, and the funnel chart entered → each step → converted."
            if campaign.is_journey
            else ""
        )
    )


def _materialize(
    context: AssetExecutionContext, settings: Settings, campaign: Campaign
) -> MaterializeResult:
    day = business_date(context)
    # tonight's values, as dbt got them (the description has those of load time)
    applied = effective_vars(settings.dbt_vars)
    window, days = applied["conversion_window_days"], applied["results_window_days"]
    outcomes = _outcomes(settings.warehouse, campaign, day)
    if outcomes.is_empty():
        # nothing sent or held out in the window: no figure to show, and no chart to draw
        # (a chart costs a night about half a second, and most programs are quiet most nights)
        summary = f"no message sent or held out in the last {days} days: no results yet"
        context.log.info(f"{campaign.name}: {summary}")
        empty = {"messaged": 0, "held_out": 0, "members_window_complete": 0}
        return MaterializeResult(metadata={"summary": summary, **empty})
    journey_metadata: dict = {}
    if campaign.is_journey:
        journey_metadata = _journey_results(settings, campaign, day, outcomes, days)
        # the journey's lift, once per instance: its first step (assets/results/journey_report.py)
        outcomes = outcomes.filter(pl.col("step").is_in(first_steps(campaign)))
    daily = by_send_date(outcomes)
    totals = _totals(daily)
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
        ),
        **_lift_figures(overall, final),
        "members_window_complete": complete.height,
        **_counts(totals, window),
        "by_send_date": MetadataValue.md(markdown_table(daily)),
        **_chart(campaign, png, path),
        **journey_metadata,
    }
    context.log.info(f"{campaign.name}: {metadata['summary']}; chart in {path}")
    return MaterializeResult(metadata=metadata)


def _journey_results(
    settings: Settings, journey: Campaign, day: dt.date, outcomes: pl.DataFrame, days: int
) -> dict[str, Any]:
    """Per step sent, delivered, opened, clicked and converted, and the funnel chart."""
    steps = by_step(outcomes, journey)
    with connect(settings.warehouse) as con:
        (entered,) = con.execute(
            """
            select count(*) from nightjar.journey_instances
            where journey = $journey and not in_control_group
              and entered_on > $day - to_days($days) and entered_on <= $day
              and coalesce(end_reason, '') <> 'baseline'
            """,
            {"journey": journey.name, "day": day, "days": days},
        ).fetchall()[0]
    messaged = outcomes.filter(pl.col("audience_group") == "messaged")
    converted = messaged.filter(pl.col("has_converted"))["contact_id"].n_unique()
    stages = funnel(entered, steps, converted)
    png = funnel_png(journey.name, day, stages, days)
    path = write_report(settings.reports, f"{journey.name}_funnel", day, png)
    image = base64.b64encode(png).decode()
    return {
        "by_step": MetadataValue.md(step_table(steps)),
        "funnel": MetadataValue.md(f"![{journey.name} funnel](data:image/png;base64,{image})"),
        "funnel_path": MetadataValue.path(str(path)),
        **{f"funnel: {name}": count for name, count in stages},
    }


def _outcomes(warehouse: Path, campaign: Campaign, day: dt.date) -> pl.DataFrame:
    """The campaign's rows of main.campaign_outcomes, which must be built for `day`."""
    with connect(warehouse) as con:
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
    require_built_for(outcomes["as_of_date"].max() if outcomes.height else None, day)
    return outcomes


def require_built_for(built_for: dt.date | None, day: dt.date) -> None:
    """Results are of `day`'s campaign_outcomes, never of an older build left in main."""
    if built_for is not None and built_for != day:
        raise Failure(
            description=f"campaign_outcomes was built for {built_for}, not {day}: "
            f"materialize the warehouse for {day} first."
        )


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


def _lift_figures(overall: Lift | None, final: Lift | None) -> dict[str, float]:
    """Numbers, so that Dagster plots them night by night: over every member so far, then
    over the members whose window is over."""
    figures: dict[str, float] = {}
    for prefix, result in (("", overall), ("complete_windows_", final)):
        if result:
            figures |= {
                f"{prefix}lift_pp": round(100 * result.difference, 4),
                f"{prefix}lift_ci_low_pp": round(100 * result.low, 4),
                f"{prefix}lift_ci_high_pp": round(100 * result.high, 4),
                f"{prefix}conversion_rate_messaged": round(result.messaged_rate, 6),
                f"{prefix}conversion_rate_holdout": round(result.holdout_rate, 6),
            }
    return figures


def _counts(totals: dict, window: int) -> dict[str, Any]:
    """Both groups' members, the messages' outcomes and the conversions, summed."""
    return {
        "messaged": totals["messaged"],
        "held_out": totals["held_out"],
        **{name: totals.get(name, 0) for name in EMAIL_OUTCOMES},
        "conversions_messaged": totals.get("conversions_messaged", 0),
        "conversions_holdout": totals.get("conversions_holdout", 0),
        "revenue_messaged": float(totals.get("revenue_messaged") or 0),
        "conversion_window_days": window,
    }


def _chart(campaign: Campaign, png: bytes, path: Path) -> dict[str, MetadataValue]:
    """The chart inline, and where its file is."""
    return {
        "chart": MetadataValue.md(
            f"![{campaign.name} results](data:image/png;base64,{base64.b64encode(png).decode()})"
        ),
        "chart_path": MetadataValue.path(str(path)),
    }
