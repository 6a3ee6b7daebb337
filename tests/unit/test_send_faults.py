"""A campaign of several batches through faults: nothing left behind, nothing sent twice."""

from __future__ import annotations

import datetime as dt
import ssl
import time

import pytest

from assets.sends.campaigns import send_campaign
from assets.shared.warehouse import connect, ensure_schema
from models.settings import load_settings
from senders.base import BatchOutcome, Message, batches
from senders.delivery import Delivery, SendSummary
from senders.ledger import SENDABLE_STATUSES, STATUSES, Ledger
from senders.sendgrid import SendGridSender
from senders.settlement import Settled, settle_in_flight
from tests.support.decisions import NEWS, news_cohort
from tests.support.landing import land_events
from tests.support.sendgrid_server import SendGridTestServer

DAY = "2025-11-20"
TONIGHT = dt.date.fromisoformat(DAY)
CAMPAIGN = NEWS


def send(workspace, server, at_once: int = 1):
    settings = load_settings()
    sender = SendGridSender("SG.key", server.url, base_delay=0.01, requests_at_once=at_once)
    return send_campaign(CAMPAIGN, dt.date.fromisoformat(DAY), settings, sender)


def statuses(workspace) -> dict[str, int]:
    return dict(workspace.query("select status, count(*) from nightjar.send_ledger group by 1"))


def personalizations(server) -> list[str]:
    return [p["custom_args"]["contact_id"] for b in server.accepted for p in b["personalizations"]]


@pytest.fixture
def events_to(workspace):
    """SendGrid's processed events, landed as the webhook would, for every accepted mail."""

    def post(message_id: str, body: dict) -> None:
        land_events(
            workspace.landing,
            DAY,
            [
                {"event": "processed", "sg_event_id": f"{message_id}-{i}", "timestamp": 1,
                 **p["custom_args"]}
                for i, p in enumerate(body["personalizations"])
            ],
        )  # fmt: skip

    return post


def test_after_a_lost_answer_is_settled_the_rest_of_the_campaign_goes(
    workspace, events_to, monkeypatch
):
    monkeypatch.setenv("NIGHTJAR_SETTLE_WAIT_SECONDS", "5")
    news_cohort(workspace.warehouse, 2500)
    with SendGridTestServer("SG.key", on_accept=events_to) as server:
        server.drop_next(processed=True)
        summary = send(workspace, server)
    assert summary.ok and (summary.sent, summary.not_attempted) == (2500, 0)
    assert statuses(workspace) == {"accepted": 2500}
    assert len(personalizations(server)) == len(set(personalizations(server))) == 2500


def test_without_events_a_lost_batch_stays_pending_and_the_rest_goes(workspace):
    news_cohort(workspace.warehouse, 2500)
    with SendGridTestServer("SG.key") as server:
        server.drop_next(processed=True)
        summary = send(workspace, server)
        assert not summary.ok
        assert (summary.sent, summary.pending, summary.not_attempted) == (1500, 1000, 0)
        # One request, one attempt: the lost answer is noted, not counted again.
        assert workspace.query(
            "select status, attempts, count(*) from nightjar.send_ledger group by all order by 1"
        ) == [("accepted", 1, 1500), ("in_flight", 1, 1000)]


def test_three_lost_answers_in_a_row_stop_the_send_and_the_rest_waits(workspace):
    news_cohort(workspace.warehouse, 4500)
    with SendGridTestServer("SG.key") as server:
        server.drop_next(3, processed=True)
        summary = send(workspace, server)
    assert (summary.sent, summary.pending, summary.not_attempted) == (0, 3000, 1500)
    assert workspace.query(
        "select status, count(*) from nightjar.send_ledger group by all order by 1"
    ) == [("in_flight", 3000), ("planned", 1500)]


def test_four_requests_out_at_once_send_each_message_once_and_record_each_answer(workspace):
    news_cohort(workspace.warehouse, 9500)
    with SendGridTestServer("SG.key", answer_after=0.2) as server:
        summary = send(workspace, server, at_once=4)
    assert server.most_at_once == 4
    assert summary.ok and summary.sent == 9500
    assert statuses(workspace) == {"accepted": 9500}
    assert len(personalizations(server)) == len(set(personalizations(server))) == 9500


def test_a_request_refused_while_others_are_out_is_halved_and_each_message_goes_once(workspace):
    news_cohort(workspace.warehouse, 4500)
    with SendGridTestServer("SG.key", answer_after=0.05) as server:
        server.fail_next(400)  # no field named: one of the first four, halved
        summary = send(workspace, server, at_once=4)
    assert summary.ok and summary.sent == 4500
    assert statuses(workspace) == {"accepted": 4500}
    assert len(personalizations(server)) == len(set(personalizations(server))) == 4500
    assert len(server.rejected) == 1 and len(server.accepted) == 6


