"""Issue 13, class 2: no row can hold a batch hostage.

Fields are bounded from the landing to SendGrid; requests are sized by bytes as well as by
personalizations; a message SendGrid refuses for itself, named or not, is set aside and the
rest of its batch goes.
"""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest

from assets.shared.warehouse import connect, ensure_schema
from senders.base import Message
from senders.delivery import Delivery, SendSummary
from senders.dispatch import variant_batches
from senders.ledger import Ledger
from senders.sendgrid import MAX_REQUEST_BYTES, SendGridSender
from tests.support.landing import contact, order, write_folder
from tests.support.messages import message
from tests.support.scenario import D, write_all
from tests.support.sendgrid_server import SendGridTestServer

API_KEY = "SG.test-key"
DAY = dt.date.fromisoformat(D)


@pytest.fixture
def server():
    with SendGridTestServer(api_key=API_KEY) as running:
        yield running


def deliver(workspace, server, messages: list[Message]) -> tuple[SendSummary, dict[str, str]]:
    """Send `messages` as a campaign's send would; (summary, ledger status per send_id)."""
    sender = SendGridSender(API_KEY, server.url, base_delay=0.01)
    with connect(workspace.warehouse) as con:
        ensure_schema(con)
        ledger = Ledger(con)
        ledger.plan(
            [(m.send_id, m.campaign, m.contact_id, m.occasion, None, None) for m in messages],
            DAY,
            "sendgrid",
        )
        summary = SendSummary("loyalty", DAY, "sendgrid")
        planned = list(variant_batches(messages, sender))
        Delivery(sender, ledger, DAY, summary, withheld=lambda b: {}, settled=lambda b: True).run(
            planned
        )
        statuses = dict(con.execute("select send_id, status from nightjar.send_ledger").fetchall())
        suppressed = con.execute("select count(*) from nightjar.suppressions").fetchall()[0][0]
    assert suppressed == 0, "a message refused for its content does not suppress its address"
    return summary, statuses


def test_monstrous_fields_landing_tonight_are_quarantined_and_everyone_else_is_messaged(
    workspace, server, monkeypatch
):
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
    monkeypatch.setenv("SENDGRID_API_HOST", server.url)
    write_all(workspace.landing)
    huge = [
        # two loyal customers with 10 MB names: a 30 MB request, refused whole (413), before
        contact("giant_a", first_name="A" * 10_000_000),
        contact("giant_b", last_name="B" * 10_000_000),
        # a 10 KB id overflows SendGrid's custom_args (10,000 bytes): a 400, before
        contact("x" * 10_000),
    ]
    for day, row in zip(("2025-11-16", "2025-11-17", "2025-11-18"), huge, strict=True):
        spend = order(f"o-{day}", row["contact_id"], f"{day}T10:00:00Z", "5000")
        write_folder(workspace.landing, day, contacts=[row], orders=[spend])

    assert workspace.run(D) == 0
    assert server.rejected == []
    sent = {
        p["custom_args"]["contact_id"]: p for b in server.accepted for p in b["personalizations"]
    }
    # the giants are loyal customers, messaged without the names that could not be kept
    assert {"giant_a", "giant_b", "loyal"} <= set(sent)
    assert sent["giant_a"]["dynamic_template_data"]["first_name"] is None
    assert max(len(c) for c in sent) <= 255
    assert set(workspace.query("select column_name, rule, action from raw.quarantine")) == {
        ("first_name", "at most 255 characters long", "value_removed"),
        ("last_name", "at most 255 characters long", "value_removed"),
        ("contact_id", "at most 255 characters long", "row_quarantined"),
        ("email", "at most 254 characters long", "value_removed"),  # its x...x@example.com
    }
    # the quarantine shows a value's beginning, never megabytes of it
    assert max(len(v) for (v,) in workspace.query("select value from raw.quarantine")) < 120


def test_requests_are_sized_by_bytes_as_well_as_by_personalizations():
    sender = SendGridSender(API_KEY, "http://127.0.0.1:9")
    big = [message(n, data={"notes": "n" * (8 * 1024 * 1024)}) for n in range(5)]
    small = [message(n) for n in range(5, 1005)]
    split = variant_batches(big + small, sender)
    # the 1,000 with the giants again by each one's size: two of 8 MB fit in 20 MB, not three
    assert [len(b) for b in split] == [997, 2, 1, 5]
    for batch in split:
        assert len(sender.request_body(batch)["personalizations"]) <= 1000
        assert sender.messages_bytes(batch) <= MAX_REQUEST_BYTES


