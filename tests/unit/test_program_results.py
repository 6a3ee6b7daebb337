"""The whole program against the global control group: per-contact means, their difference
and its 95% interval, from each group's count, sum and sum of squares."""

from __future__ import annotations

import math
import statistics

import pytest

from assets.results.program_results import program_figures
from models.lift import Z_95, mean_difference

PROGRAM = [0, 0, 1, 2, 0, 3, 1, 0, 0, 1]
CONTROL = [0, 1, 0, 0, 0, 1]


def summed(values: list[float]) -> tuple[int, float, float]:
    return len(values), float(sum(values)), float(sum(v * v for v in values))


def test_the_difference_of_means_and_its_interval_by_hand():
    diff = mean_difference(summed(PROGRAM), summed(CONTROL))
    half = Z_95 * math.sqrt(
        statistics.variance(PROGRAM) / len(PROGRAM) + statistics.variance(CONTROL) / len(CONTROL)
    )
    assert diff.program == pytest.approx(0.8)
    assert diff.control == pytest.approx(1 / 3)
    assert diff.difference == pytest.approx(0.8 - 1 / 3)
    assert (diff.low, diff.high) == pytest.approx((0.8 - 1 / 3 - half, 0.8 - 1 / 3 + half))
    assert mean_difference(summed([1]), summed(CONTROL)) is None


def test_the_asset_says_when_it_is_off_and_what_the_program_added():
    assert program_figures(0, {})["summary"].startswith("off: no global control group")
    rows = {
        "program": (*summed(PROGRAM), *summed([10.0 * v for v in PROGRAM])[1:], 30),
        "global_control": (*summed(CONTROL), *summed([10.0 * v for v in CONTROL])[1:], 30),
    }
    figures = program_figures(0.1, rows)
    assert figures["program contacts"] == 10 and figures["global control contacts"] == 6
    assert figures["incremental orders per contact"] == pytest.approx(0.4667, abs=1e-4)
    assert figures["incremental revenue per contact"] == pytest.approx(4.6667, abs=1e-4)
    assert figures["summary"].startswith("over the last 30 days: orders per contact 0.8 vs")
    assert figures["summary"].endswith("about 47 of revenue in all")