def test_a_refusal_of_every_request_stops_the_send_and_the_answers_out_are_recorded(workspace):
    news_cohort(workspace.warehouse, 9000)
    with SendGridTestServer("SG.key", answer_after=0.05) as server:
        # a revoked key, for the first of four requests out (whichever reaches the server
        # first: four leave together)
        server.fail_next(401, holding="C00000")
        summary = send(workspace, server, at_once=4)
    # the three others out were accepted; nothing more left after the refusal was read
    assert (summary.sent, summary.failed, summary.not_attempted) == (3000, 1000, 5000)
    assert statuses(workspace) == {"accepted": 3000, "failed": 1000, "planned": 5000}
    assert len(personalizations(server)) == len(set(personalizations(server))) == 3000
    assert any("check SENDGRID_API_KEY" in error for error in summary.errors)


def test_an_address_sendgrid_refuses_is_refused_for_good(workspace):
    news_cohort(workspace.warehouse, 5, bad="bad address@example.com")
    with SendGridTestServer("SG.key") as server:
        first = send(workspace, server)
        second = send(workspace, server)
    assert first.ok and (first.sent, first.refused) == (4, 1)
    assert second.ok and second.sent == 0 and second.decisions["refused"] == 1
    (error,) = workspace.query("select error from nightjar.send_ledger where status = 'refused'")
    assert "address@example.com" not in error[0] and "***@example.com" in error[0]
    assert len(server.rejected) == 1  # never asked again
    # and no other campaign will try it: the address is on the suppression list from now on
    assert workspace.query("select email, reason from nightjar.suppressions") == [
        ("bad address@example.com", "refused")
    ]


def test_a_message_scheduled_for_later_is_not_given_up_before_its_send_time(workspace, monkeypatch):
    monkeypatch.setenv("NIGHTJAR_SETTLE_GRACE_HOURS", "0")
    monkeypatch.setenv("NIGHTJAR_UNSETTLED_POLICY", "resend")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=20)
    with connect(workspace.warehouse) as con:
        ensure_schema(con)
        ledger = Ledger(con)
        ledger.plan([("s1", "news", "c1", "first", None, later)], dt.date(2025, 11, 20),
                    "sendgrid", "in_flight")  # fmt: skip
        # SendGrid reports a scheduled message when it releases it: until then, no verdict.
        assert settle_in_flight(ledger, load_settings()) == Settled(pending=1)
        con.execute("update nightjar.send_ledger set send_at = now() - interval 1 minute")
        assert settle_in_flight(ledger, load_settings()) == Settled(settled=1)
        assert con.execute("select status from nightjar.send_ledger").fetchall() == [("failed",)]


def test_tonights_marks_find_a_message_planned_on_another_night_and_count_one_attempt(workspace):
    """A night's delivery looks for its messages among that night's rows of the ledger (by
    the date's zone maps); one planned for another date is marked all the same, and
    no message's attempts are counted twice."""
    tonight, yesterday = dt.date.fromisoformat(DAY), dt.date.fromisoformat("2025-11-19")
    with connect(workspace.warehouse) as con:
        ensure_schema(con)
        ledger = Ledger(con)
        ledger.plan([("a", "news", "C1", "first"), ("b", "news", "C2", "first")], yesterday, "x")
        ledger.plan([("c", "news", "C3", "first")], tonight, "x")
        ledger.mark(["a", "b", "c"], "in_flight", planned_for=tonight)
        ledger.mark(["c", "b"], "accepted", provider_message_id="m-1", planned_for=tonight)
        rows = con.execute(
            "select send_id, status, attempts, provider_message_id from nightjar.send_ledger "
            "order by send_id"
        ).fetchall()
    assert rows == [
        ("a", "in_flight", 1, None),
        ("b", "accepted", 1, "m-1"),
        ("c", "accepted", 1, "m-1"),
    ]


