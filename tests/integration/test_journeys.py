"""Journeys night after night on a planted landing: who gets which step on which night, who
exits and why, and that no step ever goes twice (docs/contract.md §15).

The landing starts on 2026-02-26 with a history folder; one folder is released per night.
Contacts created long before then are outside the welcome's window: only the planted ones
enter it."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path

import pytest

from tests.support.landing import contact, event, order, write_folder

OLD = "2024-01-01T00:00:00Z"
FIRST = dt.date(2026, 2, 26)

# Ten nights and a re-run and a backfill, about two minutes: make test-slow (run by .ci/run)
# keeps make test within ten minutes.
pytestmark = pytest.mark.slow


def _day(offset: int) -> str:
    return (FIRST + dt.timedelta(days=offset)).isoformat()


def _history(landing: Path) -> None:
    contacts = [
        contact("welcomed", created_at="2026-02-26T09:00:00Z", updated_at="2026-02-26T09:00:00Z"),
        contact("welcome_buyer", created_at="2026-02-26T10:00:00Z",
                updated_at="2026-02-26T10:00:00Z"),
        # a birthday (priority 300) the night it enters: welcome_1 goes the next night
        contact("busy", birth_date="1990-02-26", created_at="2026-02-26T11:00:00Z",
                updated_at="2026-02-26T11:00:00Z"),
        contact("cart", created_at=OLD),
        contact("cart_bought", created_at=OLD),
        contact("cart_buys_next_day", created_at=OLD),
        contact("cart_twice", created_at=OLD),
        contact("leapling", created_at=OLD),
        contact("follower", created_at=OLD),
        contact("refunder", created_at=OLD),
        contact("lapsed", created_at=OLD),
    ]  # fmt: skip
    orders = [
        # a first order on 29 February: its anniversary is 28 February in 2026
        order("o-leap", "leapling", "2024-02-29T10:00:00Z", "30"),
        order("o-leap-2", "leapling", "2026-01-10T10:00:00Z", "30"),
        # first orders 14 days before the second night: a follow-up, unless refunded
        order("o-follow", "follower", "2026-02-13T10:00:00Z", "40"),
        order("o-refund", "refunder", "2026-02-13T10:00:00Z", "40", status="refunded",
              updated_at="2026-02-20T10:00:00Z"),
        # a lapse reaching 180 days on the second night
        order("o-lapsed", "lapsed", "2025-08-31T10:00:00Z", "25"),
    ]  # fmt: skip
    write_folder(landing, _day(0), contacts, orders, [])


def _cart_events(day: str, contact_id: str, *items: tuple[str, str, str]) -> list[dict]:
    """A logged-in visitor adding (time, sku, value) items to its cart on `day`."""
    visitor = f"v-{contact_id}"
    rows = [event(f"{visitor}-{day}-login", visitor, f"{day}T08:00:00Z", name="login",
                  contact_id=contact_id)]  # fmt: skip
    for time, sku, value in items:
        rows.append(
            event(f"{visitor}-{day}-{time}", visitor, f"{day}T{time}Z", name="add_to_cart",
                  sku=sku, value=value)
        )  # fmt: skip
    return rows


def _nights() -> dict[int, dict[str, list]]:
    """The orders and events of nights 1 to 9 (2026-02-27 .. 2026-03-07)."""
    folders: dict[int, dict[str, list]] = defaultdict(lambda: {"orders": [], "events": []})
    # night 1: welcome_buyer buys; three carts
    folders[1]["orders"].append(order("o-wb", "welcome_buyer", f"{_day(1)}T12:00:00Z", "20"))
    folders[1]["events"] += _cart_events(
        _day(1),
        "cart",
        ("10:00:00", "SKU-1", "10"),
        ("10:05:00", "SKU-2", "15"),
        ("10:06:00", "SKU-1", "12"),
    )
    folders[1]["events"] += _cart_events(_day(1), "cart_bought", ("10:00:00", "SKU-3", "5"))
    folders[1]["orders"].append(order("o-cb", "cart_bought", f"{_day(1)}T11:00:00Z", "5"))
    folders[1]["events"] += _cart_events(_day(1), "cart_buys_next_day", ("10:00:00", "SKU-4", "9"))
    folders[1]["events"] += _cart_events(_day(1), "cart_twice", ("10:00:00", "SKU-5", "7"))
    # night 2: cart_buys_next_day buys on the web before its first reminder; a newer cart
    folders[2]["events"].append(
        event("v-cbnd-purchase", "v-cart_buys_next_day", f"{_day(2)}T07:00:00Z", name="purchase")
    )
    folders[2]["events"] += _cart_events(_day(2), "cart_twice", ("18:00:00", "SKU-6", "8"))
    return folders


@pytest.fixture(scope="module")
def nights(module_workspace):
    """Run the first night and nine more, one folder released per night; the outbox lines
    of every journey by night."""
    ws = module_workspace
    _history(ws.landing)
    folders = _nights()
    sent: dict[str, list[tuple]] = defaultdict(list)  # contact -> (night, journey, step, occasion)
    for night in range(0, 10):
        if night:
            f = folders[night]
            write_folder(ws.landing, _day(night), [], f["orders"], f["events"])
        assert ws.run(_day(night)) == 0, f"night {_day(night)} failed"
    for night in range(0, 10):
        folder = ws.outbox / _day(night)
        for path in sorted(folder.glob("*.jsonl")) if folder.exists() else ():
            for line in ws.outbox_lines(_day(night), path.stem):
                sent[line["contact_id"]].append(
                    (_day(night), path.stem, line.get("step"), line["occasion"])
                )
    return ws, sent


def _steps(sent, contact_id, journey):
    return [(night, step) for night, name, step, _ in sent[contact_id] if name == journey]


def test_welcome_sends_its_three_steps_on_their_nights(nights):
    _, sent = nights
    assert _steps(sent, "welcomed", "welcome") == [
        (_day(0), "welcome_1"),
        (_day(2), "welcome_2"),
        (_day(7), "welcome_3_incentive"),
    ]


def test_a_purchase_between_two_steps_ends_the_welcome(nights):
    ws, sent = nights
    assert _steps(sent, "welcome_buyer", "welcome") == [(_day(0), "welcome_1")]
    assert ws.query(
        "select status, end_reason, ended_on from nightjar.journey_instances "
        "where journey = 'welcome' and contact_id = 'welcome_buyer'"
    ) == [("exited", "purchased", FIRST + dt.timedelta(days=1))]


def test_a_step_held_back_by_a_higher_priority_goes_the_next_night(nights):
    _, sent = nights
    assert [(n, name) for n, name, _, _ in sent["busy"]][:2] == [
        (_day(0), "birthday"),
        (_day(1), "welcome"),
    ]
    # the wait of step 2 counts from the night step 1 went
    assert _steps(sent, "busy", "welcome")[:2] == [(_day(1), "welcome_1"), (_day(3), "welcome_2")]


def test_abandoned_cart_reminds_twice_with_the_cart(nights):
    _, sent = nights
    assert _steps(sent, "cart", "abandoned_cart") == [
        (_day(2), "cart_reminder_1"),
        (_day(4), "cart_reminder_2"),
    ]


def test_the_cart_line_carries_its_items_most_recent_first(nights):
    ws, _ = nights
    (line,) = [
        row for row in ws.outbox_lines(_day(2), "abandoned_cart") if row["contact_id"] == "cart"
    ]
    assert line["journey"] == "abandoned_cart" and line["step"] == "cart_reminder_1"
    assert line["occasion"] == _day(1)
    assert line["data"]["cart_items"] == [
        {"sku": "SKU-1", "value": 12.0},
        {"sku": "SKU-2", "value": 15.0},
    ]
    assert line["data"]["cart_value"] == 27.0


def test_a_cart_bought_the_same_day_or_before_its_reminder_gets_none(nights):
    ws, sent = nights
    assert _steps(sent, "cart_bought", "abandoned_cart") == []
    assert _steps(sent, "cart_buys_next_day", "abandoned_cart") == []
    assert ws.query(
        "select end_reason from nightjar.journey_instances "
        "where journey = 'abandoned_cart' and contact_id = 'cart_buys_next_day'"
    ) == [("purchased",)]


def test_a_newer_cart_replaces_the_older(nights):
    ws, sent = nights
    assert _steps(sent, "cart_twice", "abandoned_cart") == [
        (_day(2), "cart_reminder_1"),
        (_day(3), "cart_reminder_1"),
        (_day(5), "cart_reminder_2"),
    ]
    assert ws.query(
        "select occasion, status, end_reason from nightjar.journey_instances "
        "where journey = 'abandoned_cart' and contact_id = 'cart_twice' order by occasion"
    ) == [(_day(1), "exited", "newer_cart"), (_day(2), "finished", None)]


def test_the_first_order_anniversary_of_29_february_falls_on_28_february(nights):
    _, sent = nights
    assert _steps(sent, "leapling", "first_order_anniversary") == [(_day(2), "anniversary")]


def test_the_follow_up_goes_14_days_after_a_first_order_not_refunded(nights):
    _, sent = nights
    assert _steps(sent, "follower", "first_purchase_followup") == [(_day(1), "feedback_request")]
    assert _steps(sent, "refunder", "first_purchase_followup") == []


def test_winback_step_1_goes_when_the_lapse_reaches_180_days(nights):
    _, sent = nights
    assert _steps(sent, "lapsed", "winback") == [(_day(1), "winback_1")]


def test_no_step_goes_twice_and_every_step_sent_is_in_the_ledger(nights):
    ws, sent = nights
    keys = [
        (c, name, f"{occasion}#{step}", step)
        for c, lines in sent.items()
        for _, name, step, occasion in lines
        if step
    ]
    assert len(keys) == len(set(keys))
    ledger = ws.query(
        "select contact_id, campaign, occasion, step from nightjar.send_ledger "
        "where step is not null and status = 'accepted'"
    )
    assert sorted(ledger) == sorted(keys)


def test_explain_says_where_a_contact_stands_in_each_journey(nights):
    from models.settings import load_settings
    from pipelines.explain import explain

    _ws, _ = nights
    lines = explain(load_settings(), FIRST + dt.timedelta(days=9), "welcome_buyer")
    text = "\n".join(lines)
    assert "  welcome: no step due\n" in text + "\n", text
    assert (
        "    journey: occasion welcome_buyer, entered 2026-02-26: exited on 2026-02-27 "
        "(purchased), last step welcome_1 on 2026-02-26"
    ) in text, text


def test_a_night_run_again_or_a_backfill_sends_nothing_new(nights):
    ws, _ = nights
    before = ws.query("select count(*), max(updated_at) from nightjar.journey_instances")
    ledger = ws.query("select count(*) from nightjar.send_ledger")[0][0]
    for night in (_day(9), _day(4)):
        assert ws.run(night) == 0
        assert ws.query("select count(*) from nightjar.send_ledger")[0][0] == ledger
    # the backfill left the journeys' state as the latest night had it
    after = ws.query("select count(*), max(updated_at) from nightjar.journey_instances")
    assert after[0][0] == before[0][0]
