"""Issue 13, class 4: a late unsubscribe stops the send, and stale decisions are refused.

The decisions read the suppression list as the night's load left it; an unsubscribe that
reaches the webhook afterwards, before the message leaves, must still stop it.
"""

from __future__ import annotations

import assets.sends
from tests.landing import land_events
from tests.scenario import NEXT_DAY, D, write_all, write_next_day

LOYAL = "loyal@example.com"


def test_an_unsubscribe_landing_between_the_decisions_and_the_send_stops_the_message(
    workspace, monkeypatch
):
    write_all(workspace.landing)
    real_send = assets.sends.send_campaign

    def unsubscribe_first(campaign, day, *args, **kwargs):
        # The webhook lands an unsubscribe after send_decisions was built, before the send.
        land_events(
            workspace.landing,
            D,
            [{"event": "unsubscribe", "email": LOYAL.upper(), "sg_event_id": "late-1",
              "timestamp": 1763632800}],
        )  # fmt: skip
        return real_send(campaign, day, *args, **kwargs)

    monkeypatch.setattr(assets.sends, "send_campaign", unsubscribe_first)
    assert workspace.run(D) == 0
    decided = workspace.query(
        "select decision from send_decisions where campaign = 'loyalty' and contact_id = 'loyal'"
    )
    assert decided == [("send",)]  # decided before the unsubscribe came
    assert "loyal" not in {m["contact_id"] for m in workspace.outbox_lines(D, "loyalty")}
    assert workspace.outbox_lines(D, "loyalty"), "the rest of the campaign went"
    assert workspace.query(
        "select status, error from nightjar.send_ledger where contact_id = 'loyal'"
    ) == [("withdrawn", "suppressed after the decisions were made (unsubscribe)")]

    # The next night the suppression list has it: decided suppressed, never sent.
    monkeypatch.setattr(assets.sends, "send_campaign", real_send)
    write_next_day(workspace.landing)
    assert workspace.run(NEXT_DAY) == 0
    assert workspace.query(
        "select decision from send_decisions where contact_id = 'loyal' and campaign = 'loyalty'"
    ) == [("suppressed",)]
    assert not any(m["contact_id"] == "loyal" for m in workspace.outbox_lines(NEXT_DAY, "loyalty"))


def test_decisions_older_than_the_setting_are_refused_and_nothing_is_sent(
    workspace, monkeypatch, capsys
):
    write_all(workspace.landing)
    # Decisions take seconds to build, so at the send they are older than 0.006 s.
    monkeypatch.setenv("NIGHTJAR_MAX_DECISION_AGE_MINUTES", "0.0001")
    assert workspace.run(D) == 1
    err = capsys.readouterr().err
    assert "more than NIGHTJAR_MAX_DECISION_AGE_MINUTES=0.0001" in err
    assert "nightjar run --date 2025-11-20" in err
    assert not (workspace.outbox / D).exists()
    assert workspace.query("select count(*) from nightjar.send_ledger") == [(0,)]

    monkeypatch.setenv("NIGHTJAR_MAX_DECISION_AGE_MINUTES", "")  # the default: an hour
    assert workspace.run(D) == 0
    assert workspace.outbox_lines(D, "loyalty")
