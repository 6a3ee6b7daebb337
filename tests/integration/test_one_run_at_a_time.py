"""One run at a time per warehouse, and a night loaded whole or not at all.

A second `nightjar run` started while the first is working stops at once with one line naming
the first, which goes on unharmed; a fault in one extract loads none of the night's three.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.corpus import CASES, good_folder
from tests.support.scenario import HISTORY, D, write_all

CAMPAIGNS = ("loyalty", "winback", "birthday")
EXTRACTS = ("crm_contacts", "orders", "web_events")


def _nightjar(*args: str) -> list[str]:
    # unbuffered, so that the test sees "nightjar: running" as the run prints it
    return [sys.executable, "-u", "-m", "pipelines.cli", *args]


def _wait_for_line(path: Path, text: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(encoding="utf-8"):
        assert process.poll() is None, path.read_text(encoding="utf-8")
        assert time.monotonic() < deadline, f"no {text!r} in {timeout}s"
        time.sleep(0.05)


def test_a_second_run_stops_with_one_line_and_the_first_finishes_whole(workspace, tmp_path):
    write_all(workspace.landing)
    out = tmp_path / "first.out"
    with out.open("w") as first_out:
        first = subprocess.Popen(
            _nightjar("run", "--date", D), stdout=first_out, stderr=subprocess.STDOUT
        )
        try:
            # The first is past its start-up and executing the night when the second starts.
            _wait_for_line(out, f"nightjar: running {D}", first, timeout=120)
            second = subprocess.run(
                _nightjar("run", "--date", D), capture_output=True, text=True, timeout=60
            )
            first_was_running = first.poll() is None
            assert first.wait(timeout=300) == 0, out.read_text()
        finally:
            if first.poll() is None:
                first.kill()

    assert first_was_running
    assert second.returncode == 3
    assert second.stdout == ""
    (line,) = second.stderr.splitlines()
    assert line.startswith(f"nightjar: another run (pid {first.pid}, business date {D}, started ")
    assert f"holds {workspace.warehouse}; waited 0s." in line
    # The first is whole: both nights' four extracts loaded (the scenario lands the optional
    # order lines too), every campaign sent, once.
    assert workspace.query(
        "select business_date::varchar, count(distinct extract) from raw.loaded_files "
        "group by 1 order by 1"
    ) == [(HISTORY, 4), (D, 4)]
    # every message of the night, the journeys' included
    sent = [
        m for f in (workspace.outbox / D).glob("*.jsonl") for m in workspace.outbox_lines(D, f.stem)
    ]
    assert {c for c in CAMPAIGNS if workspace.outbox_lines(D, c)} == set(CAMPAIGNS)
    assert len({m["send_id"] for m in sent}) == len(sent)
    assert workspace.query(
        "select count(*) from nightjar.send_ledger where business_date = ? and status = 'accepted'",
        [D],
    ) == [(len(sent),)]
    assert "FAILED" not in out.read_text()


def test_a_second_run_waits_as_long_as_the_setting_says_then_names_the_first(
    workspace, monkeypatch, capsys
):
    import datetime as dt

    from pipelines.cli import main
    from pipelines.run_lock import lock_path, run_lock

    write_all(workspace.landing)
    monkeypatch.setenv("NIGHTJAR_RUN_LOCK_WAIT_SECONDS", "1")
    with run_lock(workspace.warehouse, dt.date.fromisoformat(HISTORY), 0):
        started = time.monotonic()
        assert main(["run", "--date", D]) == 3
        waited = time.monotonic() - started
    assert 1 <= waited < 5
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert f"another run (pid {os.getpid()}, business date {HISTORY}, started " in line
    assert "waited 1s" in line and "NIGHTJAR_RUN_LOCK_WAIT_SECONDS" in line
    assert not workspace.warehouse.exists()  # nothing was loaded
    # Released, the lock names no one, and the next run goes ahead.
    assert lock_path(workspace.warehouse).read_text() == ""
    assert main(["run", "--date", D]) == 0


def test_a_killed_run_leaves_no_stale_lock(workspace):
    import datetime as dt

    from pipelines.run_lock import lock_path, run_lock

    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_THE_LOCK, str(workspace.warehouse)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        record = json.loads(lock_path(workspace.warehouse).read_text())
        assert (record["pid"], record["business_date"]) == (holder.pid, D)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel let go of it with the process: taken at once, without waiting.
    with run_lock(workspace.warehouse, dt.date.fromisoformat(D), 0) as me:
        assert me.pid == os.getpid()


_HOLD_THE_LOCK = f"""
import datetime, sys, time
from pathlib import Path

import pytest
from pipelines.run_lock import run_lock
with run_lock(Path(sys.argv[1]), datetime.date.fromisoformat("{D}"), 0):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.mark.slow  # 3 nights: make test-slow keeps make test within ten minutes
def test_a_fault_in_orders_loads_none_of_the_nights_three_extracts(workspace, capsys):
    good_folder(workspace.landing, HISTORY)
    assert workspace.run(HISTORY) == 0
    (truncated,) = [c for c in CASES if c.name == "orders truncated"]
    folder = good_folder(workspace.landing, D)
    truncated.breaks(folder)

    assert workspace.run(D) == 1
    assert "orders.csv: 399 rows, fewer than the 400" in capsys.readouterr().err
    loaded = "select extract from raw.loaded_files where business_date = ?"
    assert workspace.query(loaded, [D]) == []
    for extract in EXTRACTS:
        rows = f"select count(*) from raw.{extract} where business_date = ?"
        assert workspace.query(rows, [D]) == [(0,)], extract
        assert workspace.query(rows, [HISTORY]) == [(400,)], extract

    good_folder(workspace.landing, D)  # exported again, whole
    assert workspace.run(D) == 0
    assert sorted(workspace.query(loaded, [D])) == [(e,) for e in EXTRACTS]
