"""The results' charts show each send date's groups where that date is, and a funnel's bars
in proportion to its counts (read back from the PNG's pixels)."""

from __future__ import annotations

import datetime as dt
import io

import polars as pl
from PIL import Image

from assets.results.drawing import BLUE, ORANGE, nice_ticks, tick_label
from assets.results.journey_report import FUNNEL, funnel_png
from assets.results.report import chart_png
from models.lift import lift

DAY = dt.date(2026, 11, 20)


def _image(png: bytes) -> Image.Image:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(png)).convert("RGB")


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def _columns_of(image: Image.Image, colour: str, rows: range) -> list[int]:
    """The x of every pixel column holding `colour` within `rows`."""
    rgb = _rgb(colour)
    return sorted({x for x in range(image.width) for y in rows if image.getpixel((x, y)) == rgb})


def test_each_send_date_s_bars_stand_over_its_label_and_no_other_date_has_one():
    daily = pl.DataFrame(
        {
            "send_date": [DAY - dt.timedelta(days=20), DAY],
            "messaged": [15_000, 1_000],
            "held_out": [1_600, 100],
            "conversions_messaged": [300, 50],
            "conversions_holdout": [20, 3],
        }
    )
    image = _image(chart_png("birthday", DAY, daily, lift(350, 16_000, 23, 1_700), 30))
    assert image.size == (900, 550)
    # the top panel (members), below its legend; 30 slots over x 110..880
    slot = (880 - 110) / 30
    blue = _columns_of(image, BLUE, range(200, 258))
    orange = _columns_of(image, ORANGE, range(245, 258))

    def slot_of(x: int) -> int:
        return int((x - 110) // slot)

    # DAY - 20 is slot 9 and DAY slot 29: the messaged bar left of the holdout's in each
    assert {slot_of(x) for x in blue} == {9, 29}
    assert {slot_of(x) for x in orange} == {9, 29}
    for index in (9, 29):
        assert max(x for x in blue if slot_of(x) == index) <= min(
            x for x in orange if slot_of(x) == index
        )
    # 15,000 messaged stand 15 times as tall as 1,000 (the panel's floor is at y 258)
    tall = [y for y in range(66, 258) if image.getpixel((blue[0] + 1, y)) == _rgb(BLUE)]
    short = [y for y in range(66, 258) if image.getpixel((blue[-1] - 1, y)) == _rgb(BLUE)]
    assert 14 < (258 - min(tall)) / (258 - min(short)) < 16


def test_a_funnel_s_bars_are_as_long_as_their_counts():
    stages = [("entered", 2_000), ("welcome_1", 1_500), ("welcome_2", 500), ("converted", 0)]
    image = _image(funnel_png("welcome_series", DAY, stages, 30))
    assert image.size == (800, 60 * 4 + 140)
    rgb = _rgb(FUNNEL)
    lengths = []
    for y in range(image.height):
        row = [x for x in range(image.width) if image.getpixel((x, y)) == rgb]
        if row:
            lengths.append(len(row))
    # three bars, each as many rows tall; their lengths 4 : 3 : 1, converted none
    widths = sorted(set(lengths), reverse=True)
    assert len(widths) == 3
    assert abs(widths[1] / widths[0] - 0.75) < 0.01 and abs(widths[2] / widths[0] - 0.25) < 0.01


def test_the_axes_count_people_in_whole_steps_and_rates_in_round_ones():
    assert nice_ticks(1.3, whole=True) == [0, 1, 2]
    assert nice_ticks(0, whole=True) == [0, 1]
    assert nice_ticks(15_750, whole=True) == [0, 5_000, 10_000, 15_000, 20_000]
    assert nice_ticks(12.5, whole=True) == [0, 5, 10, 15]
    assert nice_ticks(1.0) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(12.5) == [0, 2.5, 5, 7.5, 10, 12.5]
    labels = [tick_label(t) for t in (0, 0.2, 2.5, 1_500, 250_000, 2_500_000, 3e9, 1.5e12)]
    assert labels == ["0", "0.2", "2.5", "1,500", "250,000", "2.5M", "3B", "1.5T"]


def test_nothing_raises_or_leaves_the_picture_for_long_names_and_huge_counts():
    stages = [("entered", 150_000), ("welcome_email_" + "x" * 200, 100_000), ("converted", 3)]
    image = _image(funnel_png("j" * 200, DAY, stages, 30))
    assert image.size == (800, 60 * 3 + 140)
    # the long name is cut short, so the bars keep more than half of the width
    rgb = _rgb(FUNNEL)
    assert sum(image.getpixel((x, 100)) == rgb for x in range(image.width)) > 300
    daily = pl.DataFrame(
        {
            "send_date": [DAY - dt.timedelta(days=n) for n in range(365)],
            "messaged": [10**12] * 365,
            "held_out": [10**11] * 365,
            "conversions_messaged": [5 * 10**10] * 365,
            "conversions_holdout": [0] * 365,
        }
    )
    assert _image(chart_png("c" * 200, DAY, daily, None, 365)).size == (900, 550)
