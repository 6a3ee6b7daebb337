"""A failed night says what failed and why in a few lines a person reads; the details, with
tracebacks, go to the run's log file. A bad date or setting is refused at once, before
Dagster is even imported."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.corpus import CASES, good_folder
from tests.support.landing import contact, order, write_folder

YESTERDAY, TODAY = "2025-11-19", "2025-11-20"
MAX_STDERR_LINES = 8
LOG_LINE = "nightjar: every event of the run, tracebacks included: "


def terminal(capsys) -> tuple[list[str], list[str]]:
    """What the run printed: all of it in order (the CLI prints its summary before the
    failure), and stderr alone."""
    printed = capsys.readouterr()
    return printed.out.splitlines() + printed.err.splitlines(), printed.err.splitlines()


def assert_told_in_a_few_lines(capsys, cause: str) -> Path:
    """The last five lines name the cause, stderr is a handful of lines, nothing is said
    twice; the last line names the run's log, which has the cause and its traceback."""
    lines, err = terminal(capsys)
    assert any(cause in line for line in lines[-5:]), "\n".join(lines[-5:])
    assert len(err) <= MAX_STDERR_LINES, "\n".join(err)
    assert len(set(err)) == len(err), "\n".join(err)
    assert sum(line.count(cause) for line in lines) == 1, "\n".join(lines)
    assert err[-1].startswith(LOG_LINE)
    log = Path(err[-1].removeprefix(LOG_LINE))
    assert log.parent.parent.name == "reports" and log.name.startswith("run-")
    text = log.read_text(encoding="utf-8")
    assert cause in text and "Stack Trace:" in text
    return log


def test_a_truncated_file_is_one_line_naming_the_file(workspace, capsys):
    (truncated,) = [c for c in CASES if c.name == "orders truncated"]
    truncated.breaks(good_folder(workspace.landing, TODAY))
    assert workspace.run(TODAY) == 1
    log = assert_told_in_a_few_lines(
        capsys, "orders.csv: 399 rows, fewer than the 400 the exporter recorded"
    )
    assert log.parent.name == TODAY


def test_a_missing_folder_says_it_has_not_landed(workspace, capsys):
    good_folder(workspace.landing, YESTERDAY)
    assert workspace.run(TODAY) == 1
    assert_told_in_a_few_lines(
        capsys,
        f"The extracts for {TODAY} have not landed yet: there is no folder "
        f"{workspace.landing / TODAY} (the latest folder is {YESTERDAY}).",
    )


def test_a_folder_missing_between_others_says_so(workspace, capsys):
    write_folder(workspace.landing, "2025-11-18", contacts=[contact("c1")])
    write_folder(workspace.landing, TODAY, contacts=[contact("c2")])
    assert workspace.run(YESTERDAY) == 1
    assert_told_in_a_few_lines(
        capsys,
        f"The extracts for {YESTERDAY} are missing: there is no folder "
        f"{workspace.landing / YESTERDAY}, though later dates have landed (up to {TODAY}).",
    )


def test_a_wrong_landing_root_says_the_folder_does_not_exist(workspace, monkeypatch, capsys):
    nowhere = workspace.root / "no-such-landing"
    monkeypatch.setenv("NIGHTJAR_LANDING", str(nowhere))
    assert workspace.run(TODAY) == 1
    assert_told_in_a_few_lines(
        capsys, f"The landing folder {nowhere} does not exist: set NIGHTJAR_LANDING"
    )


def test_an_empty_landing_says_nothing_has_landed(workspace, capsys):
    assert workspace.run(TODAY) == 1
    assert_told_in_a_few_lines(
        capsys, f"No extracts have landed in {workspace.landing} (no YYYY-MM-DD folder in it)"
    )


def test_a_date_before_the_first_folder_says_so(workspace, capsys):
    good_folder(workspace.landing, TODAY)
    assert workspace.run(YESTERDAY) == 1
    assert_told_in_a_few_lines(
        capsys,
        f"{YESTERDAY} is before the first landed folder, {TODAY} (in {workspace.landing})",
    )


def test_a_dbt_build_failing_names_the_model_and_the_database_error(
    workspace, dbt_fails_half_way, capsys
):
    good_folder(workspace.landing, TODAY)
    dbt_fails_half_way(True)
    assert workspace.run(TODAY) == 1
    assert_told_in_a_few_lines(
        capsys,
        'dbt build failed in model send_decisions: Binder Error: Referenced column "not_a_column"',
    )


def test_a_blocked_send_check_names_the_check_and_how_to_release_it(workspace, capsys):
    good_folder(workspace.landing, YESTERDAY)  # 400 big spenders: all in loyalty
    assert workspace.run(YESTERDAY) == 0
    capsys.readouterr()
    newcomers = [contact(f"n{i:03d}", updated_at=f"{TODAY}T01:00:00Z") for i in range(160)]
    orders = [order(f"on{i:03d}", f"n{i:03d}", f"{TODAY}T09:00:00Z", "2000") for i in range(160)]
    write_folder(workspace.landing, TODAY, contacts=newcomers, orders=orders)
    assert workspace.run(TODAY) == 1
    assert_told_in_a_few_lines(
        capsys, f"nightjar run --date {TODAY} --approve cohort_size:cohort_loyalty"
    )