def test_planning_again_keeps_what_is_settled_and_takes_back_what_may_still_go(workspace):
    """The ledger's plan, for a night's new rows (a plain insert) and a rerun's known ones
    (an upsert): a row of any status but planned or failed keeps its status, date, channel,
    variant and error; a planned or failed one is planned again for tonight, its error
    cleared. A rerun of only settled rows changes nothing, and a frame naming a row twice
    plans it once."""
    yesterday = TONIGHT - dt.timedelta(days=1)
    at = dt.datetime(2025, 11, 20, 18, tzinfo=dt.UTC)

    def rows(ids, variant):
        return [
            (s, "news", f"C-{s}", "first", variant, at if variant == "b" else None) for s in ids
        ]

    settled = [s for s in STATUSES if s not in SENDABLE_STATUSES]
    with connect(workspace.warehouse) as con:
        ensure_schema(con)
        ledger = Ledger(con)
        ledger.plan(rows([*STATUSES, "twice", "twice"], "a"), yesterday, "outbox")
        for status in STATUSES[1:]:
            ledger.mark([status], status, error=f"was {status}")
        before = con.execute("select * from nightjar.send_ledger order by send_id").fetchall()
        ledger.plan(rows(settled, "b"), TONIGHT, "sg")  # a rerun of settled rows alone
        assert (
            con.execute("select * from nightjar.send_ledger order by send_id").fetchall() == before
        )
        ledger.plan(rows([*STATUSES, "new"], "b"), TONIGHT, "sg")
        found = con.execute(
            "select send_id, status, business_date, channel, variant, send_at, error "
            "from nightjar.send_ledger order by send_id"
        ).fetchall()
    again = {"planned", "failed", "new"}
    assert found == sorted(
        [
            (s, "planned", TONIGHT, "sg", "b", at, None)
            if s in again
            else (s, s, yesterday, "outbox", "a", None, f"was {s}")
            for s in [*STATUSES, "new"]
        ]
        + [("twice", "planned", yesterday, "outbox", "a", None, None)]
    )


def quiet_hours_messages(count: int, deliver_by: dt.datetime) -> list[Message]:
    return [
        Message(send_id=f"s{i:05d}", campaign="news", contact_id=f"C{i:05d}", occasion="first",
                to_email=f"c{i:05d}@example.com", to_name=None, template_id="d-1",
                subject="News", from_email="hello@shop.example.com", from_name=None,
                deliver_by=deliver_by)
        for i in range(count)
    ]  # fmt: skip


def deliver(con, sender, messages: list[Message]) -> SendSummary:
    ledger = Ledger(con)
    ledger.plan([(m.send_id, m.campaign, m.contact_id, m.occasion) for m in messages], TONIGHT, "x")
    summary = SendSummary("news", TONIGHT, sender.channel)
    delivery = Delivery(sender, ledger, TONIGHT, summary, withheld=lambda b: {}, settled=bool)
    delivery.run(list(batches(messages, 1000)))
    return summary


def test_requests_whose_quiet_hours_begin_while_they_wait_out_a_rate_limit_are_not_sent(
    workspace,
):
    # Quiet hours begin 1.5 s from now, after the first requests left (planning 2,500 rows
    # takes a fraction of that, on a busy machine too) and before they may be tried again:
    # the rate limit resets 2 to 3 s from now.
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)
    reset = {"X-RateLimit-Reset": str(int(time.time()) + 3)}
    messages = quiet_hours_messages(2500, deliver_by=soon)
    with SendGridTestServer("SG.key") as server, connect(workspace.warehouse) as con:
        ensure_schema(con)
        server.fail_next(429, count=3, headers=reset)  # each of the three out waits for it
        sender = SendGridSender("SG.key", server.url, requests_at_once=4)
        summary = deliver(con, sender, messages)
    assert server.accepted == []  # none left after their quiet hours began
    assert (summary.sent, summary.failed, summary.not_attempted) == (0, 0, 2500)
    assert not summary.ok and "reached the quiet hours" in summary.errors[0]
    assert statuses(workspace) == {"failed": 2500}  # the next run sends them, in the day


class TwoAtOnce:
    """Two requests out at once; notes what time it was when each left."""

    channel, max_batch_size, max_batch_bytes, records_sends = "x", 1000, None, True
    requests_at_once = 2

    def __init__(self, clock: list[dt.datetime]):
        self.clock, self.left = clock, []

    def messages_bytes(self, messages: list[Message], exact: bool = False) -> int:
        return 0

    def send_batch(self, business_date: dt.date, messages: list[Message]) -> BatchOutcome:
        self.left += [(m.send_id, self.clock[0]) for m in messages]
        return BatchOutcome(accepted=True, provider_message_id="m-1")


