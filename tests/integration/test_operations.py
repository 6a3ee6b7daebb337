"""What a data engineer runs into: not-ready folders, catch-up, full refresh, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from models.manifest import dbt_executable
from models.settings import DBT_PROJECT_DIR
from tests.support.landing import contact, order, write_folder
from tests.support.scenario import HISTORY, D, suppress, write_all


def test_a_folder_without_success_is_not_ready_and_says_so_in_one_line(workspace, capsys):
    write_folder(workspace.landing, D, contacts=[contact("c1")], complete=False)
    assert workspace.run(D) == 1
    err = capsys.readouterr().err
    assert (
        f"Landing folder {workspace.landing / D} is not ready: no _SUCCESS file yet "
        "(the exporter writes it last). Run again once the export has finished." in err
    )
    assert not workspace.outbox.exists()


def test_bad_rows_fail_the_night_before_anything_is_sent(workspace, capsys, monkeypatch):
    monkeypatch.setenv("NIGHTJAR_QUARANTINE_MAX_SHARE", "0")  # no bad row may be set aside
    write_all(workspace.landing)
    write_folder(
        workspace.landing,
        D,
        contacts=[contact("c1", birth_date="1990-13-01")],
        orders=[order("o1", "c1", "2025-11-20T10:00:00Z", "ten")],
    )
    assert workspace.run(D) == 1
    err = capsys.readouterr().err
    assert (
        "crm_contacts.csv row 1, column birth_date: must be a date YYYY-MM-DD (value '1***')" in err
    )
    assert (
        "orders.csv row 1, column total_amount: must be a decimal number ≥ 0 with at most "
        "4 decimal places (value 'ten')" in err
    )
    assert not workspace.outbox.exists()
    assert workspace.query("select count(*) from raw.orders") == [(0,)]


@pytest.mark.slow  # several nights: make test-slow keeps make test within ten minutes
def test_catch_up_loads_every_missed_folder_in_one_run_and_sends_only_for_its_date(workspace):
    write_all(workspace.landing)  # nothing has run for HISTORY nor D
    suppress(workspace.warehouse, "suppressed@example.com")
    assert workspace.run(D) == 0
    # four extracts a folder: the scenario lands the optional order lines too
    assert workspace.query(
        "select business_date::varchar, count(*) from raw.loaded_files group by 1 order by 1"
    ) == [(HISTORY, 4), (D, 4)]
    assert workspace.query("select distinct business_date::varchar from nightjar.send_ledger") == [
        (D,)
    ]
    assert not (workspace.outbox / HISTORY).exists()

    # Loading D again replaces its rows, never doubles them.
    before = workspace.query("select count(*) from raw.orders")
    assert workspace.run(D) == 0
    assert workspace.query("select count(*) from raw.orders") == before


@pytest.mark.slow  # three nights, one a full refresh: make test-slow
def test_the_ledger_survives_a_full_refresh_and_nothing_is_sent_twice(workspace):
    write_all(workspace.landing)
    suppress(workspace.warehouse, "suppressed@example.com")
    assert workspace.run(D) == 0
    ledger = workspace.query("select * from nightjar.send_ledger order by send_id")
    subprocess.run(
        [
            dbt_executable(), "build", "--full-refresh", "--profiles-dir", str(DBT_PROJECT_DIR),
            "--exclude-resource-type", "unit_test", "--vars", json.dumps({"as_of_date": D}),
            "--target-path", "target/full-refresh-test",
        ],
        cwd=DBT_PROJECT_DIR,
        env={
            **os.environ,
            "NIGHTJAR_WAREHOUSE": str(workspace.warehouse),
            "NIGHTJAR_STATE": str(workspace.state),
        },
        check=True,
        capture_output=True,
    )  # fmt: skip
    assert workspace.query("select * from nightjar.send_ledger order by send_id") == ledger
    lines = {c: workspace.outbox_lines(D, c) for c in ("loyalty", "winback", "birthday")}
    assert all(lines.values())
    assert workspace.run(D) == 0
    assert {c: workspace.outbox_lines(D, c) for c in lines} == lines


def test_the_cli_refuses_a_date_outside_the_partitions(workspace, capsys):
    from pipelines.cli import main

    assert main(["run", "--date", "1899-12-31"]) == 2
    assert "1899-12-31 is not a business date Nightjar can run" in capsys.readouterr().err


def test_spark_without_java_is_refused_before_anything_loads(workspace, monkeypatch, capsys):
    from pipelines.cli import main

    write_all(workspace.landing)
    monkeypatch.setenv("NIGHTJAR_ENGINE", "spark")
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert main(["run", "--date", D]) == 2
    said = capsys.readouterr().err
    assert "NIGHTJAR_ENGINE=spark needs" in said and "Java, 17 or later (no `java` on PATH" in said
    assert "Nothing was loaded or sent." in said
    assert not workspace.warehouse.exists()


def test_the_nightjar_command_runs_a_date_and_prints_a_summary(workspace):
    write_all(workspace.landing)
    completed = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--date", D],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert (
        "loaded:  crm_contacts 18 rows (2 folder(s)); order_lines 6 rows (2 folder(s)); "
        "orders 14 rows (2 folder(s))" in completed.stdout
    )
    assert (
        "cohorts as of 2025-11-20: cohort_birthday 3 (+3 -0); cohort_loyalty 6 (+6 -0)\n"
        in completed.stdout
    )
    assert "send_birthday: 3 sent via outbox" in completed.stdout
    # a journey's send prints its steps tonight: winback's two lapses enter, step 1 goes
    assert "send_winback: 2 sent via outbox\n" in completed.stdout
    assert "| winback_1 | 2 | 2 | 0 | — |" in completed.stdout
    assert (
        "send_loyalty: 3 sent via outbox; not messaged: 1 deleted, 1 invalid_email, 1 opted_out"
        in completed.stdout
    )
    assert "send_decisions" not in completed.stdout.split("Done. PASS")[-1]


def test_the_demo_never_deletes_a_warehouse_it_did_not_make(workspace, capsys):
    from assets.shared.warehouse import connect, ensure_schema
    from pipelines.cli import main

    with connect(workspace.warehouse) as con:
        ensure_schema(con)
    (workspace.landing / ".nightjar-demo").touch()  # a demo landing, but not a demo warehouse
    assert main(["demo", "--contacts", "10", "--days", "2", "--end", D]) == 2
    assert "was not made by the demo" in capsys.readouterr().err
    assert workspace.warehouse.exists()


def test_a_dry_run_counts_and_renders_every_message_but_sends_and_records_nothing(
    workspace, capsys
):
    from pipelines.cli import main

    write_all(workspace.landing)
    suppress(workspace.warehouse, "suppressed@example.com")
    assert main(["run", "--date", D, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert (
        "send_loyalty: would send 2 of 6; not messaged: 1 deleted, 1 invalid_email, "
        "1 opted_out, 1 suppressed" in out
    )
    assert "send_birthday: would send 3" in out
    assert "To: 0***@example.com · occasion 2025" in out  # the first member, masked
    assert (
        "**Happy birthday from all of us** (template `d-10000000000000000000000000000003`)" in out
    )
    assert "00017@example.com" not in out
    assert not workspace.outbox.exists()
    assert workspace.query("select count(*) from nightjar.send_ledger") == [(0,)]
    assert workspace.query("select count(*) from nightjar.cohort_membership") == [(0,)]

    # The real run afterwards sends everything.
    assert workspace.run(D) == 0
    assert len(workspace.outbox_lines(D, "birthday")) == 3
