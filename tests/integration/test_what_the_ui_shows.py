"""What `make dev` shows: the runs started from the CLI, and partitions from the first landed
date, not five empty years at "0% filled"."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from pipelines.run import PROJECT, PROJECT_DAGSTER_HOME
from tests.support.corpus import CASES, good_folder
from tests.support.landing import contact, write_folder

TODAY = "2025-11-20"
LOG_LINE = "nightjar: every event of the run, tracebacks included: "


def test_the_cli_records_its_runs_where_make_dev_looks(workspace, monkeypatch, capsys):
    from dagster import DagsterInstance

    # Where `make dev` opens the UI (the Makefile's DAGSTER_HOME, unless one is exported).
    environ = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    shown = subprocess.run(
        ["make", "-s", "--eval", "ui-home: ; @echo $(DAGSTER_HOME)", "ui-home"],
        cwd=PROJECT,
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(shown) == PROJECT_DAGSTER_HOME

    # A night that fails at its first step is enough: it is a run the operator must see.
    monkeypatch.delenv("DAGSTER_HOME")
    (truncated,) = [c for c in CASES if c.name == "orders truncated"]
    truncated.breaks(good_folder(workspace.landing, TODAY))
    assert workspace.run(TODAY) == 1
    log = capsys.readouterr().err.splitlines()[-1].removeprefix(LOG_LINE)
    run_id = Path(log).stem.removeprefix("run-")

    instance = DagsterInstance.from_config(str(PROJECT_DAGSTER_HOME))
    try:
        run = instance.get_run_by_id(run_id)
        assert run is not None, f"run {run_id} is not in {PROJECT_DAGSTER_HOME}"
        assert run.tags["dagster/partition"] == TODAY
        assert run.status.value == "FAILURE"
    finally:
        instance.delete_run(run_id)  # the developer's instance keeps only its own runs
        instance.dispose()


def _partitions(landing: Path, first_date: str = "") -> tuple[str, int]:
    """The nightly partitions' first date and count, as the definitions load them."""
    probe = (
        "from assets.shared.partitions import nightly_partitions as p; "
        "print(p.start.date(), len(p.get_partition_keys()))"
    )
    environ = {**os.environ, "NIGHTJAR_LANDING": str(landing), "NIGHTJAR_FIRST_DATE": first_date}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=environ, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


def test_partitions_start_at_the_first_landed_date_or_the_setting(workspace):
    for day in ("2025-11-18", "2025-11-19"):
        write_folder(workspace.landing, day, contacts=[contact("c1")])
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)

    first, count = _partitions(workspace.landing)
    assert (first, count) == ("2025-11-18", (yesterday - dt.date(2025, 11, 18)).days + 1)

    first, count = _partitions(workspace.landing, first_date="2025-11-01")
    assert (first, count) == ("2025-11-01", (yesterday - dt.date(2025, 11, 1)).days + 1)

    # No landing yet: the latest date that can run, not a century of empty dates.
    first, count = _partitions(workspace.root / "nothing-landed")
    assert (first, count) == (yesterday.isoformat(), 1)

    # A history of 1997: its own dates.
    write_folder(workspace.landing, "1997-01-01", contacts=[contact("c0")])
    first, _ = _partitions(workspace.landing)
    assert first == "1997-01-01"
