"""A run that died mid-send is settled before anything new goes out."""

from __future__ import annotations

import datetime as dt

from assets.campaigns import campaigns_from_manifest
from assets.sends import send_campaign
from pipelines.dbt_setup import load_manifest
from pipelines.settings import load_settings
from pipelines.warehouse import connect
from senders.outbox import OutboxSender
from tests.scenario import D, suppress, write_all


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
    lines = path.read_text(encoding="utf-8").splitlines()
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