def test_a_message_is_never_weighed_under_its_size_whatever_its_fields_hold():
    """Requests are weighed by a bound, not by building them: no field, however spelled,
    makes a message's JSON longer than its bound, so no request goes over SendGrid's limit."""
    from senders.sendgrid import _personalization, _personalization_bytes_at_most

    rng = random.Random(20)
    # one character of each way JSON spells one: as is, escaped, \\u00XX, a surrogate pair
    every_kind = ["a", " ", '"', "\\", "\n", "\x00", "\x1f", "\x7f", "é", "\u2028",
                  "\ufeff", "😀", "\U0001d518", "\ud800"]  # fmt: skip
    alphabet = every_kind

    def text(most: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, most)))

    def value(depth: int = 0):
        kinds = [text(300), rng.randint(-(10**30), 10**30), rng.random() * 10**20, float("inf"),
                 None, True, False, dt.time(12, 5), dt.timedelta(3), b"\x00'"]  # fmt: skip
        if depth < 2:
            kinds += [[value(depth + 1) for _ in range(3)], {text(5): value(depth + 1), 7: text(3)}]
        return rng.choice(kinds)

    for n in range(600):
        # every third message the worst case: each character 12 bytes of JSON
        alphabet = ["😀"] if n % 3 == 0 else every_kind
        m = message(
            n,
            contact_id=text(300) or "c",
            to_email=text(300),
            to_name=text(300) or None,
            subject=text(300),
            occasion=text(300),
            step=text(300) or None,
            variant=text(300) or None,
            topic=text(300) or None,
            campaign=text(300),
            send_id=text(300),
            data={text(8): value() for _ in range(rng.randint(0, 6))},
            headers={"List-Unsubscribe": f"<https://x.example/u/{text(300)}>"},
            send_at=dt.datetime(2025, 11, 20, 9, tzinfo=dt.UTC),
        )
        size = len(json.dumps(_personalization(m), default=str).encode())
        assert size <= _personalization_bytes_at_most(m), n


def test_a_message_sendgrid_refuses_for_a_named_field_is_set_aside_alone(workspace, server):
    messages = [message(n) for n in range(300)]
    messages[117] = message(117, contact_id="c" * 10_000)  # custom_args over 10,000 bytes
    summary, statuses = deliver(workspace, server, messages)
    assert (summary.sent, summary.refused, summary.failed) == (299, 1, 0)
    assert statuses.pop("send-117") == "refused"
    assert set(statuses.values()) == {"accepted"}
    assert len(server.accepted) == 1  # the rest went in the same request, sent again


def test_a_message_too_big_for_any_request_is_set_aside_and_the_rest_goes(workspace, server):
    messages = [message(n) for n in range(1000)]
    messages[613] = message(613, data={"notes": "n" * (31 * 1024 * 1024)})  # SendGrid: 413
    summary, statuses = deliver(workspace, server, messages)
    assert (summary.sent, summary.refused, summary.failed) == (999, 1, 0)
    assert statuses.pop("send-613") == "refused"
    assert set(statuses.values()) == {"accepted"}
    assert server.rejected == []  # never uploaded: no request may hold it


def test_a_refusal_that_names_nothing_is_narrowed_down_by_halving(workspace, server):
    server.fail_next(400)  # a reason SendGrid did not tie to a field, once
    summary, statuses = deliver(workspace, server, [message(n) for n in range(1000)])
    assert summary.ok and summary.sent == 1000
    assert set(statuses.values()) == {"accepted"}
    assert [len(b["personalizations"]) for b in server.accepted] == [500, 500]


def test_a_fault_of_every_request_stops_halving_and_refuses_no_message_for_good(workspace, server):
    server.fail_next(400, count=1000)
    summary, statuses = deliver(workspace, server, [message(n) for n in range(1000)])
    assert summary.refused == 0 and summary.failed == 1000
    assert set(statuses.values()) == {"failed"}  # all sent again by the next run
    assert len(server.rejected) <= 101  # the halving budget, not 2,000 requests
