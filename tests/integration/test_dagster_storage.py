"""Dagster's SQLite instance with its connections kept open (pipelines/dagster_storage.py,
named by the project's dagster.yaml): the runs it records are Dagster's own files, read the
same by `storage: sqlite:`; concurrent writers lose no event; a long-lived process (the
webserver) does not hold a file open for every run it has read; wiping still wipes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from dagster import AssetKey, DagsterInstance, asset, materialize

from pipelines.dagster_storage import (
    KeptSqliteEventLogStorage,
    KeptSqliteRunStorage,
)
from pipelines.run import _instance

REPO = Path(__file__).resolve().parents[2]


@asset
def tonight() -> int:
    return 1


def _kept_instance(home: Path, monkeypatch) -> DagsterInstance:
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = _instance()
    # the project's dagster.yaml names them
    assert type(instance.event_log_storage) is KeptSqliteEventLogStorage
    assert type(instance.run_storage) is KeptSqliteRunStorage
    return instance


def _plain_instance(home: Path) -> DagsterInstance:
    """Dagster's own SQLite storage over the same files."""
    plain = home.parent / f"{home.name}-plain"
    plain.mkdir(exist_ok=True)
    (plain / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {home}\n")
    return DagsterInstance.from_config(str(plain))


def _open_files_under(folder: Path) -> int:
    fds = Path("/proc/self/fd")
    held = 0
    for fd in fds.iterdir():
        try:
            held += os.readlink(fd).startswith(str(folder))
        except OSError:
            continue  # closed while listing
    return held


def test_runs_recorded_with_kept_connections_read_the_same_in_dagsters_own_storage(
    tmp_path, monkeypatch
):
    home = tmp_path / "home"
    kept = _kept_instance(home, monkeypatch)
    runs = [materialize([tonight], instance=kept).run_id for _ in range(3)]

    plain = _plain_instance(home)
    assert {r.run_id for r in plain.get_runs()} == set(runs)
    for run_id in runs:
        assert plain.get_run_by_id(run_id).is_success
        assert len(plain.all_logs(run_id)) == len(kept.all_logs(run_id)) > 5
    latest = plain.get_latest_materialization_event(AssetKey("tonight"))
    assert latest is not None and latest.run_id == runs[-1]

    # and the other way round: a run Dagster's own storage wrote is read by the kept one
    theirs = materialize([tonight], instance=plain).run_id
    assert kept.get_run_by_id(theirs).is_success
    assert kept.get_latest_materialization_event(AssetKey("tonight")).run_id == theirs


def test_threads_writing_one_run_at_once_lose_no_event(tmp_path, monkeypatch):
    # the threads of one process take turns (the event log's lock, as in Dagster's); other
    # processes are the next test's
    instance = _kept_instance(tmp_path / "home", monkeypatch)
    run_id = materialize([tonight], instance=instance).run_id
    before = len(instance.all_logs(run_id))

    def write(n: int) -> None:
        for i in range(50):
            instance.report_engine_event(f"writer {n}, event {i}", instance.get_run_by_id(run_id))

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()

    logs = _plain_instance(tmp_path / "home").all_logs(run_id)
    assert len(logs) == before + 200
    assert {e.message for e in logs} >= {f"writer 3, event {i}" for i in range(50)}


def test_a_run_page_open_in_the_ui_sees_the_events_another_process_writes(tmp_path, monkeypatch):
    """The webserver watches a run that a run worker, with its own connections kept open,
    is writing: each new event reaches the page (Dagster's file watcher would wait for a
    checkpoint of SQLite's write-ahead log, which kept connections put off)."""
    home = tmp_path / "home"
    webserver = _kept_instance(home, monkeypatch)
    worker = DagsterInstance.from_config(str(home))
    assert type(worker.event_log_storage) is KeptSqliteEventLogStorage
    run_id = materialize([tonight], instance=worker).run_id
    shown: list[str] = []
    arrived = threading.Event()

    def on_event(entry, _cursor) -> None:
        shown.append(entry.message)
        if entry.message == "news 3":
            arrived.set()

    webserver.event_log_storage.watch(run_id, None, on_event)
    for n in range(1, 4):
        worker.report_engine_event(f"news {n}", worker.get_run_by_id(run_id))
    assert arrived.wait(timeout=20), f"the page showed only {len(shown)} events"
    assert [m for m in shown if m.startswith("news")] == ["news 1", "news 2", "news 3"]
    webserver.dispose()
    worker.dispose()


_WRITER = """
import sys
from dagster import asset, materialize
from pipelines.run import _instance

@asset
def tonight() -> int:
    return 1

instance = _instance()
for _ in range(int(sys.argv[1])):
    assert materialize([tonight], instance=instance).success
"""


def test_two_processes_recording_runs_at_once_lose_none(tmp_path, monkeypatch):
    """Two nights' processes (a night and a run launched from the UI, say) write the same
    SQLite files through their own kept connections: SQLite's lock and busy timeout take
    them in turn, and every run and event is recorded."""
    home = tmp_path / "home"
    _kept_instance(home, monkeypatch)  # the home with the project's dagster.yaml
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, "8"], env=env, cwd=REPO) for _ in range(2)
    ]
    assert [w.wait(timeout=300) for w in writers] == [0, 0]

    runs = _plain_instance(home).get_runs()
    assert len(runs) == 16 and all(run.is_success for run in runs)


def test_a_long_lived_process_holds_the_files_of_the_latest_runs_only(tmp_path, monkeypatch):
    home = tmp_path / "home"
    instance = _kept_instance(home, monkeypatch)
    runs = [materialize([tonight], instance=instance).run_id for _ in range(32)]

    def read(run_ids: list[str]) -> int:
        for run_id in run_ids:  # as the webserver, reading each run's events
            assert instance.all_logs(run_id)
        return _open_files_under(home)

    # each database kept (8 runs', the index's and the runs list's): its idle connection,
    # holding the database, its -wal and its -shm
    assert read(runs[:8]) <= (8 + 2) * 3
    held = _open_files_under(home)
    assert read(runs) <= held, "as many files open after reading four times as many runs"
    instance.dispose()
    assert _open_files_under(home) == 0


def test_wiping_the_instance_wipes_the_runs_and_the_next_run_is_recorded(tmp_path, monkeypatch):
    home = tmp_path / "home"
    instance = _kept_instance(home, monkeypatch)
    materialize([tonight], instance=instance)

    instance.wipe()
    assert instance.get_runs() == []
    assert instance.get_latest_materialization_event(AssetKey("tonight")) is None
    after = materialize([tonight], instance=instance).run_id
    plain = _plain_instance(home)
    assert [r.run_id for r in plain.get_runs()] == [after]
    assert plain.get_latest_materialization_event(AssetKey("tonight")).run_id == after
