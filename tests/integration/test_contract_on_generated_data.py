"""On generated landings, Nightjar's cohorts are the contract's, contact for contact."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.demo.sample_data import generate_landing
from tests.support.reference_rules import expected_as_of


@pytest.mark.parametrize(
    ("days", "end"),
    [
        (1, "2025-06-30"),  # a first night: one folder
        # months of history loaded in one catch-up run: half a minute, make test-slow
        pytest.param(250, "2025-11-20", marks=pytest.mark.slow),
        # 29 February birthdays in a year without one (the dbt unit tests cover it too)
        pytest.param(90, "2025-02-28", marks=pytest.mark.slow),
    ],
)
def test_cohorts_and_spend_match_the_contract(workspace, days, end, monkeypatch):
    monkeypatch.setenv("NIGHTJAR_DBT_VARS", "")  # the default control groups: 10%
    business_date = dt.date.fromisoformat(end)
    generate_landing(workspace.landing, contacts=400, days=days, end=business_date, seed=days)
    assert workspace.run(end) == 0

    expected = expected_as_of(workspace.landing, business_date)
    assert workspace.ids("cohort_loyalty") == expected.loyalty
    # winback's entrants, each lapse named by its last purchase date
    occasions = workspace.query("select contact_id, occasion::varchar from journey_winback")
    assert dict(occasions) == expected.reactivation_occasions
    assert workspace.ids("journey_winback") == expected.reactivation
    assert workspace.ids("cohort_birthday") == expected.birthday
    # The landing must exercise the rules, not agree on empty sets.
    assert expected.birthday
    if days > 1:
        assert expected.loyalty
    if days > 180:
        assert expected.reactivation

    # Every member has one decision, and exactly the members decided 'send' get a message.
    rows = workspace.query(
        "select campaign, contact_id, decision, priority, step, occasion from send_decisions"
    )
    decisions = {(campaign, contact): decision for campaign, contact, decision, *_ in rows}
    assert len(decisions) == len(rows)
    # winback's first step is due for every lapse the night it is seen
    assert {
        (contact, step, occasion) for campaign, contact, _, _, step, occasion in rows
        if campaign == "winback"
    } == {
        (contact, "winback_1", f"{last}#winback_1")
        for contact, last in expected.reactivation_occasions.items()
    }  # fmt: skip
    # The other journeys' entry rules are not written a second time: their steps due tonight
    # (not skipped as too late) are taken from Nightjar, and compete with the rest by priority.
    skipped = {"too_late", "condition_not_met"}
    others = {
        (campaign, contact): priority
        for campaign, contact, decision, priority, *_ in rows
        if campaign not in ("birthday", "loyalty", "winback") and decision not in skipped
    }
    assert {k: d for k, d in decisions.items() if d not in skipped} == (
        expected.first_night_decisions(holdout_share=0.1, others=others)
    )
    if days > 1:  # enough members to exercise every rule
        assert {"holdout", "send"} <= set(decisions.values())
    if days > 180:
        assert "opted_out" in decisions.values()
    for campaign in {"birthday", "loyalty", "winback"} | {c for c, _ in decisions}:
        messaged = [m["contact_id"] for m in workspace.outbox_lines(end, campaign)]
        assert sorted(messaged) == sorted(
            contact for (c, contact), d in decisions.items() if c == campaign and d == "send"
        )

    actual = {
        cid: {"total_spend": float(total), "spend_730d": float(recent), "last_purchase_date": last}
        for cid, total, recent, last in workspace.query(
            "select contact_id, total_spend, spend_730d, last_purchase_date from customer_360"
        )
    }
    assert actual == expected.customers
    if end.endswith("02-28"):
        leaplings = workspace.query(
            "select count(*) from cohort_birthday where strftime(birth_date, '%m-%d') = '02-29'"
        )
        assert leaplings[0][0] > 0
