"""A journey's results: per step what its messages achieved, the journey's lift over its
control group, and the funnel from entry through each step to a conversion.

The lift is measured on each instance's first step: the control group was drawn at entry
and held out of every step, so comparing the instances that were messaged with those held
out compares like with like, once per instance (a later step would count an instance again,
and only the instances still in the journey reach it)."""

from __future__ import annotations

import datetime as dt
import io

import polars as pl

from assets.results.report import EMAIL_OUTCOMES
from models.campaigns import Campaign


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [name for name, _ in stages]
    counts = [count for _, count in stages]
    top = counts[0] or 1
    figure, axis = plt.subplots(figsize=(8, 0.6 * len(stages) + 1.4), dpi=100)
    axis.barh(range(len(stages)), counts, color="#4c72b0")
    axis.set_yticks(range(len(stages)), labels)
    axis.invert_yaxis()
    for index, count in enumerate(counts):
        axis.text(count, index, f" {count:,} ({100 * count / top:.0f}%)", va="center")
    axis.set_xlabel("contacts (messaged group)")
    axis.set_xlim(0, top * 1.3)
    figure.suptitle(f"{journey}: entered → each step → converted, last {days} days, as of {day}")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
