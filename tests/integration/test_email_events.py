"""SendGrid's events, once landed by the webhook, suppress addresses and show engagement."""

from __future__ import annotations

import datetime as dt

from tests.support.landing import land_events
from tests.support.scenario import D, suppress, write_all


def epoch(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp())


def test_unsubscribes_and_bounces_suppress_and_engagement_is_counted(workspace):
    write_all(workspace.landing)
    suppress(workspace.warehouse, "suppressed@example.com")
    land_events(
        workspace.landing,
        "2025-11-19",
        [
            {"event": "delivered", "email": "bday@example.com", "sg_event_id": "d1",
             "timestamp": epoch("2025-11-10T10:00:00+00:00"), "contact_id": "bday"},
            {"event": "open", "email": "bday@example.com", "sg_event_id": "o1",
             "timestamp": epoch("2025-11-10T11:00:00+00:00"), "contact_id": "bday"},
            {"event": "open", "email": "bday@example.com", "sg_event_id": "o1",
             "timestamp": epoch("2025-11-10T11:00:00+00:00"), "contact_id": "bday"},
            {"event": "click", "email": "Loyal@Example.com", "sg_event_id": "c1",
             "timestamp": epoch("2025-11-11T11:00:00+00:00")},
            {"event": "bounce", "type": "blocked", "email": "zoe@example.com",
             "sg_event_id": "b1", "timestamp": epoch("2025-11-12T11:00:00+00:00")},
        ],
    )  # fmt: skip
    # An unsubscribe received after D ended, before D's send, still stops the send.
    land_events(
        workspace.landing,
        "2025-11-21",
        [{"event": "unsubscribe", "email": "lapsed@example.com", "sg_event_id": "u1",
          "timestamp": epoch("2025-11-21T05:00:00+00:00")}],
    )  # fmt: skip

    assert workspace.run(D) == 0
    assert workspace.query("select email, reason from suppression_list order by email") == [
        ("lapsed@example.com", "unsubscribe"),
        ("suppressed@example.com", "manual"),
        ("zoe@example.com", "blocked"),
    ]
    assert workspace.query(
        "select campaign, contact_id, decision from send_decisions "
        "where contact_id in ('zoe', 'lapsed') order by 1"
    ) == [("birthday", "zoe", "suppressed"), ("winback", "lapsed", "suppressed")]
    sent_to = {
        m["contact_id"] for c in ("birthday", "winback") for m in workspace.outbox_lines(D, c)
    }
    assert {"zoe", "lapsed"}.isdisjoint(sent_to)
    engagement = dict(
        (row[0], row[1:])
        for row in workspace.query(
            "select contact_id, emails_delivered, email_opens, email_clicks from customer_360 "
            "where contact_id in ('bday', 'loyal')"
        )
    )
    assert engagement == {"bday": (1, 1, 0), "loyal": (0, 0, 1)}
