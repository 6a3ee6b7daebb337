"""A run that died mid-send is settled before anything new goes out."""

from __future__ import annotations

import datetime as dt

from assets.sends.campaigns import send_campaign
from assets.shared.warehouse import connect, ensure_schema
from models.manifest import load_manifest
from models.programs import campaigns_from_manifest
from models.settings import load_settings
from senders.ledger import Ledger, send_id
from senders.outbox import OutboxSender, outbox_lines
from tests.support.decisions import NEWS, decide_to_send_everyone
from tests.support.scenario import D, suppress, write_all


def test_pending_rows_are_settled_from_the_outbox_and_nothing_is_duplicated(workspace):
    write_all(workspace.landing)
    suppress(workspace.warehouse, "suppressed@example.com")
    assert workspace.run(D) == 0
    sent = workspace.outbox_lines(D, "birthday")
    assert len(sent) == 3

    # Simulate a crash: one message made it into the outbox but the ledger still says it is
    # in flight; another went in flight but was never written.
    kept, lost = sent[0], sent[1]
    path = workspace.outbox / D / "birthday.jsonl"
    lines = outbox_lines(path)
    path.write_text("".join(line + "\n" for line in lines if lost["send_id"] not in line))
    with connect(workspace.warehouse) as con:
        con.execute(
            "update nightjar.send_ledger set status = 'in_flight' where send_id in (?, ?)",
            [kept["send_id"], lost["send_id"]],
        )
        con.execute("delete from nightjar.cohort_membership")  # the crash came before this

    settings = load_settings()
    (birthday,) = [c for c in campaigns_from_manifest(load_manifest()) if c.name == "birthday"]
    summary = send_campaign(
        birthday, dt.date.fromisoformat(D), settings, OutboxSender(settings.outbox)
    )

    assert summary.sent == 1 and summary.decisions == {"already_sent": 2, "send": 1}
    after = workspace.outbox_lines(D, "birthday")
    assert sorted(m["send_id"] for m in after) == sorted(m["send_id"] for m in sent)
    assert workspace.query(
        "select status, count(*) from nightjar.send_ledger where campaign = 'birthday' group by 1"
    ) == [("accepted", 3)]


def test_a_message_in_flight_when_decided_and_found_unsent_goes_in_the_same_run(workspace):
    campaign = NEWS
    day = dt.date.fromisoformat(D)
    with connect(workspace.warehouse) as con:
        ensure_schema(con)
        con.execute(
            "create table main.cohort_news as select 'c1' as contact_id, 'c1@example.com' "
            "as email, 'C' as first_name, 'One' as last_name, 'first' as edition, ?::date "
            "as as_of_date",
            [day],
        )
        decide_to_send_everyone(con, campaign)
        # A crashed run left the message in flight, before it reached the outbox file...
        Ledger(con).plan([(send_id("news", "c1", "first"), "news", "c1", "first", None, None)],
                         day, "outbox", "in_flight")  # fmt: skip
        # ...so tonight's decisions said already_sent.
        con.execute("update main.send_decisions set decision = 'already_sent', "
                    "ledger_status = 'in_flight'")  # fmt: skip
    settings = load_settings()
    summary = send_campaign(campaign, day, settings, OutboxSender(settings.outbox))
    # Settlement finds it never written: it goes now, once.
    assert (summary.sent, summary.decisions) == (1, {"send": 1})
    assert [m["contact_id"] for m in workspace.outbox_lines(D, "news")] == ["c1"]
