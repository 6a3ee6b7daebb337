"""Issue 18: topics and SendGrid unsubscribe groups, one-click unsubscribe between nights,
pausing a program, and the settings that must be right before anything is sent."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest

import assets.sends.campaigns
from models.unsubscribe_tokens import make_token, read_token
from pipelines.event_store import EventStore
from pipelines.webhook import WebhookServer
from senders.outbox import outbox_lines
from tests.conftest import UNSUBSCRIBE_SECRET
from tests.integration.test_sendgrid_sender import API_KEY
from tests.support.landing import land_events
from tests.support.scenario import NEXT_DAY, D, write_all, write_next_day
from tests.support.sendgrid_server import SendGridTestServer, validate_mail_send
from tests.unit.test_webhook import Signer

GROUPS = {"lifecycle": 101, "promotions": 102, "birthday": 103}
TOPIC_OF = {"birthday": "birthday", "loyalty": "promotions", "winback": "lifecycle"}
WHY = "group_unsubscribe from topic promotions"
BEFORE_THE_NIGHT = 1763546400  # 2025-11-19 10:00 UTC


@pytest.fixture
def server():
    with SendGridTestServer(api_key=API_KEY) as running:
        yield running


def test_each_request_carries_its_topics_group_and_one_click_and_a_group_stops_its_topic_only(
    workspace, server, monkeypatch
):
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
    monkeypatch.setenv("SENDGRID_API_HOST", server.url)
    # (tests/conftest.py sets these groups, and https://mail.shop.example as the webhook's)
    write_all(workspace.landing)
    land_events(
        workspace.landing,
        "2025-11-19",
        [
            # zoe leaves the birthday group: no birthday mail, the rest still may come
            {"event": "group_unsubscribe", "email": "zoe@example.com", "asm_group_id": 103,
             "sg_event_id": "g-zoe", "timestamp": BEFORE_THE_NIGHT},
            # lapsed leaves promotions: winback is lifecycle, so it still goes
            {"event": "group_unsubscribe", "email": "lapsed@example.com", "asm_group_id": 102,
             "sg_event_id": "g-lapsed", "timestamp": BEFORE_THE_NIGHT},
            # guest_buyer unsubscribes from everything
            {"event": "unsubscribe", "email": "Guest.Buyer@example.com",
             "sg_event_id": "u-guest", "timestamp": BEFORE_THE_NIGHT},
        ],
    )  # fmt: skip
    assert workspace.run(D) == 0

    assert server.rejected == []
    sent = {}
    for body in server.accepted:
        assert validate_mail_send(body) == []
        campaign = body["personalizations"][0]["custom_args"]["campaign"]
        group = GROUPS[TOPIC_OF[campaign]]
        assert body["asm"] == {"group_id": group, "groups_to_display": [101, 102, 103]}
        for p in body["personalizations"]:
            args = p["custom_args"]
            assert args["topic"] == TOPIC_OF[campaign]
            link, post = p["headers"]["List-Unsubscribe"], p["headers"]["List-Unsubscribe-Post"]
            assert post == "List-Unsubscribe=One-Click"
            assert link.startswith("<https://mail.shop.example/unsubscribe/") and link.endswith(">")
            token = link[1:-1].rsplit("/", 1)[1]
            asked = read_token(UNSUBSCRIBE_SECRET, token)
            assert (asked.contact_id, asked.topic, asked.send_id) == (
                args["contact_id"], args["topic"], args["send_id"],
            )  # fmt: skip
            sent.setdefault(campaign, []).append(args["contact_id"])
    assert {c: sorted(ids) for c, ids in sent.items()} == {
        "birthday": ["00017", "bday"],  # not zoe
        "loyalty": ["loyal", "loyal_suppressed"],  # not guest_buyer
        "winback": ["lapsed", "lapsed_after_refund"],  # lapsed left promotions only
    }
    assert workspace.query(
        "select email, scope, reason from suppression_list order by email, scope"
    ) == [
        ("guest.buyer@example.com", "all", "unsubscribe"),
        ("lapsed@example.com", "promotions", "group_unsubscribe"),
        ("zoe@example.com", "birthday", "group_unsubscribe"),
    ]
    decided = dict(
        workspace.query(
            "select campaign || '/' || contact_id, decision from send_decisions "
            "where contact_id in ('zoe', 'guest_buyer', 'lapsed')"
        )
    )
    assert decided["birthday/zoe"] == "unsubscribed_topic"
    assert decided["loyalty/guest_buyer"] == "suppressed"
    assert decided["winback/lapsed"] == "send"
    assert workspace.query(
        "select is_mailable from customer_360 where contact_id in ('zoe', 'lapsed')"
    ) == [(True,), (True,)]  # a topic's unsubscribe leaves the contact mailable


def _post(url: str) -> int:
    request = urllib.request.Request(url, data=b"List-Unsubscribe=One-Click", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status


def test_a_one_click_unsubscribe_at_noon_stops_that_evenings_send_without_a_load(
    workspace, monkeypatch
):
    write_all(workspace.landing)
    webhook = WebhookServer(
        ("127.0.0.1", 0),
        Signer().public_key,
        EventStore(workspace.landing),
        unsubscribe_secret=UNSUBSCRIBE_SECRET,
    )
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    base = webhook.url.removesuffix("/sendgrid/events")
    # the link of a promotions message `loyal` had earlier, and one forged for `bday`
    link = f"{base}/unsubscribe/{make_token(UNSUBSCRIBE_SECRET, 'loyal', 'promotions', 'earlier')}"
    forged = make_token("not-the-secret-but-long-enough-to-be-one", "bday", "birthday", "x")
    real_send = assets.sends.campaigns.send_campaign

    def click_between_the_decisions_and_the_send(campaign, day, *args, **kwargs):
        # after the night's load and decisions: only the send step can still see it
        if not getattr(click_between_the_decisions_and_the_send, "done", False):
            click_between_the_decisions_and_the_send.done = True
            with urllib.request.urlopen(link, timeout=5) as page:  # a mail scanner's GET
                assert page.status == 200
            assert _post(link) == 200
            with pytest.raises(urllib.error.HTTPError) as refused:
                _post(f"{base}/unsubscribe/{forged}")
            assert refused.value.code == 403
        return real_send(campaign, day, *args, **kwargs)

    monkeypatch.setattr(
        assets.sends.campaigns, "send_campaign", click_between_the_decisions_and_the_send
    )
    try:
        assert workspace.run(D) == 0
    finally:
        webhook.shutdown()
        webhook.server_close()
    assert workspace.query(
        "select decision from send_decisions where campaign = 'loyalty' and contact_id = 'loyal'"
    ) == [("send",)]  # decided before the click
    assert "loyal" not in {m["contact_id"] for m in workspace.outbox_lines(D, "loyalty")}
    assert workspace.query(
        "select status, error from nightjar.send_ledger where contact_id = 'loyal'"
    ) == [("withdrawn", f"suppressed after the decisions were made ({WHY})")]
    # the forged link stopped nothing: bday's birthday message went
    assert "bday" in {m["contact_id"] for m in workspace.outbox_lines(D, "birthday")}
    line = next(m for m in workspace.outbox_lines(D, "birthday") if m["contact_id"] == "bday")
    assert line["topic"] == "birthday"
    assert line["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # The next load scopes it: loyal's address is off promotions, not off everything.
    assert workspace.run(D) == 0
    assert workspace.query(
        "select email, scope, reason from suppression_list where email = 'loyal@example.com'"
    ) == [("loyal@example.com", "promotions", "group_unsubscribe")]
    assert workspace.query(
        "select decision from send_decisions where campaign = 'loyalty' and contact_id = 'loyal'"
    ) == [("unsubscribed_topic",)]


@pytest.mark.slow  # 2 nights: make test-slow keeps make test within ten minutes
def test_a_paused_program_is_decided_sends_nothing_and_stays_due(workspace):
    write_all(workspace.landing)
    result = workspace.run_with(D, pause=["loyalty"])
    assert result.success
    assert workspace.query(
        "select distinct decision from send_decisions where campaign = 'loyalty'"
    ) == [("paused",)]
    assert workspace.outbox_lines(D, "loyalty") == []
    ledger = "select count(*) from nightjar.send_ledger where campaign = 'loyalty'"
    assert workspace.query(ledger) == [(0,)]
    assert workspace.outbox_lines(D, "birthday"), "the other programs went"
    # resumed: its members were still due; loyal's day went to another program meanwhile
    assert workspace.run(D) == 0
    assert {m["contact_id"] for m in workspace.outbox_lines(D, "loyalty")} == {
        "guest_buyer", "loyal_suppressed",
    }  # fmt: skip
    assert workspace.query(
        "select decision from send_decisions where campaign = 'loyalty' and contact_id = 'loyal'"
    ) == [("capped",)]


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"NIGHTJAR_UNSUBSCRIBE_SECRET": ""}, "NIGHTJAR_UNSUBSCRIBE_SECRET is not set"),
        (
            {"SENDGRID_API_KEY": API_KEY, "NIGHTJAR_SENDGRID_GROUPS": "lifecycle=101"},
            "topic(s) birthday, promotions have no SendGrid unsubscribe group",
        ),
        (
            {"SENDGRID_API_KEY": API_KEY, "NIGHTJAR_SENDGRID_GROUPS": "lifecycle=1,promotion=2"},
            "NIGHTJAR_SENDGRID_GROUPS names promotion, not among the project's topics",
        ),
        (
            {"SENDGRID_API_KEY": API_KEY, "NIGHTJAR_UNSUBSCRIBE_URL": ""},
            "NIGHTJAR_UNSUBSCRIBE_URL must be the public https:// address",
        ),
    ],
)
def test_a_setting_to_fix_stops_the_run_before_anything_loads(
    workspace, monkeypatch, capsys, settings, named
):
    write_all(workspace.landing)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    assert workspace.run(D) == 2
    said = capsys.readouterr().err
    assert named in said and "Nothing was loaded or sent." in said
    assert not workspace.warehouse.exists()


def test_hostile_unsubscribe_lines_are_scoped_alike_between_nights_and_by_the_load(workspace):
    """CRLF line endings, an address in odd case and spacing, a group id Nightjar does not
    know, a group id that is not an integer, an empty topic, a huge field: the send's late
    re-read (before any load) and the nightly load's suppression_list agree on every one."""
    from assets.shared.warehouse import connect, ensure_schema
    from models.landing import EVENTS_FOLDER
    from senders.base import Message
    from senders.late_suppressions import LateSuppressions

    write_all(workspace.landing)
    lines = [
        # one-click: the contact, not the address
        {"event": "group_unsubscribe", "contact_id": "zoe", "topic": "birthday",
         "sg_event_id": "h1", "timestamp": BEFORE_THE_NIGHT},
        # a group that is none of the topics': from everything
        {"event": "group_unsubscribe", "email": "  BDAY@Example.com ", "asm_group_id": 999,
         "sg_event_id": "h2", "timestamp": BEFORE_THE_NIGHT},
        # an id that is not an integer is emptied: the topic it names counts
        {"event": "group_unsubscribe", "email": "lapsed@example.com", "asm_group_id": True,
         "topic": "promotions", "reason": "r" * 50_000, "sg_event_id": "h3",
         "timestamp": BEFORE_THE_NIGHT},
        # an empty topic names none: from everything
        {"event": "group_unsubscribe", "email": "loyal@example.com", "topic": "",
         "sg_event_id": "h4", "timestamp": BEFORE_THE_NIGHT},
    ]  # fmt: skip
    folder = workspace.landing / EVENTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "2025-11-19.jsonl").write_bytes(
        b"".join(json.dumps(line).encode() + b"\r\n" for line in lines)
    )

    def message(contact: str, campaign: str, topic: str) -> Message:
        return Message(f"{campaign}-{contact}", campaign, contact, D, f"{contact}@example.com",
                       None, "d-1", "Hi", "shop@x.example", None, topic=topic)  # fmt: skip

    batch = [
        message("zoe", "birthday", "birthday"),
        message("zoe", "winback", "lifecycle"),
        message("bday", "winback", "lifecycle"),
        message("lapsed", "loyalty", "promotions"),
        message("lapsed", "winback", "lifecycle"),
        message("loyal", "winback", "lifecycle"),
    ]
    with connect(workspace.warehouse) as con:
        ensure_schema(con)
        late = LateSuppressions(workspace.landing, con, {101: "lifecycle", 102: "promotions"})
        withheld = late.withheld(batch)
    why = "suppressed after the decisions were made"
    assert withheld == {
        "birthday-zoe": f"{why} (group_unsubscribe from topic birthday)",
        "winback-bday": f"{why} (group_unsubscribe)",
        "loyalty-lapsed": f"{why} (group_unsubscribe from topic promotions)",
        "winback-loyal": f"{why} (group_unsubscribe)",
    }

    assert workspace.run(D) == 0
    assert workspace.query("select email, scope from suppression_list order by email, scope") == [
        ("bday@example.com", "all"),
        ("lapsed@example.com", "promotions"),
        ("loyal@example.com", "all"),
        ("zoe@example.com", "birthday"),
    ]
    assert dict(
        workspace.query(
            "select campaign || '/' || contact_id, decision from send_decisions "
            "where contact_id in ('zoe', 'bday', 'lapsed', 'loyal') "
            "and campaign in ('birthday', 'winback', 'loyalty')"
        )
    ) == {
        "birthday/zoe": "unsubscribed_topic",
        "birthday/bday": "suppressed",
        "winback/lapsed": "send",
        "loyalty/loyal": "suppressed",
    }


