"""Issue 13, class 4: a late unsubscribe stops the send, and stale decisions are refused.

The decisions read the suppression list as the night's load left it; an unsubscribe that
reaches the webhook afterwards, before the message leaves, must still stop it.
"""

from __future__ import annotations

import assets.sends.campaigns
from tests.support.landing import land_events
from tests.support.scenario import NEXT_DAY, D, write_all, write_next_day

LOYAL = "loyal@example.com"


def test_an_unsubscribe_landing_between_the_decisions_and_the_send_stops_the_message(
    workspace, monkeypatch
):
    write_all(workspace.landing)
    real_send = assets.sends.campaigns.send_campaign

    def unsubscribe_first(campaign, day, *args, **kwargs):
        # The webhook lands an unsubscribe after send_decisions was built, before the send.
        land_events(
            workspace.landing,
            D,
            [{"event": "unsubscribe", "email": LOYAL.upper(), "sg_event_id": "late-1",
              "timestamp": 1763632800}],
        )  # fmt: skip
        return real_send(campaign, day, *args, **kwargs)

    monkeypatch.setattr(assets.sends.campaigns, "send_campaign", unsubscribe_first)
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
    monkeypatch.setattr(assets.sends.campaigns, "send_campaign", real_send)
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


def test_an_event_file_rewritten_by_an_erasure_is_read_whole_again(workspace):
    """A file scrubbed after the load (shorter, another inode) and then appended to: every
    byte past the recorded size of the old file is new to the decisions, not only those past
    that size in the new one; and the next load reads it again even at the very same size."""
    from assets.ingest.sendgrid_events import load_event_files
    from assets.shared.warehouse import connect
    from models.landing import EVENTS_FOLDER
    from senders.base import Message
    from senders.late_suppressions import LateSuppressions
    from senders.outbox import write_atomically

    open_event = {"event": "open", "email": "gone@example.com", "sg_event_id": "o1",
                  "timestamp": 1763632800, "useragent": "x" * 300}  # fmt: skip
    land_events(workspace.landing, D, [open_event])
    load_event_files(workspace.landing, workspace.warehouse)
    path = workspace.landing / EVENTS_FOLDER / f"{D}.jsonl"
    loaded_size = path.stat().st_size
    write_atomically(path, '{"event": "open", "erased": true, "sg_event_id": "o1"}\n')  # scrub
    unsubscribe = {"event": "unsubscribe", "email": LOYAL, "sg_event_id": "u9",
                   "timestamp": 1763632900, "reason": "r" * 300}  # fmt: skip
    land_events(workspace.landing, D, [unsubscribe])
    assert path.stat().st_size > loaded_size  # past the old size: only its tail was read

    message = Message("s1", "loyalty", "loyal", D, LOYAL, None, "d-1", "Hi", "shop@x.example", None)
    with connect(workspace.warehouse) as con:
        assert LateSuppressions(workspace.landing, con).withheld([message]) == {
            "s1": "suppressed after the decisions were made (unsubscribe)"
        }

    # Rewritten again to exactly the size loaded: a new file all the same, loaded again.
    text = path.read_text()
    write_atomically(path, text[: loaded_size - 1].ljust(loaded_size - 1) + "\n")
    assert path.stat().st_size == loaded_size
    assert load_event_files(workspace.landing, workspace.warehouse).files == 1


def test_an_address_suppressed_during_the_send_stops_its_message_in_a_later_batch(workspace):
    """Tonight's addresses are looked up once, before the first batch; an address recorded as
    suppressed since (SendGrid refused it in an earlier batch's answer, for a contact sharing
    it) still stops the message of a later batch."""
    from assets.shared.warehouse import connect, ensure_schema
    from senders.base import Message
    from senders.late_suppressions import LateSuppressions
    from senders.ledger import Ledger

    def message(send_id: str, email: str) -> Message:
        return Message(
            send_id, "loyalty", send_id, D, email, None, "d-1", "Hi", "s@x.example", None
        )

    first, second = message("s1", " Shared@Example.com"), message("s2", "shared@example.com")
    known = message("s3", "known@example.com")
    why = "suppressed after the decisions were made"
    with connect(workspace.warehouse) as con:
        ensure_schema(con)
        # suppressed before the send began, a day ago (found by looking the address up)
        for email, reason in (("known@example.com", "bounce"), ("other@example.com", "spam")):
            con.execute(
                "insert into nightjar.suppressions values (?, ?, now() - interval 1 day)",
                [email, reason],
            )
        ledger = Ledger(con)
        late = LateSuppressions(
            workspace.landing, con, messages=[first, second, known], ledger=ledger
        )
        assert late.withheld([first, known]) == {"s3": f"{why} (bounce)"}
        ledger.suppress([" SHARED@example.com"], "refused")  # the first batch's answer
        assert late.withheld([second]) == {"s2": f"{why} (refused)"}
        # an address suppressed before keeps its reason, as the table keeps its row
        ledger.suppress(["known@example.com"], "refused")
        assert late.withheld([known]) == {"s3": f"{why} (bounce)"}
        # the addresses as the table holds them (DuckDB's lower and trim, not Python's)
        ledger.suppress(["İnfo@example.com"], "refused")
        assert late.withheld([message("s5", "info@example.com")]) == {"s5": f"{why} (refused)"}
        assert con.execute(
            "select reason from nightjar.suppressions where email = 'shared@example.com'"
        ).fetchall() == [("refused",)]
        # a batch of messages it was not given looks their addresses up itself
        assert late.withheld([message("s4", "Other@example.com")]) == {"s4": f"{why} (spam)"}