def test_a_request_does_not_leave_once_its_quiet_hours_began_during_the_others_look_ups(
    workspace,
):
    # Requests that leave together are each checked for late suppressions first; a slow
    # look-up (two seconds here, by a clock of the test's) must not let an earlier
    # request leave after its quiet hours began meanwhile.
    nine = dt.datetime(2030, 1, 1, 21, tzinfo=dt.UTC)
    clock = [nine - dt.timedelta(seconds=3)]  # its own look-up ends before nine, the next after

    def look_up(batch: list[Message]) -> dict[str, str]:
        clock[0] += dt.timedelta(seconds=2)
        return {}

    first = quiet_hours_messages(1, deliver_by=nine)
    later = quiet_hours_messages(2, deliver_by=nine + dt.timedelta(hours=1))[1:]
    sender = TwoAtOnce(clock)
    with connect(workspace.warehouse) as con:
        ensure_schema(con)
        ledger = Ledger(con)
        ledger.plan(
            [(m.send_id, "news", m.contact_id, "first") for m in first + later], TONIGHT, "x"
        )
        summary = SendSummary("news", TONIGHT, sender.channel)
        Delivery(sender, ledger, TONIGHT, summary, withheld=look_up, settled=bool,
                 now=lambda: clock[0]).run([first, later])  # fmt: skip
    assert all(at < nine for send_id, at in sender.left if send_id == "s00000")
    assert sender.left == [] and summary.not_attempted == 2
    assert "reached the quiet hours" in summary.errors[0]
    assert statuses(workspace) == {"planned": 2}  # the next run sends them, in the day


class SomeRequestRaises:
    """Four requests out at once; the first raises (a TLS error while reading its answer)
    after the three others were answered."""

    channel, max_batch_size, max_batch_bytes, records_sends = "x", 1000, None, True
    requests_at_once = 4

    def messages_bytes(self, messages: list[Message], exact: bool = False) -> int:
        return 0

    def send_batch(self, business_date: dt.date, messages: list[Message]) -> BatchOutcome:
        if messages[0].send_id == "s00000":
            time.sleep(0.2)
            raise ssl.SSLError("the connection broke while its answer was read")
        return BatchOutcome(accepted=True, provider_message_id=f"m-{messages[0].send_id}")


def test_answers_already_back_are_recorded_before_a_request_s_error_stops_the_send(workspace):
    messages = quiet_hours_messages(6000, deliver_by=dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
    with connect(workspace.warehouse) as con:
        ensure_schema(con)
        with pytest.raises(ssl.SSLError):
            deliver(con, SomeRequestRaises(), messages)
    # the raising request's fate is unknown: in flight, settled by SendGrid's events
    assert statuses(workspace) == {"in_flight": 1000, "accepted": 3000, "planned": 2000}


def test_a_message_refused_before_the_wait_that_reached_the_quiet_hours_stays_refused(workspace):
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)  # as above
    reset = {"X-RateLimit-Reset": str(int(time.time()) + 3)}
    messages = quiet_hours_messages(10, deliver_by=soon)
    with SendGridTestServer("SG.key") as server, connect(workspace.warehouse) as con:
        ensure_schema(con)
        server.fail_next(400, field="personalizations.3.to.0.email")  # its address, for good
        server.fail_next(429, headers=reset)  # the other nine wait past their quiet hours
        summary = deliver(con, SendGridSender("SG.key", server.url), messages)
    assert server.accepted == []
    assert (summary.refused, summary.not_attempted) == (1, 9)
    assert statuses(workspace) == {"refused": 1, "failed": 9}


class Accepts:
    channel, max_batch_size, max_batch_bytes, records_sends = "x", 1000, None, True
    requests_at_once = 1

    def messages_bytes(self, messages: list[Message], exact: bool = False) -> int:
        return 0

    def send_batch(self, business_date: dt.date, messages: list[Message]) -> BatchOutcome:
        return BatchOutcome(accepted=True, provider_message_id=f"m-{messages[0].send_id}")


def test_batches_accepted_before_a_look_up_of_suppressions_failed_are_recorded_accepted(
    workspace,
):
    """An accepted answer is written with the ledger's next change; when the send stops on
    an error before that change (here the look-up of late suppressions before the third
    batch), the answers already read are written all the same, and the error is raised."""
    messages = quiet_hours_messages(3000, deliver_by=dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
    looks = []

    def withheld(batch: list[Message]) -> dict[str, str]:
        looks.append(batch)
        if len(looks) == 3:
            raise FileNotFoundError("events/2025-11-20.jsonl vanished while it was read")
        return {}

    with connect(workspace.warehouse) as con:
        ensure_schema(con)
        ledger = Ledger(con)
        ledger.plan(
            [(m.send_id, m.campaign, m.contact_id, m.occasion) for m in messages], TONIGHT, "x"
        )
        summary = SendSummary("news", TONIGHT, "x")
        delivery = Delivery(Accepts(), ledger, TONIGHT, summary, withheld=withheld, settled=bool)
        with pytest.raises(FileNotFoundError, match="vanished"):
            delivery.run(list(batches(messages, 1000)))
    assert summary.sent == 2000
    assert statuses(workspace) == {"accepted": 2000, "planned": 1000}