@pytest.mark.slow  # 3 nights: make test-slow keeps make test within ten minutes
def test_a_spam_report_spike_blocks_the_send_with_its_figure_until_approved(
    workspace, monkeypatch, capsys
):
    from pipelines.cli import main

    monkeypatch.setenv("NIGHTJAR_REPUTATION_MIN_MESSAGES", "1")  # a small landing is judged
    write_all(workspace.landing)
    assert workspace.run(D) == 0
    sent = [m for path in sorted((workspace.outbox / D).glob("*.jsonl"))
            for m in workspace.outbox_lines(D, path.stem)]  # fmt: skip
    reported = next(m for m in sent if m["campaign"] == "loyalty")
    events = [
        {"event": "delivered", "email": m["to"], "campaign": m["campaign"],
         "send_id": m["send_id"], "sg_event_id": f"d-{m['send_id']}", "timestamp": 1763715600}
        for m in sent
    ] + [
        {"event": "spamreport", "email": reported["to"], "campaign": "loyalty",
         "send_id": reported["send_id"], "sg_event_id": "spam-1", "timestamp": 1763719200}
    ]  # fmt: skip
    land_events(workspace.landing, NEXT_DAY, events)
    write_next_day(workspace.landing)
    capsys.readouterr()

    assert workspace.run(NEXT_DAY) == 1
    err = capsys.readouterr().err
    loyalty = sum(m["campaign"] == "loyalty" for m in sent)
    assert (
        f"spam_rate: all mail's spam reports {1 / len(sent):.2%} (1 of {len(sent)} delivered) "
        "in the 7 days to the business date, at most 0.10% (NIGHTJAR_MAX_SPAM_RATE)"
    ) in err
    assert f"spam_rate:loyalty: loyalty's spam reports {1 / loyalty:.2%} (1 of {loyalty}" in err
    assert f"nightjar run --date {NEXT_DAY} --approve spam_rate --approve spam_rate:loyalty" in err
    assert "bounce_rate" not in err  # nothing bounced
    assert not (workspace.outbox / NEXT_DAY).exists()

    assert main(["run", "--date", NEXT_DAY, "--approve", "spam_rate",
                 "--approve", "spam_rate:loyalty"]) == 0  # fmt: skip
    assert "lapsed" in {m["contact_id"] for m in workspace.outbox_lines(NEXT_DAY, "loyalty")}


