"""A journey's results: per step what its messages achieved, the journey's lift over its
control group, and the funnel from entry through each step to a conversion.

The lift is measured on each instance's first step: the control group was drawn at entry
and held out of every step, so comparing the instances that were messaged with those held
out compares like with like, once per instance (a later step would count an instance again,
and only the instances still in the journey reach it)."""

from __future__ import annotations

import datetime as dt

import polars as pl

from assets.results.drawing import Canvas, Panel, nice_ticks, tick_label
from assets.results.report import EMAIL_OUTCOMES
from models.campaigns import Campaign

FUNNEL = "#4c72b0"
LABELS_AT_MOST = 260  # pixels of the funnel's 800 for its stages' names


def first_steps(journey: Campaign) -> list[str]:
    """The step names of position 1 (the first step and its else steps)."""
    return [s.name for s in journey.steps if s.position == 1]


def by_step(outcomes: pl.DataFrame, journey: Campaign) -> pl.DataFrame:
    """Per step, in the journey's order: members of each group, email outcomes, conversions."""
    messaged = pl.col("audience_group") == "messaged"
    holdout = pl.col("audience_group") == "holdout"
    order = {s.name: (s.position, not s.in_sequence, s.name) for s in journey.steps}
    table = outcomes.group_by("step").agg(
        sent=messaged.sum(),
        held_out=holdout.sum(),
        **{name: (pl.col(col) & messaged).sum() for name, col in EMAIL_OUTCOMES.items()},
        converted=(pl.col("has_converted") & messaged).sum(),
        converted_holdout=(pl.col("has_converted") & holdout).sum(),
    )
    rows = sorted(table.iter_rows(named=True), key=lambda r: order.get(r["step"], (99,)))
    return pl.DataFrame(rows, schema=table.schema)


def step_table(steps: pl.DataFrame) -> str:
    lines = [
        "| step | sent | delivered | opened | clicked | converted | held out | converted |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in steps.iter_rows(named=True):
        lines.append(
            f"| {row['step']} | {row['sent']:,} | {row['delivered']:,} | {row['opened']:,} | "
            f"{row['clicked']:,} | {row['converted']:,} | {row['held_out']:,} | "
            f"{row['converted_holdout']:,} |"
        )
    return "\n".join(lines)


def funnel(entered: int, steps: pl.DataFrame, converted: int) -> list[tuple[str, int]]:
    """(stage, contacts): entered (messaged group), each step sent, converted."""
    stages = [("entered", entered)]
    stages += [(row["step"], row["sent"]) for row in steps.iter_rows(named=True)]
    return [*stages, ("converted", converted)]


def funnel_png(journey: str, day: dt.date, stages: list[tuple[str, int]], days: int) -> bytes:
    """The funnel as horizontal bars, widest first, each labelled with its count and its
    share of those who entered."""
    counts = [count for _, count in stages]
    top = counts[0] or 1
    canvas = Canvas(800, round(60 * len(stages) + 140))
    canvas.heading(
        f"{journey}: entered, each step, converted; last {days} days, as of {day}", size=14
    )
    # a stage's name is a step's, of any length: the longest are cut to a third of the width
    names = [canvas.fitted(str(name), LABELS_AT_MOST) for name, _ in stages]
    left = 30 + round(max(canvas.text_width(name) for name in names))
    ticks = nice_ticks(max(top, max(counts)) * 1.3, whole=True)
    bottom = canvas.image.height - 56
    # stage i's place is i + 0.5 from the top: the y scale runs from the last stage up
    bars = Panel(canvas, (left, 44, 780, bottom), ticks[-1], len(stages))
    for index, (name, count) in enumerate(zip(names, counts, strict=True)):
        y = len(stages) - index - 0.5
        bars.row(y, 0.8, count, FUNNEL)
        label = f"{count:,} ({100 * count / top:.0f}%)"
        at = min(bars.x(count) + 4, canvas.image.width - canvas.text_width(label) - 2)
        canvas.text((at, bars.y(y)), label, anchor="lm")
        canvas.text((left - 8, bars.y(y)), name, anchor="rm")
    bars.frame()
    bars.x_ticks([(t, tick_label(t)) for t in ticks], "contacts (messaged group)")
    return canvas.png()
