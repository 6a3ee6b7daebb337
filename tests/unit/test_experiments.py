"""An A/B test's winner rule: Beta-Binomial posteriors, judged only once every arm is large
enough, and the same figures always giving the same verdict."""

from __future__ import annotations

import re

import pytest

from models.campaigns import CampaignConfigError, parse_campaign
from models.experiments import Arm, WinnerRule, judge, probability_best

RULE = WinnerRule(metric="click", min_members=500, probability=0.9)


def test_a_clear_leader_with_enough_members_wins():
    verdict = judge(RULE, [Arm("a", 500, 50), Arm("b", 500, 80)], ["a", "b"], seed="t")
    assert verdict.winner == "b"
    assert verdict.probabilities["b"] > 0.99
    assert verdict.reason.startswith("winner b: a 99.")


def test_not_before_every_arm_has_its_members():
    verdict = judge(RULE, [Arm("a", 499, 0), Arm("b", 900, 500)], ["a", "b"], seed="t")
    assert verdict.winner is None
    assert verdict.reason == "running: every arm needs 500 members judged; a has 499"
    # an arm with no send yet is an arm of none
    assert judge(RULE, [Arm("b", 900, 500)], ["a", "b"], seed="t").winner is None


def test_not_while_the_leader_is_short_of_the_probability():
    verdict = judge(RULE, [Arm("a", 500, 50), Arm("b", 500, 52)], ["a", "b"], seed="t")
    assert verdict.winner is None
    assert verdict.reason.startswith("running: b leads with a 5")
    assert verdict.reason.endswith("90% needed")


def test_the_estimate_is_the_posterior_and_the_same_every_time():
    # Beta(3, 1) against Beta(1, 2): P(X > Y) = 6/4 - 3/5 = 0.9 exactly
    arms = [Arm("b", 2, 2), Arm("a", 1, 0)]
    first = probability_best(arms, seed="t")
    assert first["b"] == pytest.approx(0.9, abs=0.005)
    assert sum(first.values()) == pytest.approx(1.0)
    assert probability_best(arms, seed="t") == first
    # three arms: the best of them is found among all
    three = probability_best([Arm("a", 1000, 100), Arm("b", 1000, 100), Arm("c", 1000, 150)], "t")
    assert three["c"] > 0.99


BLOCK = {
    "name": "test", "template_id": "d-1", "subject": "Hi", "from_email": "a@b.example",
    "occasion_column": "entered_on",
    "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}],
}  # fmt: skip


@pytest.mark.parametrize(
    ("winner", "message"),
    [
        ({"metric": "opens"}, "winner.metric: one of conversion, click, not 'opens'"),
        ({"probability": 1}, "winner.probability: must be a number from 0.5 to 0.9999"),
        ({"min_members": 0}, "winner.min_members: must be a whole number from 1"),
        ({"min_member": 10}, "unknown key(s) min_member (did you mean min_members?)"),
        ("yes", "winner: a mapping of metric, min_members and probability"),
    ],
)
def test_a_winner_rule_is_checked_before_the_night(winner, message):
    with pytest.raises(CampaignConfigError, match=re.escape(message)):
        parse_campaign("cohort_test", {**BLOCK, "winner": winner})


def test_a_winner_rule_needs_variants_and_has_defaults():
    with pytest.raises(CampaignConfigError, match="a winner needs at least two variants"):
        parse_campaign("cohort_test", {**BLOCK, "variants": [], "winner": {}})
    assert parse_campaign("cohort_test", {**BLOCK, "winner": {}}).winner == WinnerRule(
        "conversion", 500, 0.9
    )