def test_the_global_control_group_is_mailed_by_no_program_and_measured(workspace, monkeypatch):
    from tests.support.reference_rules import stable_unit_hash

    monkeypatch.setenv("NIGHTJAR_DBT_VARS", "{holdout_share: 0, global_control_share: 0.5}")
    write_all(workspace.landing)
    assert workspace.run(D) == 0

    def in_control(contact_id: str) -> bool:
        return stable_unit_hash(contact_id, "nightjar", "global_control") < 0.5

    decided = workspace.query("select contact_id, decision from send_decisions")
    withheld = {c for c, d in decided if d == "global_control"}
    assert withheld and withheld <= {c for c, _ in decided if in_control(c)}
    # every member of it that nothing else kept from a message is withheld
    assert not {c for c, d in decided if d == "send" and in_control(c)}
    sent = {m["contact_id"] for p in (workspace.outbox / D).glob("*.jsonl")
            for m in workspace.outbox_lines(D, p.stem)}  # fmt: skip
    assert sent and not sent & withheld
    # nothing of theirs in the ledger; a journey's step of theirs settles as a held-out one
    assert not workspace.query(
        "select 1 from nightjar.send_ledger as l inner join send_decisions as d "
        "on l.campaign = d.campaign and l.contact_id = d.contact_id "
        "where d.decision = 'global_control'"
    )
    settled = workspace.query(
        "select i.steps_done from nightjar.journey_instances as i inner join send_decisions "
        "as d on d.campaign = i.journey and d.contact_id = i.contact_id "
        "where d.decision = 'global_control'"
    )
    assert settled and all(steps == 1 for (steps,) in settled)
    mailable = workspace.query("select contact_id from customer_360 where is_mailable")
    assert dict(workspace.query("select audience_group, contacts from global_control_results")) == {
        "global_control": sum(in_control(c) for (c,) in mailable),
        "program": sum(not in_control(c) for (c,) in mailable),
    }


