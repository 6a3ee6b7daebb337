"""A send writes the cohort's and the journey's state over a connection of its own, beside the
ledger's rows (senders/dispatch.py): its timestamps must be written in the send's time zone,
which is a connection's own setting in DuckDB, not in the machine's."""

from __future__ import annotations

import datetime as dt

import duckdb

from senders.dispatch import _own_connection


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
