"""Issue 14, part 1: Nightjar's state outlives the warehouse.

The warehouse is derived from the landing, and deleting it to rebuild is a normal act: the
send ledger, cohort history and the rest live in a state file of their own, so a rebuilt
warehouse never mails anyone twice. An older warehouse's state moves there by itself.
"""

from __future__ import annotations

import os

import duckdb
import pytest

from assets.shared.warehouse import STATE_TABLES, connect, ensure_schema
from pipelines.state import StateNotEmpty, export_state, import_state
from tests.support.landing import land_events
from tests.support.scenario import NEXT_DAY, D, write_all, write_next_day
from tests.support.sendgrid_server import messages_per_contact, sendgrid_for_nightjar

API_KEY = "SG.state-test"


def delete_warehouse(workspace) -> None:
    for path in (workspace.warehouse, workspace.warehouse.with_name("warehouse.duckdb.wal")):
        path.unlink(missing_ok=True)


@pytest.mark.slow  # 3 nights: make test-slow keeps make test within ten minutes
def test_deleting_the_warehouse_or_restoring_the_state_sends_nothing_twice(
    workspace, monkeypatch, tmp_path
):
    write_all(workspace.landing)
    with sendgrid_for_nightjar(monkeypatch, API_KEY) as server:
        assert workspace.run(D) == 0
        sent = messages_per_contact(server)
        assert sent and set(sent.values()) == {1}

        delete_warehouse(workspace)  # rebuilt from the landing, as an operator may
        assert workspace.run(D) == 0
        assert messages_per_contact(server) == sent  # not one message more
        assert workspace.warehouse.exists() and workspace.state.exists()
        assert workspace.query(
            "select count(*) from nightjar.send_ledger where status = 'accepted'"
        ) == [(sum(sent.values()),)]
        # The rebuilt warehouse holds no state of its own.
        assert workspace.query(
            "select count(*) from duckdb_tables() "
            "where database_name = current_database() and schema_name = 'nightjar'"
        ) == [(0,)]

        # The state backed up, lost, and restored from the backup.
        ledger_rows = workspace.query("select count(*) from nightjar.send_ledger")[0][0]
        exported = export_state(workspace.warehouse, tmp_path / "backup")
        assert exported["send_ledger"] == ledger_rows >= sum(sent.values())
        with pytest.raises(StateNotEmpty, match="importing would mix two histories"):
            import_state(workspace.warehouse, tmp_path / "backup")
        workspace.state.unlink()
        assert import_state(workspace.warehouse, tmp_path / "backup") == exported
        with duckdb.connect(str(workspace.state), read_only=True) as con:
            assert con.execute("select count(*) from send_ledger").fetchall() == [
                (exported["send_ledger"],)
            ]
        assert workspace.run(D) == 0
        assert messages_per_contact(server) == sent  # and nothing is sent again


@pytest.mark.slow  # a night or more after the first: make test-slow
def test_a_lost_state_is_not_taken_for_a_first_night(workspace, monkeypatch, capsys):
    """SendGrid's events outlive the state: with them landed and the ledger empty, even an
    installation told to send a first night's backlog sends nothing and says the state is
    lost. Only --baseline (no backup at all) goes on, and mails no one."""
    monkeypatch.setenv("NIGHTJAR_FIRST_NIGHT", "send_backlog")
    write_all(workspace.landing)
    with sendgrid_for_nightjar(monkeypatch, API_KEY) as server:
        assert workspace.run(D) == 0
        sent = messages_per_contact(server)
        assert sent
        land_events(
            workspace.landing,
            NEXT_DAY,
            [
                {
                    "event": "delivered",
                    "email": p["to"][0]["email"],
                    "timestamp": 1763640000,  # 2025-11-20 12:00 UTC
                    "sg_event_id": f"delivered-{p['custom_args']['send_id']}",
                    **p["custom_args"],
                }
                for body in server.accepted
                for p in body["personalizations"]
            ],
        )
        write_next_day(workspace.landing)
        workspace.state.unlink()  # and no backup

        capsys.readouterr()
        assert workspace.run(NEXT_DAY) == 1
        err = capsys.readouterr().err
        assert (
            f"the send ledger is empty, but SendGrid has reported events for "
            f"{sum(sent.values())} message(s) Nightjar sent (the last on 2025-11-20)"
        ) in err
        assert "nightjar state import --from DIR" in err
        assert f"nightjar run --date {NEXT_DAY} --baseline " in err
        assert messages_per_contact(server) == sent  # not one more
        assert workspace.query("select count(*) from nightjar.send_ledger") == [(0,)]

        monkeypatch.setenv("NIGHTJAR_FIRST_NIGHT", "baseline")
        assert workspace.run(NEXT_DAY) == 0
        assert messages_per_contact(server) == sent
        assert workspace.query(
            "select count(*) from nightjar.send_ledger where status <> 'baseline'"
        ) == [(0,)]