def test_a_test_send_renders_a_real_member_masked_to_one_address_and_records_nothing(
    workspace, server, monkeypatch, capsys
):
    from pipelines.cli import main

    write_all(workspace.landing)
    assert workspace.run(D) == 0
    ledger = workspace.query("select * from nightjar.send_ledger order by send_id")
    capsys.readouterr()

    # through the outbox: beside a night's messages, never among them
    assert main(["send-test", "--campaign", "birthday", "--to", "qa@shop.example"]) == 0
    (line,) = [
        json.loads(text)
        for path in (workspace.outbox / "test-sends").rglob("birthday.jsonl")
        for text in outbox_lines(path)
    ]
    assert (line["to"], line["test"]) == ("qa@shop.example", True)
    birthday = {c for (c,) in workspace.query("select contact_id from cohort_birthday")}
    assert line["contact_id"] in birthday  # the member whose data it shows (erasure finds it)
    assert line["data"]["first_name"].endswith("***")  # a real member's, masked

    # through SendGrid: each step's own template, valid, marked as a test
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
    monkeypatch.setenv("SENDGRID_API_HOST", server.url)
    args = ["send-test", "--campaign", "winback", "--step", "winback_1", "--to", "qa@shop.example"]
    assert main([*args, "--unmasked"]) == 0
    assert "winback (step winback_1), template" in capsys.readouterr().out
    (body,) = server.accepted
    assert validate_mail_send(body) == []
    (p,) = body["personalizations"]
    assert p["to"] == [{"email": "qa@shop.example"}]
    assert p["custom_args"]["nightjar_test"] == "true" and "nightjar-test" in body["categories"]
    token = p["headers"]["List-Unsubscribe"][1:-1].rsplit("/", 1)[1]
    assert read_token(UNSUBSCRIBE_SECRET, token).contact_id == "nightjar-test"
    assert not any(str(v).endswith("***") for v in p["dynamic_template_data"].values())

    assert workspace.query("select * from nightjar.send_ledger order by send_id") == ledger
    assert main(["send-test", "--campaign", "birthdays", "--to", "qa@shop.example"]) == 2
    assert (
        "no campaign or journey named 'birthdays'; did you mean birthday?"
        in capsys.readouterr().err
    )
