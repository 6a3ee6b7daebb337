"""Campaign results: the figures of both groups per send date, and the chart of them
(the lift and its interval: models/lift.py).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import polars as pl

from assets.results.drawing import BLUE, ORANGE, Canvas, Panel, nice_ticks
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
    dates = [day - dt.timedelta(days=n) for n in range(days - 1, -1, -1)]
    rows = {r["send_date"]: r for r in daily.iter_rows(named=True)}
    empty = {"messaged": 0, "held_out": 0, "conversions_messaged": 0, "conversions_holdout": 0}

    def rate(row, conversions, members):
        return 100 * row[conversions] / row[members] if row[members] else math.nan

    series = [rows.get(d, empty) for d in dates]
    # a date's place is its slot's middle, i + 0.5, on both panels
    canvas = Canvas(900, 550)
    headline = overall.sentence() if overall else "no holdout or no send yet: no lift to measure"
    canvas.heading(f"{campaign}: the last {days} days of sends, as of {day}", headline, size=13)
    members = [(r["messaged"], r["held_out"]) for r in series]
    ticks = nice_ticks(1.05 * max(max(pair) for pair in members), whole=True)
    sizes = Panel(canvas, (110, 66, 880, 258), days, ticks[-1])
    for i, (messaged, held_out) in enumerate(members):
        sizes.column(i + 0.3, 0.4, messaged, BLUE)
        sizes.column(i + 0.7, 0.4, held_out, ORANGE)
    sizes.frame()
    sizes.y_ticks(ticks, "members")
    sizes.legend([("messaged", BLUE, "bar"), ("holdout", ORANGE, "bar")])

    lines = {
        key: [(i + 0.5, rate(r, key, group)) for i, r in enumerate(series)]
        for key, group in (
            ("conversions_messaged", "messaged"),
            ("conversions_holdout", "held_out"),
        )
    }
    highest = max(
        (y for points in lines.values() for _, y in points if not math.isnan(y)), default=0
    )
    ticks = nice_ticks(highest * 1.05)
    rates = Panel(canvas, (110, 296, 880, 488), days, ticks[-1])
    rates.line(lines["conversions_messaged"], BLUE)
    rates.line(lines["conversions_holdout"], ORANGE)
    rates.frame()
    rates.y_ticks(ticks, "converted (%)")
    every = max(1, days // 10)
    rates.x_ticks(
        [(i + 0.5, d.strftime("%m-%d")) for i, d in enumerate(dates)][::every], "send date"
    )
    rates.legend([("messaged", BLUE, "line"), ("holdout", ORANGE, "line")])
    return canvas.png()


def write_report(reports: Path, campaign: str, day: dt.date, png: bytes) -> Path:
    """`<reports>/<date>/results_<campaign>.png`, written whole or not at all."""
    path = reports / day.isoformat() / f"results_{campaign}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".png.partial")
    partial.write_bytes(png)
    partial.replace(path)
    return path
