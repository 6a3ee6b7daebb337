"""The results of the whole program: every campaign and journey together against the global
control group (var global_control_share), as of the partition's business date: orders and
revenue per mailable contact in the last results_window_days, and the difference with its
95% interval (global_control_results; models/lift.py)."""

from typing import Any

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

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
from models.lift import MeanDifference, mean_difference


def build_program_results_asset(campaigns: list[Campaign]):
    @asset(
        name="results_program",
        group_name="results",
        owners=OWNERS["results"],
        deps=[
            AssetKey(["global_control_results"]),
            *[AssetKey([c.asset_name]) for c in campaigns],
        ],
        partitions_def=nightly_partitions,
        kinds={"duckdb"},
        pool=WAREHOUSE_POOL,
        backfill_policy=ONE_RUN_PER_DATE,
        description=(
            "What the whole program (every campaign and journey) adds, as of the business "
            "date: completed orders and revenue per mailable contact in the last "
            "results_window_days, for the contacts programs may mail against the global "
            "control group (var global_control_share of all contacts, a stable draw, never "
            "mailed), with the difference and its 95% interval. Off while the share is 0."
        ),
    )
    def _results_program(
        context: AssetExecutionContext, nightjar: NightjarResource
    ) -> MaterializeResult:
        settings = nightjar.settings()
        share = effective_vars(settings.dbt_vars)["global_control_share"]
        with connect(settings.warehouse, read_only=True) as con:
            rows = con.execute(
                "select audience_group, contacts, orders, orders_squared, revenue, "
                "revenue_squared, window_days from main.global_control_results "
                "where as_of_date = ?",
                [business_date(context)],
            ).fetchall()
        metadata = program_figures(share, {row[0]: row[1:] for row in rows})
        context.log.info(f"program results: {metadata['summary']}")
        return MaterializeResult(metadata=metadata)

    return _results_program


def program_figures(share: float, groups: dict[str, tuple]) -> dict[str, Any]:
    """The asset's metadata from global_control_results' rows (group -> figures)."""
    if not share:
        return {
            "summary": "off: no global control group (set the dbt var global_control_share, "
            "e.g. NIGHTJAR_DBT_VARS='{global_control_share: 0.05}')"
        }
    program, control = groups.get("program"), groups.get("global_control")
    if not program or not control:
        return {"summary": "no mailable contact in one of the groups yet: no results"}
    days = program[5]
    orders = mean_difference(program[0:3], control[0:3])
    revenue = mean_difference((program[0], *program[3:5]), (control[0], *control[3:5]))
    figures: dict[str, Any] = {
        "global control share": share,
        "program contacts": program[0],
        "global control contacts": control[0],
    }
    for name, diff in (("orders", orders), ("revenue", revenue)):
        if diff:
            figures[f"{name} per contact, program"] = round(diff.program, 4)
            figures[f"{name} per contact, global control"] = round(diff.control, 4)
            figures[f"incremental {name} per contact"] = round(diff.difference, 4)
            figures[f"incremental {name} per contact, 95% low"] = round(diff.low, 4)
            figures[f"incremental {name} per contact, 95% high"] = round(diff.high, 4)
    figures["summary"] = (
        f"over the last {days} days: {_sentence('orders', orders)}; "
        f"{_sentence('revenue', revenue)}"
        + (f"; about {revenue.difference * program[0]:,.0f} of revenue in all" if revenue else "")
    )
    return figures


def _sentence(name: str, diff: MeanDifference | None) -> str:
    if diff is None:
        return f"{name}: too few contacts"
    return (
        f"{name} per contact {diff.program:.4g} vs {diff.control:.4g} without the program, "
        f"{diff.difference:+.4g} (95% CI {diff.low:+.4g} to {diff.high:+.4g})"
    )