# Refused before Dagster is imported: the probe runs the CLI's main in a fresh interpreter
# and reports whether Dagster was loaded, and how long main took.
_PROBE = """
import sys, time
started = time.monotonic()
from pipelines.cli import main
code = main(sys.argv[1:])
print(f"PROBE {code} {'dagster' in sys.modules} {time.monotonic() - started:.3f}")
"""


def _refused_at_once(*args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if completed.returncode == 2:  # argparse exits before the probe can report
        return completed.stderr
    (report,) = [line for line in completed.stdout.splitlines() if line.startswith("PROBE")]
    _, code, dagster_imported, seconds = report.split()
    assert (code, dagster_imported) == ("2", "False"), completed.stderr
    assert float(seconds) < 1.0
    return completed.stderr


@pytest.mark.parametrize(
    ("setting", "value", "said"),
    [
        ("NIGHTJAR_QUARANTINE_MAX_SHARE", "abc", "NIGHTJAR_QUARANTINE_MAX_SHARE='abc': must be"),
        ("NIGHTJAR_RUN_LOCK_WAIT_SECONDS", "-1", "NIGHTJAR_RUN_LOCK_WAIT_SECONDS='-1': must be"),
    ],
)
def test_a_bad_setting_is_one_line_before_dagster_is_imported(
    workspace, monkeypatch, setting, value, said
):
    monkeypatch.setenv(setting, value)
    err = _refused_at_once("run", "--date", TODAY)
    assert err.startswith(f"nightjar: {said}") and err.count("\n") == 1, err


def test_a_date_that_is_no_date_is_one_line(workspace):
    started = time.monotonic()
    err = _refused_at_once("run", "--date", "2025-13-01")
    assert time.monotonic() - started < 5  # a fresh interpreter included
    assert err == (
        "nightjar run: argument --date: '2025-13-01' is not a date YYYY-MM-DD "
        "(see nightjar run --help)\n"
    )


def test_a_date_not_ended_yet_is_one_line_before_dagster_is_imported(workspace):
    today = dt.datetime.now(dt.UTC).date()
    err = _refused_at_once("run", "--date", today.isoformat())
    assert err == (
        f"nightjar: {today} has not ended yet (today is {today} UTC): a business date runs "
        f"once it has ended, so the latest that can run now is {today - dt.timedelta(days=1)}.\n"
    )


def test_a_date_before_the_partitions_is_one_line_before_dagster_is_imported(workspace):
    err = _refused_at_once("run", "--date", "1899-12-31")
    assert err.startswith("nightjar: 1899-12-31 is not a business date Nightjar can run: ")
    assert err.count("\n") == 1


def test_a_date_before_the_first_landed_folder_is_one_line_before_dagster_is_imported(
    workspace, monkeypatch
):
    # The partitions start at the first landed folder when NIGHTJAR_FIRST_DATE is not set.
    monkeypatch.setenv("NIGHTJAR_FIRST_DATE", "")
    good_folder(workspace.landing, TODAY)
    err = _refused_at_once("run", "--date", YESTERDAY)
    assert err == (
        f"nightjar: {YESTERDAY} is before {TODAY}, the first landed folder (in "
        f"{workspace.landing}): there is nothing to run for it. Run a date from {TODAY} on.\n"
    )


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("warehouse folder", "NIGHTJAR_WAREHOUSE names a folder ({root}): it names the "
         "warehouse's DuckDB file, e.g. {root}/warehouse.duckdb."),
        ("state is the warehouse", "NIGHTJAR_STATE names the warehouse itself ({warehouse}): "
         "the state is a file of its own (by default state.duckdb beside the warehouse)."),
        ("dagster home file", "DAGSTER_HOME names a file ({file}): it names the folder of "
         "Dagster's instance."),
    ],
)  # fmt: skip
def test_a_path_setting_naming_the_wrong_thing_is_one_line(workspace, monkeypatch, kind, said):
    good_folder(workspace.landing, TODAY)
    file = workspace.root / "a-file"
    file.write_text("not a folder")
    if kind == "warehouse folder":
        monkeypatch.setenv("NIGHTJAR_WAREHOUSE", str(workspace.root))
    elif kind == "state is the warehouse":
        monkeypatch.setenv("NIGHTJAR_STATE", str(workspace.warehouse))
    else:
        monkeypatch.setenv("DAGSTER_HOME", str(file))
    err = _refused_at_once("run", "--date", TODAY)
    text = said.format(root=workspace.root, warehouse=workspace.warehouse, file=file)
    assert err == f"nightjar: {text}\n"
