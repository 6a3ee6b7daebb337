"""Issue 14, part 1: Nightjar's state on PostgreSQL (NIGHTJAR_STATE_URL), against a real
PostgreSQL server started here (tests/support/postgres_server.py; .ci/run installs Debian's).

PostgreSQL is the authoritative state and the local state file its replica: the sender,
killed at random, still sends each message once when the replica (and the warehouse) is
lost between kills; a night run again after losing both sends nothing twice; a wrong URL is
refused in one line naming the server, never the password, and nothing is sent.

Not in `make test` (a minute and a half of a worker): `make test-postgres`.
"""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from assets.shared import state_store as state_postgres
from assets.shared.warehouse import STATE_TABLES, connect, ensure_schema
from models.settings import load_settings
from pipelines.summary import failure_lines
from senders.ledger import Ledger, Mark, send_id
from tests.support.postgres_server import INSTALL_HINT, PostgresServer, free_port, postgres_bin
from tests.support.scenario import D, write_all
from tests.support.sendgrid_server import messages_per_contact, sendgrid_for_nightjar
from tests.tools.chaos import run_sendgrid

pytestmark = pytest.mark.postgres
API_KEY = "SG.state-postgres"


@pytest.fixture(scope="session")
def postgres():
    if postgres_bin() is None:
        pytest.fail(f"no PostgreSQL server to test against: {INSTALL_HINT}")
    with PostgresServer() as server:
        yield server


@pytest.fixture
def state_url(postgres) -> str:
    """An empty database of its own."""
    return postgres.new_database()


def pg_rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as pg:
        return pg.execute(sql).fetchall()


def counts_in_postgres(url: str) -> dict[str, int]:
    return {t: pg_rows(url, f"select count(*) from nightjar.{t}")[0][0] for t in STATE_TABLES}


def counts_in_replica(workspace) -> dict[str, int]:
    return {t: workspace.query(f"select count(*) from nightjar.{t}")[0][0] for t in STATE_TABLES}


def lose(*paths) -> None:
    for path in paths:
        for each in (path, path.with_name(path.name + ".wal")):
            each.unlink(missing_ok=True)


@pytest.mark.parametrize("lose_replica_every", [1, 2], ids=["lost-every-kill", "every-2nd"])
def test_sendgrid_sender_killed_at_random_with_the_state_on_postgres_and_its_replica_lost(
    state_url, lose_replica_every
):
    """tests/integration/test_chaos.py's run with the state on PostgreSQL, the replica and the
    warehouse deleted after every kill, or every second one (a run then resumes from a replica that
    its killed predecessor left behind, too). Without the ledger's write-through the first
    sends hundreds of messages twice."""
    outcome = run_sendgrid(
        messages=3000, kills=4, seed=7, state_url=state_url, lose_replica_every=lose_replica_every
    )
    assert (outcome.duplicates, outcome.lost) == (0, 0), outcome.line()
    assert pg_rows(state_url, "select status, count(*) from nightjar.send_ledger group by 1") == [
        ("accepted", 3000)
    ]


def test_a_night_on_postgres_then_losing_warehouse_and_state_sends_nothing_twice(
    workspace, monkeypatch, state_url
):
    write_all(workspace.landing)
    monkeypatch.setenv("NIGHTJAR_STATE_URL", state_url)
    with sendgrid_for_nightjar(monkeypatch, API_KEY) as server:
        assert workspace.run(D) == 0
        sent = messages_per_contact(server)
        assert sent and set(sent.values()) == {1}
        first = counts_in_postgres(state_url)
        assert first == counts_in_replica(workspace)
        assert first["cohort_membership"] and first["night_metrics"] == 1
        assert pg_rows(
            state_url, "select count(*) from nightjar.send_ledger where status = 'accepted'"
        ) == [(sum(sent.values()),)]

        lose(workspace.warehouse, workspace.state)  # the machine's files, both gone
        assert workspace.run(D) == 0
        assert messages_per_contact(server) == sent  # not one message more
    assert counts_in_postgres(state_url) == counts_in_replica(workspace) == first


