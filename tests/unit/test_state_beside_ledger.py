"""A send writes the cohort's and the journey's state over a connection of its own, beside the
ledger's rows (senders/dispatch.py): both before the first message leaves, and its timestamps
in the send's time zone, which is a connection's own setting in DuckDB, not the machine's."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from assets.sends.campaigns import send_campaign
from assets.shared.warehouse import connect
from models.settings import load_settings
from senders import dispatch
from senders.dispatch import _own_connection
from senders.ledger import Ledger
from senders.outbox import OutboxSender
from tests.support.decisions import NEWS, news_cohort

TONIGHT = dt.date(2025, 11, 20)


def test_the_state_s_own_connection_writes_times_in_the_send_s_zone():
    con = duckdb.connect()
    # not the machine's zone, whatever it is: a new connection would take that one
    con.execute("set TimeZone = 'Asia/Tokyo'")
    con.execute("create table instances (entered_at timestamptz)")
    own = _own_connection(con)
    # as record_journey_state writes entered_at: a plain timestamp into a timestamptz
    own.execute("insert into instances select cast('2026-03-04 00:00:00' as timestamp)")
    own.close()
    (entered_at,) = con.execute("select entered_at from instances").fetchone()
    assert entered_at == dt.datetime(2026, 3, 4, tzinfo=dt.timezone(dt.timedelta(hours=9)))


def test_the_cohort_s_membership_and_the_ledger_s_rows_are_in_before_the_first_message_leaves(
    workspace,
):
    """Both are written at once, by two threads; the first message must find both done."""
    news_cohort(workspace.warehouse, 3000)
    found_by_the_first_request = []

    class Watched(OutboxSender):
        def send_batch(self, business_date, messages):
            if not found_by_the_first_request:
                # the send's own database, as another connection of the process sees it
                with connect(workspace.warehouse) as look:
                    found_by_the_first_request.append(
                        look.execute(
                            "select (select count(*) from nightjar.cohort_membership "
                            "where cohort = 'cohort_news' and business_date = date '2025-11-20'), "
                            "(select count(*) from nightjar.send_ledger "
                            "where business_date = date '2025-11-20')"
                        ).fetchall()[0]
                    )
            return super().send_batch(business_date, messages)

    settings = load_settings()
    summary = send_campaign(NEWS, TONIGHT, settings, Watched(settings.outbox))
    assert summary.sent == 3000
    assert found_by_the_first_request == [(3000, 3000)]


def test_when_the_ledger_s_rows_and_the_state_both_fail_both_errors_are_told(
    workspace, monkeypatch
):
    news_cohort(workspace.warehouse, 1)

    def membership_fails(*args):
        raise RuntimeError("the membership's disk is full")

    def ledger_fails(*args, **kwargs):
        raise RuntimeError("the ledger's disk is full")

    monkeypatch.setattr(dispatch, "record_membership", membership_fails)
    monkeypatch.setattr(Ledger, "plan_frame", ledger_fails)
    settings = load_settings()
    with pytest.raises(RuntimeError, match="the ledger's disk is full") as raised:
        send_campaign(NEWS, TONIGHT, settings, OutboxSender(settings.outbox))
    assert raised.value.__notes__ == [
        "The cohort's or the journey's state failed too: "
        "RuntimeError: the membership's disk is full"
    ]
    assert not list(settings.outbox.rglob("*.jsonl"))  # nothing left
