"""Campaign results: the figures of both groups per send date, and the chart of them
(the lift and its interval: models/lift.py).
"""

from __future__ import annotations

import datetime as dt
import io
import math
from pathlib import Path

import polars as pl

from models.lift import Lift

# What the results count, by the campaign_outcomes column that says it.
EMAIL_OUTCOMES = {
    "delivered": "is_delivered",
    "opened": "is_opened",
    "clicked": "is_clicked",
    "bounced": "is_bounced",
    "unsubscribed": "is_unsubscribed",
    "spam_reports": "is_spam_reported",
}


def by_send_date(outcomes: pl.DataFrame) -> pl.DataFrame:
    """Per send date: members of each group, their email outcomes and conversions."""
    messaged = pl.col("audience_group") == "messaged"
    holdout = pl.col("audience_group") == "holdout"
    return (
        outcomes.group_by("send_date")
        .agg(
            messaged=messaged.sum(),
            held_out=holdout.sum(),
            **{name: (pl.col(col) & messaged).sum() for name, col in EMAIL_OUTCOMES.items()},
            conversions_messaged=(pl.col("has_converted") & messaged).sum(),
            conversions_holdout=(pl.col("has_converted") & holdout).sum(),
            revenue_messaged=pl.col("conversion_revenue").filter(messaged).sum(),
        )
        .sort("send_date")
    )


def markdown_table(daily: pl.DataFrame) -> str:
    header = (
        "| send date | messaged | delivered | opened | clicked | converted | held out | converted |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in daily.iter_rows(named=True):
        lines.append(
            f"| {row['send_date']} | {row['messaged']:,} | {row['delivered']:,} | "
            f"{row['opened']:,} | {row['clicked']:,} | {row['conversions_messaged']:,} | "
            f"{row['held_out']:,} | {row['conversions_holdout']:,} |"
        )
    return "\n".join(lines)


def chart_png(
    campaign: str, day: dt.date, daily: pl.DataFrame, overall: Lift | None, days: int
) -> bytes:
    """Members and conversion rates of both groups per send date, over the last `days`."""
    import matplotlib

    matplotlib.use("Agg")  # no screen: render to a file
    import matplotlib.pyplot as plt

    dates = [day - dt.timedelta(days=n) for n in range(days - 1, -1, -1)]
    rows = {r["send_date"]: r for r in daily.iter_rows(named=True)}
    empty = {"messaged": 0, "held_out": 0, "conversions_messaged": 0, "conversions_holdout": 0}

    def rate(row, conversions, members):
        return 100 * row[conversions] / row[members] if row[members] else math.nan

    series = [rows.get(d, empty) for d in dates]
    x = list(range(len(dates)))  # positions, labelled with the dates below
    figure, (sizes, rates) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, dpi=100)
    for shift, key, label in ((-0.2, "messaged", "messaged"), (0.2, "held_out", "holdout")):
        sizes.bar([i + shift for i in x], [r[key] for r in series], 0.4, label=label)
    sizes.set_ylabel("members")
    sizes.legend(loc="upper left")
    for key, members, label in (
        ("conversions_messaged", "messaged", "messaged"),
        ("conversions_holdout", "held_out", "holdout"),
    ):
        rates.plot(x, [rate(r, key, members) for r in series], marker="o", label=label)
    rates.set_ylabel("converted (%)")
    rates.set_ylim(bottom=0)
    rates.legend(loc="upper left")
    every = max(1, days // 10)
    rates.set_xticks(x[::every], [d.strftime("%m-%d") for d in dates[::every]])
    rates.set_xlabel("send date")
    headline = overall.sentence() if overall else "no holdout or no send yet: no lift to measure"
    figure.suptitle(
        f"{campaign}: the last {days} days of sends, as of {day}\n{headline}", fontsize=10
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def write_report(reports: Path, campaign: str, day: dt.date, png: bytes) -> Path:
    """`<reports>/<date>/results_<campaign>.png`, written whole or not at all."""
    path = reports / day.isoformat() / f"results_{campaign}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".png.partial")
    partial.write_bytes(png)
    partial.replace(path)
    return path
