"""The contact policy end to end: cool-down, priority and the daily cap, control groups and
local send times, over real nights of the pipeline."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from tests.support.landing import contact, order, write_folder
from tests.support.reference_rules import stable_unit_hash


def decisions(workspace, campaign: str) -> dict[str, str]:
    return dict(
        workspace.query(
            "select contact_id, decision from send_decisions where campaign = ?", [campaign]
        )
    )


@pytest.mark.slow  # several nights: make test-slow keeps make test within ten minutes
def test_a_reentry_within_the_cool_down_is_skipped_not_delayed(workspace):
    vip = contact("vip")
    write_folder(
        workspace.landing, "2025-01-01",
        contacts=[vip], orders=[order("o1", "vip", "2025-01-01T10:00:00Z", "2000")],
    )  # fmt: skip
    assert workspace.run("2025-01-01") == 0
    assert len(workspace.outbox_lines("2025-01-01", "loyalty")) == 1
    # A refund takes vip out of the cohort; a new purchase brings it back two days later.
    refund = order("o1", "vip", "2025-01-01T10:00:00Z", "2000", status="refunded",
                   updated_at="2025-01-02T09:00:00Z")  # fmt: skip
    write_folder(workspace.landing, "2025-01-02", orders=[refund])
    assert workspace.run("2025-01-02") == 0
    assert decisions(workspace, "loyalty") == {}
    write_folder(
        workspace.landing, "2025-01-03",
        orders=[order("o2", "vip", "2025-01-03T10:00:00Z", "1500")],
    )  # fmt: skip
    assert workspace.run("2025-01-03") == 0
    assert decisions(workspace, "loyalty") == {"vip": "cooling_down"}
    # The next night it is still the same entry: passed over for good, not delayed.
    write_folder(workspace.landing, "2025-01-04")
    assert workspace.run("2025-01-04") == 0
    assert decisions(workspace, "loyalty") == {"vip": "cooling_down"}
    assert workspace.outbox_lines("2025-01-03", "loyalty") == []
    assert workspace.outbox_lines("2025-01-04", "loyalty") == []
    # the ledger says why, from the night it was passed over
    assert workspace.query(
        "select occasion, status, error from nightjar.send_ledger order by occasion"
    ) == [
        ("2025-01-01", "accepted", None),
        ("2025-01-03", "skipped", "due within 90 days of another"),
    ]


@pytest.mark.slow  # 4 nights: make test-slow keeps make test within ten minutes
def test_one_message_a_day_the_highest_priority_first_the_rest_waits(workspace):
    # fan has its birthday on D and enters loyalty on D: birthday wins the day.
    fan = contact("fan", birth_date="1990-03-10")
    write_folder(
        workspace.landing, "2025-03-10",
        contacts=[fan], orders=[order("o1", "fan", "2025-03-10T10:00:00Z", "5000")],
    )  # fmt: skip
    assert workspace.run("2025-03-10") == 0
    assert decisions(workspace, "birthday") == {"fan": "send"}
    assert decisions(workspace, "loyalty") == {"fan": "lower_priority"}
    assert workspace.outbox_lines("2025-03-10", "loyalty") == []
    # A re-run of the night changes nothing: the birthday message used the day's allowance.
    assert workspace.run("2025-03-10") == 0
    assert decisions(workspace, "birthday") == {"fan": "already_sent"}
    assert decisions(workspace, "loyalty") == {"fan": "capped"}
    # The next day loyalty's entry is still due, and goes.
    write_folder(workspace.landing, "2025-03-11")
    assert workspace.run("2025-03-11") == 0
    assert decisions(workspace, "loyalty") == {"fan": "send"}
    assert [m["contact_id"] for m in workspace.outbox_lines("2025-03-11", "loyalty")] == ["fan"]


def test_the_control_group_is_recorded_and_never_messaged(workspace, monkeypatch):
    monkeypatch.setenv("NIGHTJAR_DBT_VARS", "")  # the default: 10% held out
    day = "2025-06-01"
    contacts = [contact(f"c{i:03d}") for i in range(60)]
    orders = [order(f"o{i:03d}", f"c{i:03d}", f"{day}T10:00:00Z", "1500") for i in range(60)]
    write_folder(workspace.landing, day, contacts=contacts, orders=orders)
    assert workspace.run(day) == 0

    held = {
        f"c{i:03d}" for i in range(60) if stable_unit_hash("loyalty", f"c{i:03d}", "nightjar") < 0.1
    }
    assert held, "the draw should hold some of 60 contacts out"
    assert {c for c, d in decisions(workspace, "loyalty").items() if d == "holdout"} == held
    messaged = {m["contact_id"] for m in workspace.outbox_lines(day, "loyalty")}
    assert messaged == {c["contact_id"] for c in contacts} - held
    assert set(
        workspace.query(
            "select contact_id, status, error from nightjar.send_ledger where status <> 'accepted'"
        )
    ) == {(c, "held_out", "in the campaign's control group") for c in held}
    # Held out for good: a re-run does not message them either.
    assert workspace.run(day) == 0
    assert {m["contact_id"] for m in workspace.outbox_lines(day, "loyalty")} == messaged


def test_each_message_is_scheduled_for_ten_local_outside_quiet_hours(workspace):
    day = "2025-06-01"
    zones = {"ny": "America/New_York", "tokyo": "Asia/Tokyo", "kolkata": "Asia/Kolkata",
             "nozone": ""}  # fmt: skip
    contacts = [contact(c, timezone=zone) for c, zone in zones.items()]
    orders = [order(f"o-{c}", c, f"{day}T10:00:00Z", "1500") for c in zones]
    write_folder(workspace.landing, day, contacts=contacts, orders=orders)
    before = dt.datetime.now(dt.UTC)
    assert workspace.run(day) == 0

    messages = workspace.outbox_lines(day, "loyalty")
    assert len(messages) == 4
    for message in messages:
        send_at = dt.datetime.fromisoformat(message["send_at"])
        assert message["send_at_unix"] == int(send_at.timestamp())
        zone = zoneinfo.ZoneInfo(zones[message["contact_id"]] or "UTC")  # the default zone
        local = send_at.astimezone(zone)
        assert (local.hour, local.minute) == (10, 0)
        # the first 10:00 after the decisions were made, so well within SendGrid's 72 hours
        assert before - dt.timedelta(minutes=5) < send_at < before + dt.timedelta(hours=25)
    ledger = dict(workspace.query("select contact_id, send_at from nightjar.send_ledger"))
    assert {m["contact_id"]: m["send_at"] for m in messages} == {
        c: v.isoformat() for c, v in ledger.items()
    }