def test_a_wrong_state_url_is_refused_in_one_line_naming_the_server_and_nothing_is_sent(
    workspace, monkeypatch, capsys, postgres
):
    write_all(workspace.landing)
    secret = "Hunter2-not-the-password"
    wrong_password = postgres.url().replace(postgres.password, secret)
    closed = free_port()  # nothing listens there
    nowhere = f"postgresql://nightjar:{secret}@127.0.0.1:{closed}/nightjar"
    with sendgrid_for_nightjar(monkeypatch, API_KEY) as server:
        for url, server_named in (
            (wrong_password, f"127.0.0.1:{postgres.port}/postgres"),
            (nowhere, f"127.0.0.1:{closed}/nightjar"),
        ):
            monkeypatch.setenv("NIGHTJAR_STATE_URL", url)
            assert workspace.run(D) == 2
            out, err = capsys.readouterr()
            assert secret not in out + err
            (line,) = err.strip().splitlines()
            assert line.startswith(f"nightjar: the PostgreSQL state at {server_named} ")
            assert "NIGHTJAR_STATE_URL" in line and line.endswith("Nothing was loaded or sent.")
            assert not workspace.warehouse.exists()  # refused before anything was loaded

        # A run started without the CLI (Dagster's UI, the sensor) fails at its first step.
        result = workspace.run_with(D)
        assert not result.success
        told = "\n".join(failure_lines(result))  # as `nightjar run` would tell it
        assert f"the PostgreSQL state at 127.0.0.1:{closed}/nightjar" in told
        assert secret not in told
        assert server.accepted == []  # nothing sent

    monkeypatch.setenv("NIGHTJAR_STATE_URL", "mysql://nightjar:" + secret + "@db/nightjar")
    with pytest.raises(ValueError) as refused:
        load_settings()
    assert str(refused.value) == (
        "NIGHTJAR_STATE_URL: must be a postgresql:// URL (value not shown)"
    )


def _ledger_row(contact: str) -> tuple:
    return (send_id("c", contact, "o"), "c", contact, "o", None, None)


def test_an_answer_and_a_refused_departure_written_together_leave_both_sides_alike(
    workspace, state_url
):
    """A batch's accepted answer goes to the ledger with the next batch's departure. When
    PostgreSQL holds that next message as sent already (another replica sent it), the
    departure is refused, nothing leaves, and the answer is still written on both sides."""
    day = dt.date(2025, 11, 20)
    answered, leaving = send_id("c", "a", "o"), send_id("c", "b", "o")
    with connect(workspace.warehouse) as con:
        ensure_schema(con)
        Ledger(con).plan([_ledger_row("a"), _ledger_row("b")], day, "sendgrid")
    state_postgres.pull(workspace.warehouse, state_url)
    mirror = state_postgres.LedgerMirror(state_url)
    with connect(workspace.warehouse) as con:
        Ledger(con, mirror).mark([answered], "in_flight", planned_for=day)
    with psycopg.connect(state_url) as pg:  # sent meanwhile by another replica
        pg.execute(
            "update nightjar.send_ledger set status = 'accepted' where send_id = %s", [leaving]
        )
    with connect(workspace.warehouse) as con:
        with pytest.raises(state_postgres.AlreadyRecorded):
            Ledger(con, mirror).mark_all(
                [Mark([answered], "accepted", "m1"), Mark([leaving], "in_flight")], day
            )
        replica = con.execute(
            "select contact_id, status from nightjar.send_ledger order by 1"
        ).fetchall()
    mirror.close()
    assert replica == [("a", "accepted"), ("b", "planned")]
    assert pg_rows(state_url, "select contact_id, status from nightjar.send_ledger order by 1") == [
        ("a", "accepted"),
        ("b", "accepted"),
    ]


