"""The lift of a campaign: the messaged group's conversion rate against the control group's.

The lift is the difference of the two conversion rates, in percentage points, with
Newcombe's hybrid score interval (Newcombe 1998, method 10). Built from two Wilson intervals,
it stays inside [-1, 1] and keeps its coverage with small groups and rates near 0, where
the textbook Wald interval (p ± 1.96·se) is too narrow or collapses to a point: a control
group of a few dozen members with no conversion is an everyday case here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z_95 = 1.959963984540054  # the normal quantile of 0.975


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Lift:
    messaged_rate: float
    holdout_rate: float
    difference: float  # messaged - holdout, as a share (0.021 = 2.1 percentage points)
    low: float
    high: float

    @property
    def relative(self) -> float | None:
        return self.difference / self.holdout_rate if self.holdout_rate else None

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0

    def sentence(self) -> str:
        verdict = (
            "the messages made a difference"
            if self.significant and self.difference > 0
            else "the messaged group did worse"
            if self.significant
            else "not distinguishable from no effect"
        )
        return (
            f"messaged {self.messaged_rate:.1%} vs holdout {self.holdout_rate:.1%}: "
            f"{100 * self.difference:+.1f} pp (95% CI {100 * self.low:+.1f} to "
            f"{100 * self.high:+.1f} pp); {verdict}"
        )


def lift(
    messaged_conversions: int, messaged: int, holdout_conversions: int, holdout: int
) -> Lift | None:
    """The lift of the messaged group over the holdout, or None when a group is empty."""
    if not messaged or not holdout:
        return None
    p1, p2 = messaged_conversions / messaged, holdout_conversions / holdout
    l1, u1 = wilson_interval(messaged_conversions, messaged)
    l2, u2 = wilson_interval(holdout_conversions, holdout)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Lift(p1, p2, d, low, high)


@dataclass(frozen=True)
class MeanDifference:
    """A per-contact mean (orders, revenue) of the program's contacts against the global
    control group's, with the 95% interval of the difference (Welch's standard error, the
    normal quantile: both groups hold hundreds of contacts or more)."""

    program: float
    control: float
    difference: float
    low: float
    high: float


def mean_difference(
    program: tuple[int, float, float], control: tuple[int, float, float]
) -> MeanDifference | None:
    """From each group's (count, sum, sum of squares); None when a group has fewer than 2."""
    (n1, s1, q1), (n0, s0, q0) = program, control
    if n1 < 2 or n0 < 2:
        return None
    m1, m0 = s1 / n1, s0 / n0
    v1 = max(0.0, (q1 - n1 * m1 * m1) / (n1 - 1))
    v0 = max(0.0, (q0 - n0 * m0 * m0) / (n0 - 1))
    half = Z_95 * math.sqrt(v1 / n1 + v0 / n0)
    d = m1 - m0
    return MeanDifference(m1, m0, d, d - half, d + half)
