"""On a generated landing, the night's predicted values pick out the buyers the generator
made frequent and high-spending: checked against what they then spent in the half year after
the night, which the night never saw (the published model's holdout check, on our data)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from scipy import stats

from pipelines.demo.sample_data import generate_landing

END = dt.date(2026, 6, 30)
HOLDOUT_DAYS = 180
NIGHT = END - dt.timedelta(days=HOLDOUT_DAYS)


def spend_after(landing, night: dt.date) -> pl.DataFrame:
    """Per contact, its completed orders dated after `night`, as the landing's last versions
    of them say (the holdout: folders the night did not load)."""
    orders = pl.concat(
        pl.read_csv(path, infer_schema=False) for path in sorted(landing.glob("*/orders.csv"))
    )
    latest = (
        orders.with_columns(pl.col("total_amount").cast(pl.Float64))
        .sort("updated_at")
        .group_by("order_id")
        .last()
    )
    return (
        latest.filter(
            (pl.col("status") == "completed")
            & (pl.col("ordered_at").str.slice(0, 10) > night.isoformat())
            & pl.col("contact_id").is_not_null()
        )
        .group_by("contact_id")
        .agg(pl.col("total_amount").sum().alias("holdout_spend"))
    )


@pytest.mark.slow  # a year and a half of 3,000 contacts: about a minute
def test_high_predicted_value_is_high_value_after_the_night(workspace):
    generate_landing(workspace.landing, contacts=3000, days=540, end=END, seed=17)
    result = workspace.run_with(NIGHT.isoformat())
    assert result.success

    status, buyers = workspace.query("select status, buyers from clv_fits")[0]
    assert status == "fitted" and buyers > 1000
    # the UI shows the fit's figures, plotted night by night, and the model's own check
    (fits,) = [
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key.to_user_string() == "clv_fits"
    ]
    assert fits["buyers"].value == buyers and fits["purchase model log likelihood"].value < 0
    chart = fits["repeat purchases, counted and expected"].value
    assert "| 0 |" in chart and "| 7+ |" in chart
    predicted = pl.DataFrame(
        workspace.query(
            "select contact_id, predicted_clv_12m, predicted_clv_decile, spend_730d "
            "from customer_360 where predicted_clv_12m is not null"
        ),
        schema=["contact_id", "predicted_clv_12m", "decile", "spend_730d"],
        orient="row",
    ).join(spend_after(workspace.landing, NIGHT), on="contact_id", how="left")
    holdout = predicted["holdout_spend"].fill_null(0)
    # every buyer of the window but the erased, whose orders are fitted on and never shown
    assert 0.99 * buyers < predicted.height <= buyers

    rho = stats.spearmanr(predicted["predicted_clv_12m"], holdout).statistic
    naive = stats.spearmanr(predicted["spend_730d"], holdout).statistic
    print(f"rank correlation with the holdout spend: {rho:.3f} (spend_730d: {naive:.3f})")
    assert rho > 0.6 and rho > naive + 0.05, (rho, naive)
    # The top tenth by predicted value spent far more than the rest, most of it buying again.
    top = predicted.with_columns(holdout_spend=holdout).filter(pl.col("decile") == 1)
    rest = predicted.with_columns(holdout_spend=holdout).filter(pl.col("decile") > 1)
    assert top["holdout_spend"].mean() > 3 * rest["holdout_spend"].mean()
    assert (top["holdout_spend"] > 0).mean() > 0.9