def _back_to_the_old_layout(workspace) -> dict[str, int]:
    """The warehouse as Nightjar kept it before: its state in the warehouse's schema
    `nightjar`, no state file. Returns the rows per table it then holds."""
    with connect(workspace.warehouse) as con:
        con.execute("create schema warehouse.nightjar")
        for table in (*STATE_TABLES, "dbt_build_state"):
            source = "nightjar_build" if table == "dbt_build_state" else "nightjar.main"
            con.execute(
                f"create table warehouse.nightjar.{table} as select * from {source}.{table}"
            )
        con.execute("drop schema nightjar_build cascade")
        counts = {
            t: con.execute(f"select count(*) from warehouse.nightjar.{t}").fetchall()[0][0]
            for t in STATE_TABLES
        }
    workspace.state.unlink()
    return counts


def test_an_older_warehouse_moves_its_state_out_by_itself_once(workspace):
    write_all(workspace.landing)
    assert workspace.run(D) == 0
    sent = workspace.outbox_lines(D, "loyalty")
    assert sent
    old = _back_to_the_old_layout(workspace)
    assert old["send_ledger"] and old["cohort_membership"]

    for _ in range(2):  # and a second time changes nothing
        with connect(workspace.warehouse) as con:
            ensure_schema(con)
    assert {
        t: workspace.query(f"select count(*) from nightjar.{t}")[0][0] for t in STATE_TABLES
    } == old
    assert workspace.query(
        "select schema_name from duckdb_schemas() where database_name = current_database() "
        "and schema_name in ('nightjar', 'nightjar_build') order by 1"
    ) == [("nightjar_build",)]
    # The next run knows what was sent: the same messages, not one more.
    assert workspace.run(D) == 0
    assert workspace.outbox_lines(D, "loyalty") == sent


def test_a_damaged_state_is_named_in_one_line_by_its_backup(workspace, tmp_path, capsys):
    from pipelines.cli import main

    workspace.state.write_bytes(b"not a database, a text file" * 400)
    assert main(["state", "export", "--to", str(tmp_path / "backup")]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"nightjar state export: the state {workspace.state} cannot be read:")
    assert "Restore the last good export" in line


@pytest.mark.slow  # a night or more after the first: make test-slow
def test_a_mistyped_warehouse_path_is_not_a_first_night(workspace, monkeypatch, capsys):
    """A new NIGHTJAR_WAREHOUSE brings a new, empty state beside it. Even with no SendGrid
    event landed yet and the first night's backlog still ordered in the environment, the
    landing remembers the nights a state recorded: nothing is mailed again."""
    monkeypatch.setenv("NIGHTJAR_FIRST_NIGHT", "send_backlog")
    write_all(workspace.landing)
    with sendgrid_for_nightjar(monkeypatch, API_KEY) as server:
        assert workspace.run(D) == 0
        sent = messages_per_contact(server)
        assert sent
        write_next_day(workspace.landing)
        monkeypatch.setenv("NIGHTJAR_WAREHOUSE", str(workspace.root / "typo" / "warehouse.duckdb"))

        capsys.readouterr()
        assert workspace.run(NEXT_DAY) == 1
        err = " ".join(capsys.readouterr().err.split())
        assert (
            "the send ledger is empty, but the landing saw a state record 1 night(s) this one "
            f"does not hold (the last {D}): the state was lost or NIGHTJAR_STATE names another "
            f"file ({workspace.root / 'typo' / 'state.duckdb'})"
        ) in err
        assert messages_per_contact(server) == sent


def test_restoring_an_older_backup_or_restoring_during_a_run_forgets_no_message(
    workspace, tmp_path, capsys
):
    import datetime as dt

    from pipelines.cli import main
    from pipelines.run_lock import run_lock

    write_all(workspace.landing)
    assert main(["state", "export", "--to", str(tmp_path / "before")]) == 0
    assert workspace.run(D) == 0
    ledger = workspace.query("select count(*) from nightjar.send_ledger")
    assert ledger[0][0] > 0
    capsys.readouterr()

    # An export older than the messages the state records would forget them.
    assert main(["state", "import", "--from", str(tmp_path / "before"), "--replace"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        f"nightjar state import: the state records {ledger[0][0]} message(s) the export in "
        f"{tmp_path / 'before'} lacks (the last on {D}): replacing it would forget them"
    )
    assert workspace.query("select count(*) from nightjar.send_ledger") == ledger

    # While a night holds the warehouse, neither a backup nor a restore touches the state.
    assert main(["state", "export", "--to", str(tmp_path / "after")]) == 0
    with run_lock(workspace.warehouse, dt.date.fromisoformat(D), 0):
        assert main(["state", "import", "--from", str(tmp_path / "after"), "--replace"]) == 3
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(
            f"nightjar state import: another run (pid {os.getpid()}, business date {D}"
        )

    # An export one of whose tables is not the state's is named, and nothing changes.
    duckdb.connect().execute(
        f"copy (select 1 as x) to '{tmp_path / 'after' / 'erasures.parquet'}' (format parquet)"
    )
    assert main(["state", "import", "--from", str(tmp_path / "after"), "--replace"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        f"nightjar state import: {tmp_path / 'after' / 'erasures.parquet'} is not this "
        "Nightjar's erasures:"
    )
    assert workspace.query("select count(*) from nightjar.send_ledger") == ledger

    # A backup into a file, not a folder, is refused in one line.
    assert main(["state", "export", "--to", str(workspace.state)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"nightjar state export: {workspace.state} is a file: export into a folder"
    ]