def test_the_replica_merges_into_postgres_as_the_rules_say(workspace, state_url):
    """What a killed step left in the replica goes up at the next pull; a replica of another
    lineage adds, never overwrites; a message PostgreSQL holds as sent is never in flight
    again; PostgreSQL out of reach stops a message before it leaves."""
    warehouse, day = workspace.warehouse, dt.date(2025, 11, 20)
    with connect(warehouse) as con:
        ensure_schema(con)
        Ledger(con).plan([_ledger_row("a"), _ledger_row("b")], day, "sendgrid")
        con.execute("insert into nightjar.cohort_snapshots values ('vip', ?, 1)", [day])
        con.execute("insert into nightjar.cohort_membership values ('vip', ?, 'a', ?)", [day, day])
        con.execute(
            "insert into nightjar.erasures (contact_id, email_sha256, was_suppressed, erased_at) "
            "values ('gone', sha256('gone@example.com'), false, now())"
        )
        con.execute(
            "insert into nightjar.suppressions values ('gone@example.com', 'refused', now()), "
            "('kept@example.com', 'refused', now())"
        )
    assert state_postgres.pull(warehouse, state_url).up == 7  # a first pull: all of it

    # Written after the pull (a message accepted, the cohort run again, an address erased),
    # then the step was killed before its push: the next pull sends it up first.
    mirror = state_postgres.LedgerMirror(state_url)
    with connect(warehouse) as con:
        Ledger(con, mirror).mark([send_id("c", "a", "o")], "in_flight")
        Ledger(con, mirror).mark([send_id("c", "a", "o")], "accepted", provider_message_id="m1")
        con.execute("delete from nightjar.cohort_membership")
        con.execute("insert into nightjar.cohort_membership values ('vip', ?, 'b', ?)", [day, day])
        con.execute("delete from nightjar.suppressions where email = 'gone@example.com'")
        con.execute("update nightjar.erasures set events_scrubbed = true")
    mirror.close()
    assert pg_rows(state_url, "select contact_id, status from nightjar.send_ledger order by 1") == [
        ("a", "accepted"),
        ("b", "planned"),
    ]  # written through, before the pull
    assert state_postgres.pull(warehouse, state_url).descendant
    assert pg_rows(state_url, "select contact_id from nightjar.cohort_membership") == [("b",)]
    assert pg_rows(state_url, "select email from nightjar.suppressions") == [("kept@example.com",)]
    assert pg_rows(state_url, "select events_scrubbed from nightjar.erasures") == [(True,)]

    # A replica of another lineage (restored, another machine's): it adds what PostgreSQL
    # lacks and overwrites nothing, then gets PostgreSQL's rows.
    lose(workspace.state)
    with connect(warehouse) as con:
        ensure_schema(con)
        Ledger(con).plan([_ledger_row("a"), _ledger_row("c")], day, "sendgrid")
        con.execute("insert into nightjar.cohort_snapshots values ('vip', ?, 1)", [day])
        con.execute("insert into nightjar.cohort_membership values ('vip', ?, 'a', ?)", [day, day])
    synced = state_postgres.pull(warehouse, state_url)
    assert not synced.descendant
    assert pg_rows(state_url, "select contact_id, status from nightjar.send_ledger order by 1") == [
        ("a", "accepted"),
        ("b", "planned"),
        ("c", "planned"),
    ]
    assert workspace.query("select contact_id, status from nightjar.send_ledger order by 1") == [
        ("a", "accepted"),
        ("b", "planned"),
        ("c", "planned"),
    ]
    assert workspace.query("select contact_id from nightjar.cohort_membership") == [("b",)]

    # A replica behind PostgreSQL never puts a message PostgreSQL holds as sent in flight.
    mirror = state_postgres.LedgerMirror(state_url)
    with connect(warehouse) as con:
        con.execute("update nightjar.send_ledger set status = 'planned'")
        with pytest.raises(state_postgres.AlreadyRecorded, match="1 message"):
            Ledger(con, mirror).mark([send_id("c", x, "o") for x in "abc"], "in_flight")
        assert con.execute("select distinct status from nightjar.send_ledger").fetchall() == [
            ("planned",)
        ]  # nothing changed here either
    mirror.close()
    assert pg_rows(
        state_url, "select count(*) from nightjar.send_ledger where status = 'in_flight'"
    ) == [(0,)]

    # PostgreSQL out of reach: the mark fails, so the request never leaves.
    unreachable = state_postgres.LedgerMirror(state_url.replace(f":{_port(state_url)}/", ":1/"))
    with connect(warehouse) as con:
        with pytest.raises(state_postgres.StateStoreError, match="cannot be reached"):
            Ledger(con, unreachable).mark([send_id("c", "b", "o")], "in_flight")
        assert con.execute(
            "select status from nightjar.send_ledger where contact_id = 'b'"
        ).fetchall() == [("planned",)]


def _port(url: str) -> str:
    return url.rsplit(":", 1)[1].split("/", 1)[0]
