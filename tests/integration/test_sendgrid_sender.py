"""The SendGrid way out, with the real client against the strict local test server."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time

import pytest

from assets.sends.campaigns import send_campaign
from assets.shared.warehouse import connect, ensure_schema
from models.settings import load_settings
from senders.base import Message, batches
from senders.outbox import OutboxSender, outbox_lines
from senders.sendgrid import SendGridSender
from tests.support.decisions import NEWS, decide_to_send_everyone
from tests.support.landing import land_events
from tests.support.scenario import NEXT_DAY, D, suppress, write_all
from tests.support.sendgrid_server import SendGridTestServer

API_KEY = "SG.test-key"
DAY = dt.date.fromisoformat(D)


def message(n: int, email: str | None = None) -> Message:
    return Message(
        send_id=f"send-{n}",
        campaign="birthday",
        contact_id=f"c{n}",
        occasion="2026",
        to_email=email or f"person{n}@example.com",
        to_name=f"Person {n}",
        template_id="d-10000000000000000000000000000003",
        subject="Happy birthday",
        from_email="hello@shop.example.com",
        from_name="Shop",
        categories=("lifecycle", "birthday"),
        data={"first_name": f"Person {n}"},
    )


@pytest.fixture
def server():
    with SendGridTestServer(api_key=API_KEY) as running:
        yield running


@pytest.fixture
def waits():
    return []


@pytest.fixture
def sender(server, waits):
    return SendGridSender(API_KEY, server.url, timeout=5, sleep=waits.append, base_delay=0.01)


def test_a_cohort_s_text_and_numbers_reach_sendgrid_as_the_warehouse_holds_them(workspace, server):
    """NaN and infinities, which JSON cannot spell, arrive as null (json.dumps wrote `NaN`,
    which SendGrid's parser refuses, and the strict server too now)."""
    news = dataclasses.replace(NEWS, template_data=("greeting", "score"))
    greeting = 'Zoë Ångström 🎂 \U0001d518 "hi" \\ tab\t line\u2028 end'
    with connect(workspace.warehouse) as con:
        ensure_schema(con)
        con.execute(
            """
            create table main.cohort_news as
            select printf('C%d', i) as contact_id, printf('c%d@example.com', i) as email,
                'N' as first_name, 'M' as last_name, 'first' as edition, ?::date as as_of_date,
                ? as greeting, ['1.5', 'nan', 'inf', '-inf'][i + 1]::double as score
            from range(4) as t(i)
            """,
            [D, greeting],
        )
        decide_to_send_everyone(con, news)
    settings = load_settings()
    sender = SendGridSender(API_KEY, server.url, timeout=5)
    assert send_campaign(news, DAY, settings, sender).sent == 4
    (body,) = server.accepted
    got = {
        p["custom_args"]["contact_id"]: p["dynamic_template_data"] for p in body["personalizations"]
    }
    scores = {"C0": 1.5, "C1": None, "C2": None, "C3": None}
    wanted = {contact: {"greeting": greeting, "score": score} for contact, score in scores.items()}
    assert got == {contact: {**data, "subject": "News"} for contact, data in wanted.items()}
    # the outbox's lines say the same, in JSON a strict reader takes
    news2 = dataclasses.replace(news, name="news2")
    with connect(workspace.warehouse) as con:
        decide_to_send_everyone(con, news2)
    outbox = OutboxSender(settings.outbox)
    assert send_campaign(news2, DAY, settings, outbox).sent == 4
    lines = outbox_lines(outbox.path(DAY, "news2"))
    records = [json.loads(line, parse_constant=pytest.fail) for line in lines]
    assert {record["contact_id"]: record["data"] for record in records} == wanted


def test_values_orjson_will_not_write_reach_sendgrid_as_json_dumps_writes_them(server, sender):
    """The bodies are written by orjson, by json.dumps when a value is one orjson will not
    write (an integer past 64 bits, a lone surrogate): SendGrid reads the same data either
    way, in the same order."""
    texts = {"text": 'Zoë 🎂 "hi" \\ \x00 \u2028', "n": 2**63 - 1, "cart": [{"sku": "A", "qty": 2}]}
    odd = {**texts, "big": 10**30, "lone": "a\ud800b"}
    batch = [dataclasses.replace(message(1), data=texts), dataclasses.replace(message(2), data=odd)]
    assert sender.send_batch(DAY, batch[:1]).accepted and sender.send_batch(DAY, batch).accepted
    got = [
        [p["dynamic_template_data"] for p in body["personalizations"]] for body in server.accepted
    ]
    wanted = [{**m.data, "subject": m.subject} for m in batch]
    assert got == [wanted[:1], wanted]
    assert [list(data) for data in got[1]] == [list(data) for data in wanted]


def test_a_send_time_beyond_72_hours_fails_the_request(server, sender):
    too_late = dt.datetime.now(dt.UTC) + dt.timedelta(hours=73)
    late = dataclasses.replace(message(1), send_at=too_late)
    outcome = sender.send_batch(DAY, [late, message(2)])
    # not an address SendGrid refuses: the request is at fault, and nothing is refused for good
    assert not outcome.accepted and not outcome.refused
    assert "72 hours" in outcome.error


def test_a_variant_travels_in_custom_args_and_each_template_gets_its_own_request(sender):
    gold = dataclasses.replace(message(1), variant="gold")
    black = dataclasses.replace(message(2), variant="black", template_id="d-2")
    assert sender.request_body([gold])["personalizations"][0]["custom_args"]["variant"] == "gold"
    with pytest.raises(ValueError, match="one template"):
        sender.request_body([gold, black])


def test_a_batch_is_one_valid_request_with_custom_args_per_recipient(server, sender):
    outcome = sender.send_batch(DAY, [message(1), message(2)])
    assert outcome.accepted and outcome.provider_message_id == server.message_ids[0]
    (body,) = server.accepted
    assert [p["to"] for p in body["personalizations"]] == [
        [{"email": "person1@example.com", "name": "Person 1"}],
        [{"email": "person2@example.com", "name": "Person 2"}],
    ]
    assert body["personalizations"][0]["custom_args"] == {
        "campaign": "birthday",
        "contact_id": "c1",
        "send_id": "send-1",
        "occasion": "2026",
    }
    assert body["personalizations"][0]["dynamic_template_data"] == {
        "first_name": "Person 1",
        "subject": "Happy birthday",
    }
    assert body["categories"] == ["lifecycle", "birthday"]
    assert "mail_settings" not in body
    assert server.rejected == []


def test_sandbox_mode_is_switched_on_in_the_request(server, waits):
    sandboxed = SendGridSender(API_KEY, server.url, sandbox=True, sleep=waits.append)
    assert sandboxed.send_batch(DAY, [message(1)]).accepted
    assert server.accepted[0]["mail_settings"] == {"sandbox_mode": {"enable": True}}


@pytest.mark.slow  # several nights: make test-slow (.ci/run)
def test_a_sandbox_rehearsal_uses_up_no_occasion(sendgrid_workspace, server, monkeypatch):
    monkeypatch.setenv("SENDGRID_SANDBOX", "true")
    assert sendgrid_workspace.run(D) == 0
    assert len(_personalizations(server)) == 7
    assert sendgrid_workspace.query("select count(*) from nightjar.send_ledger") == [(0,)]
    monkeypatch.setenv("SENDGRID_SANDBOX", "false")
    assert sendgrid_workspace.run(D) == 0  # going live sends every message for real
    live = [b for b in server.accepted if "mail_settings" not in b]
    assert sum(len(b["personalizations"]) for b in live) == 7


def test_429_waits_until_the_rate_limit_resets_then_succeeds(server, sender, waits):
    server.fail_next(429, headers={"X-RateLimit-Reset": str(int(time.time()) + 3)})
    outcome = sender.send_batch(DAY, [message(1)])
    assert outcome.accepted
    assert len(waits) == 1 and 1.5 < waits[0] <= 4.0
    assert len(server.accepted) == 1


def test_5xx_is_retried_with_backoff(server, sender, waits):
    server.fail_next(500)
    server.fail_next(503)
    assert sender.send_batch(DAY, [message(1)]).accepted
    assert len(waits) == 2 and waits[0] <= waits[1] * 2
    assert len(server.accepted) == 1


def test_retries_are_bounded(server, waits):
    impatient = SendGridSender(API_KEY, server.url, max_attempts=3, sleep=waits.append)
    server.fail_next(500, count=5)
    outcome = impatient.send_batch(DAY, [message(1)])
    assert not outcome.accepted and not outcome.fate_unknown
    assert "gave up after 3 attempts" in outcome.error and "500" in outcome.error
    assert server.accepted == []


def test_a_refused_address_fails_at_once_with_sendgrids_reason(server, sender, waits):
    outcome = sender.send_batch(DAY, [message(1, email="not-an-address")])
    assert "does not contain a valid address" in outcome.refused["send-1"]
    assert waits == [] and server.accepted == []


def test_a_bad_request_that_names_no_recipient_fails_the_batch(server, sender, waits):
    server.fail_next(400)
    outcome = sender.send_batch(DAY, [message(1), message(2)])
    assert not outcome.accepted and not outcome.fate_unknown
    assert outcome.error.startswith("SendGrid answered 400") and outcome.refused == {}
    assert waits == []


def test_a_dropped_connection_is_of_unknown_fate_and_not_retried(server, sender):
    server.drop_next(processed=True)
    outcome = sender.send_batch(DAY, [message(1)])
    assert outcome.fate_unknown and not outcome.accepted
    assert len(server.accepted) == 1  # it did arrive: sending again would duplicate it


def test_an_unreachable_host_is_retried_then_failed_never_of_unknown_fate(waits):
    with SendGridTestServer(api_key=API_KEY) as stopped:
        url = stopped.url  # nothing listens there any more: the request never left
    unreachable = SendGridSender(API_KEY, url, max_attempts=2, sleep=waits.append)
    outcome = unreachable.send_batch(DAY, [message(1)])
    assert not outcome.accepted and not outcome.fate_unknown
    assert "gave up after 2 attempts: could not reach" in outcome.error
    assert len(waits) == 2


def test_one_address_sendgrid_refuses_does_not_hold_back_the_rest(server, sender):
    outcome = sender.send_batch(
        DAY, [message(1), message(2, "bad address@example.com"), message(3)]
    )
    assert outcome.accepted
    assert list(outcome.refused) == ["send-2"]
    assert "SendGrid refused" in outcome.refused["send-2"]
    (body,) = server.accepted
    assert [p["custom_args"]["send_id"] for p in body["personalizations"]] == ["send-1", "send-3"]


def test_batches_hold_at_most_1000_and_never_one_address_twice():
    messages = [message(n) for n in range(2500)] + [message(9000, "person1@example.com")]
    split = list(batches(messages, 1000))
    assert [len(b) for b in split] == [1000, 1000, 501]
    for batch in split:
        addresses = [m.to_email for m in batch]
        assert len(addresses) == len(set(addresses))


@pytest.fixture
def sendgrid_workspace(workspace, server, monkeypatch):
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
    monkeypatch.setenv("SENDGRID_API_HOST", server.url)
    write_all(workspace.landing)
    suppress(workspace.warehouse, "suppressed@example.com")
    return workspace


def _personalizations(server):
    return [p for body in server.accepted for p in body["personalizations"]]


def test_the_nightly_run_sends_each_member_one_valid_personalization(sendgrid_workspace, server):
    assert sendgrid_workspace.run(D) == 0
    assert server.rejected == []
    sent = {}
    for p in _personalizations(server):
        args = p["custom_args"]
        if args["campaign"] == "winback":  # a journey's step also names itself (§9, §15)
            assert set(args) == {
                "campaign",
                "journey",
                "step",
                "occasion",
                "contact_id",
                "send_id",
                "topic",
            }
            assert (args["journey"], args["step"]) == ("winback", "winback_1")
        else:
            assert set(args) == {"campaign", "occasion", "contact_id", "send_id", "topic"}
        sent.setdefault(args["campaign"], []).append(args["contact_id"])
    assert {c: sorted(ids) for c, ids in sent.items()} == {
        "birthday": ["00017", "bday", "zoe"],
        "loyalty": ["guest_buyer", "loyal"],
        "winback": ["lapsed", "lapsed_after_refund"],
    }
    assert {
        p["custom_args"]["contact_id"]: p["custom_args"]["occasion"]
        for p in _personalizations(server)
        if p["custom_args"]["campaign"] == "winback"
    } == {"lapsed": "2025-05-01", "lapsed_after_refund": "2025-04-01"}
    assert not (sendgrid_workspace.outbox / D).exists()
    # (a follow-up whose first step is too late on this first night is skipped: never sent)
    ledger = sendgrid_workspace.query(
        "select distinct status, provider_message_id from nightjar.send_ledger "
        "where status <> 'skipped'"
    )
    assert {status for status, _ in ledger} == {"accepted"}
    assert {mid for _, mid in ledger} == set(server.message_ids)
    # Each personalization is scheduled for its contact's own 10:00, as the ledger records.
    scheduled = dict(
        sendgrid_workspace.query(
            "select contact_id, epoch(send_at)::bigint from nightjar.send_ledger "
            "where campaign = 'birthday'"
        )
    )
    assert {
        p["custom_args"]["contact_id"]: p["send_at"]
        for p in _personalizations(server)
        if p["custom_args"]["campaign"] == "birthday"
    } == scheduled

    # Re-running the date sends nothing more.
    assert sendgrid_workspace.run(D) == 0
    assert len(_personalizations(server)) == 7


def test_a_refused_batch_fails_the_send_and_a_rerun_sends_it(sendgrid_workspace, server):
    server.fail_next(400, count=1, field="template_id")  # the request's fault, not a message's
    assert sendgrid_workspace.run(D) == 1
    failed = sendgrid_workspace.query(
        "select campaign, count(*) from nightjar.send_ledger where status = 'failed' group by 1"
    )
    assert len(failed) == 1
    assert sendgrid_workspace.run(D) == 0
    assert sendgrid_workspace.query(
        "select count(*) from nightjar.send_ledger where status = 'accepted'"
    ) == [(7,)]
    per_contact = {}
    for p in _personalizations(server):
        key = (p["custom_args"]["campaign"], p["custom_args"]["contact_id"])
        per_contact[key] = per_contact.get(key, 0) + 1
    assert set(per_contact.values()) == {1}, "nobody gets a message twice"


def _per_contact(server) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for p in _personalizations(server):
        key = (p["custom_args"]["campaign"], p["custom_args"]["contact_id"])
        counts[key] = counts.get(key, 0) + 1
    return counts


def _in_flight(workspace) -> list[str]:
    return [
        row[0]
        for row in workspace.query(
            "select send_id from nightjar.send_ledger where status = 'in_flight'"
        )
    ]


@pytest.mark.slow  # nights and waits: make test-slow keeps make test within ten minutes
def test_an_unanswered_message_waits_for_sendgrids_events_and_is_never_sent_twice(
    sendgrid_workspace, server
):
    server.drop_next(processed=True)  # SendGrid took the request; the answer was lost
    assert sendgrid_workspace.run(D) == 1
    pending = _in_flight(sendgrid_workspace)
    assert pending
    assert sendgrid_workspace.run(D) == 1  # no event yet: still pending, not sent again
    assert set(_per_contact(server).values()) == {1}

    # SendGrid's "processed" events arrive through the webhook.
    land_events(
        sendgrid_workspace.landing,
        NEXT_DAY,
        [{"event": "processed", "send_id": s, "sg_event_id": f"p-{s}", "timestamp": 1763600000}
         for s in pending],
    )  # fmt: skip
    assert sendgrid_workspace.run(D) == 0
    assert _in_flight(sendgrid_workspace) == []
    counts = _per_contact(server)
    assert len(counts) == 7 and set(counts.values()) == {1}


def _send_time_passes(workspace) -> None:
    with connect(workspace.warehouse) as con:
        con.execute("update nightjar.send_ledger set send_at = now() - interval 1 minute")


@pytest.mark.slow  # nights and waits: make test-slow keeps make test within ten minutes
def test_after_the_grace_period_an_unsettled_message_is_abandoned_by_default(
    sendgrid_workspace, server, monkeypatch
):
    server.drop_next(processed=False)  # the request never got through
    assert sendgrid_workspace.run(D) == 1
    lost = _in_flight(sendgrid_workspace)
    monkeypatch.setenv("NIGHTJAR_SETTLE_GRACE_HOURS", "0")
    # Scheduled for later, it may yet be reported: no verdict before its send time.
    assert sendgrid_workspace.run(D) == 1
    assert _in_flight(sendgrid_workspace) == lost
    _send_time_passes(sendgrid_workspace)
    assert sendgrid_workspace.run(D) == 0
    abandoned = sendgrid_workspace.query(
        "select send_id from nightjar.send_ledger where status = 'abandoned'"
    )
    assert sorted(r[0] for r in abandoned) == sorted(lost)
    assert len(_per_contact(server)) == 7 - len(lost)


def test_with_the_resend_policy_an_unsettled_message_is_sent_after_the_grace_period(
    sendgrid_workspace, server, monkeypatch
):
    server.drop_next(processed=False)
    assert sendgrid_workspace.run(D) == 1
    monkeypatch.setenv("NIGHTJAR_SETTLE_GRACE_HOURS", "0")
    monkeypatch.setenv("NIGHTJAR_UNSETTLED_POLICY", "resend")
    _send_time_passes(sendgrid_workspace)
    assert sendgrid_workspace.run(D) == 0
    counts = _per_contact(server)
    assert len(counts) == 7 and set(counts.values()) == {1}
