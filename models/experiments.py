"""Experiments that decide (docs/contract.md §17): an A/B test's winner rule, and the
Beta-Binomial judgement of its arms.

Each arm's rate gets a uniform prior, Beta(1, 1); after s successes in n members its
posterior is Beta(1 + s, 1 + n - s). The probability that an arm is the best is estimated
from draws of every arm's posterior, with a seed fixed by the experiment, so that the same
figures always give the same verdict (a re-run decides what the run decided).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

METRICS = ("conversion", "click")
DRAWS = 200_000  # the estimate's standard error is under 0.0012


@dataclass(frozen=True)
class WinnerRule:
    """When an A/B test ends: every arm has `min_members` judged, and one arm is the best
    with a posterior probability of at least `probability`."""

    metric: str = "conversion"  # completed orders in the conversion window, or a click
    min_members: int = 500
    probability: float = 0.9

    def describe(self) -> str:
        return (
            f"ends when one arm has the best {self.metric} rate with a probability of at "
            f"least {self.probability:.0%}, every arm with {self.min_members:,} members "
            "judged; the winner alone is sent from then on"
        )


@dataclass(frozen=True)
class Arm:
    variant: str
    members: int  # judged: messaged, and (for conversion) their window over
    successes: int

    @property
    def rate(self) -> float:
        return self.successes / self.members if self.members else 0.0


@dataclass(frozen=True)
class Verdict:
    winner: str | None  # None: the test goes on
    probabilities: dict[str, float]  # each arm's posterior probability of being the best
    reason: str  # in a marketer's words


def probability_best(arms: list[Arm], seed: str) -> dict[str, float]:
    rng = np.random.default_rng(int(hashlib.md5(seed.encode()).hexdigest()[:16], 16))
    draws = np.stack([rng.beta(1 + a.successes, 1 + a.members - a.successes, DRAWS) for a in arms])
    best = np.bincount(draws.argmax(axis=0), minlength=len(arms)) / DRAWS
    return {arm.variant: float(p) for arm, p in zip(arms, best, strict=True)}


def judge(rule: WinnerRule, arms: list[Arm], variants: list[str], seed: str) -> Verdict:
    """The verdict on `variants` (every arm the test has, by name) from `arms` so far."""
    by_name = {a.variant: a for a in arms}
    judged = [by_name.get(v, Arm(v, 0, 0)) for v in variants]
    probabilities = probability_best(judged, seed)
    short = [a for a in judged if a.members < rule.min_members]
    if short:
        fewest = min(short, key=lambda a: a.members)
        return Verdict(
            None,
            probabilities,
            f"running: every arm needs {rule.min_members:,} members judged; "
            f"{fewest.variant} has {fewest.members:,}",
        )
    leader = max(probabilities, key=probabilities.__getitem__)
    if probabilities[leader] < rule.probability:
        return Verdict(
            None,
            probabilities,
            f"running: {leader} leads with a {probabilities[leader]:.1%} probability of being "
            f"best, {rule.probability:.0%} needed",
        )
    return Verdict(
        leader,
        probabilities,
        f"winner {leader}: a {probabilities[leader]:.1%} probability of the best "
        f"{rule.metric} rate ({by_name[leader].rate:.2%})",
    )
