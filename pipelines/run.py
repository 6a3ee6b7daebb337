"""`nightjar run`: one business date's nightly graph, in-process, one run at a time per
warehouse, recorded in the project's Dagster instance; a date that cannot run is refused
before anything loads.

Nothing here imports Dagster at module level: a bad date or setting is refused in a blink,
before the seconds Dagster and dbt take to load.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import time
import uuid
from pathlib import Path

from models.landing import EARLIEST_BUSINESS_DATE, first_business_date
from models.settings import Settings
from pipelines.run_lock import RunLockBusy, run_lock

EXIT_FAILED, EXIT_REFUSED, EXIT_BUSY = 1, 2, 3

PROJECT = Path(__file__).resolve().parent.parent
# The project's instance settings: telemetry off, and the warehouse pool's limit of 1.
DAGSTER_YAML = PROJECT / "dagster.yaml"
# The instance `make dev` opens (the Makefile's DAGSTER_HOME): runs started from the CLI are
# recorded there unless DAGSTER_HOME says otherwise.
PROJECT_DAGSTER_HOME = PROJECT / ".dagster"


def run_date(
    business_date: dt.date,
    settings: Settings,
    dry_run: bool = False,
    approve: tuple = (),
    full_refresh: bool = False,
    baseline: bool = False,
    send_backlog: bool = False,
    pause: tuple = (),
) -> int:
    """Materialize the nightly graph for one business date in-process; 0 when all succeeded.

    A dry run loads and builds as usual, then renders and counts every message without
    sending one or writing the ledger. `baseline` / `send_backlog`: what a first night does
    (assets/sends/checks.py). One run at a time per warehouse: a second one waits for the
    first up to NIGHTJAR_RUN_LOCK_WAIT_SECONDS, then stops with EXIT_BUSY."""
    refusal = (
        date_refusal(business_date, settings)
        or paths_refusal(settings)
        or state_refusal(settings)
        or engine_refusal(settings)
    )
    if refusal:
        print(f"nightjar: {refusal}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        # Before anything is loaded, or even dbt's manifest prepared.
        with run_lock(settings.warehouse, business_date, settings.run_lock_wait_seconds):
            who = os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"
            options = {
                "dry_run": dry_run,
                "approve": list(approve),
                "approved_by": f"nightjar run by {who}",
                "full_refresh": full_refresh,
                "baseline": baseline,
                "send_backlog": send_backlog,
                "pause": list(pause),
            }
            return _run_night(business_date, settings, options)
    except RunLockBusy as busy:
        print(f"nightjar: {busy}", file=sys.stderr)
        return EXIT_BUSY


def date_refusal(business_date: dt.date, settings: Settings) -> str | None:
    """Why `business_date` cannot run, in one sentence, or None. A date runs once it has
    ended in UTC, from the partitions' first date on, as nightly_partitions says."""
    latest = latest_runnable_date()
    today = latest + dt.timedelta(days=1)
    if business_date < EARLIEST_BUSINESS_DATE:
        return (
            f"{business_date} is not a business date Nightjar can run: dates from "
            f"{EARLIEST_BUSINESS_DATE} run once they have ended in UTC (the latest now is "
            f"{latest})."
        )
    first = first_business_date(settings.landing, settings.first_date)
    if business_date < first:
        origin = (
            "NIGHTJAR_FIRST_DATE"
            if settings.first_date
            else f"the first landed folder (in {settings.landing})"
        )
        return (
            f"{business_date} is before {first}, {origin}: there is nothing to run for it. "
            f"Run a date from {first} on."
        )
    if business_date > latest:
        return (
            f"{business_date} has not ended yet (today is {today} UTC): a business date runs "
            f"once it has ended, so the latest that can run now is {latest}."
        )
    return None


def latest_runnable_date() -> dt.date:
    """The latest business date that can run now: yesterday in UTC."""
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def paths_refusal(settings: Settings) -> str | None:
    """A path setting naming the wrong kind of thing, said in one line before anything is
    loaded (DuckDB's own error would name neither the setting nor the remedy)."""
    warehouse, state = settings.warehouse, settings.state_path
    home = os.environ.get("DAGSTER_HOME", "").strip()
    if warehouse.is_dir():
        return (
            f"NIGHTJAR_WAREHOUSE names a folder ({warehouse}): it names the warehouse's "
            f"DuckDB file, e.g. {warehouse / 'warehouse.duckdb'}."
        )
    if state.resolve() == warehouse.resolve():
        return (
            f"NIGHTJAR_STATE names the warehouse itself ({warehouse}): the state is a file of "
            "its own (by default state.duckdb beside the warehouse)."
        )
    if state.is_dir():
        return f"NIGHTJAR_STATE names a folder ({state}): it names the state's DuckDB file."
    if home and Path(home).exists() and not Path(home).is_dir():
        return f"DAGSTER_HOME names a file ({home}): it names the folder of Dagster's instance."
    return None


def state_refusal(settings: Settings) -> str | None:
    """Why the PostgreSQL state (NIGHTJAR_STATE_URL) cannot be used, in one line naming its
    server, never its password; checked before anything is loaded or sent."""
    if not settings.state_url:
        return None
    # Lazy: the state store's drivers load only when a state URL is set.
    from assets.shared.state_store import check

    problem = check(settings.state_url)
    return f"{problem}. Nothing was loaded or sent." if problem else None


def engine_refusal(settings: Settings) -> str | None:
    """What NIGHTJAR_ENGINE=spark lacks on this machine, said before anything is loaded: the
    build would otherwise fail after the night's load, on an import or a JVM that won't start."""
    if settings.engine != "spark":
        return None
    # Lazy, as everything here: Dagster's and the warehouse's modules load after the refusals.
    from assets.shared.spark_files import missing_for_spark

    missing = missing_for_spark()
    if not missing:
        return None
    return f"NIGHTJAR_ENGINE=spark needs {' and '.join(missing)}. Nothing was loaded or sent."


def _programs_problem(settings: Settings, pause: list[str]) -> str | None:
    """What keeps tonight's programs from sending, said before anything loads: a --pause of
    a program that does not exist, or a deliverability setting to fix (docs/contract.md §17)."""
    from models.dbt_vars import did_you_mean
    from models.manifest import load_manifest
    from models.programs import campaigns_from_manifest, project_topics
    from senders.channels import deliverability_problem

    campaigns = campaigns_from_manifest(load_manifest())
    names = [c.name for c in campaigns]
    for name in pause:
        if name not in names:
            return f"--pause {name}: no campaign or journey of that name{did_you_mean(name, names)}"
    sending = [c for c in campaigns if not c.paused_reason(pause)]
    return deliverability_problem(settings, sending, project_topics())


def _run_night(business_date: dt.date, settings: Settings, options: dict) -> int:
    """The night itself; `options`: the nightjar resource's run config."""
    # Lazy: Dagster and dbt's manifest load only once the date has been accepted.
    from models.campaigns import CampaignConfigError
    from models.manifest import ensure_manifest

    try:
        ensure_manifest()
    except CampaignConfigError as error:  # a campaign's or journey's block: named, in one line
        print(f"nightjar: {error}. Nothing was loaded or sent.", file=sys.stderr)
        return EXIT_REFUSED
    problem = _programs_problem(settings, options.get("pause", ()))
    if problem:
        print(f"nightjar: {problem}. Nothing was loaded or sent.", file=sys.stderr)
        return EXIT_REFUSED
    # Lazy, for the same reason: the definitions are Dagster's.
    from pipelines.definitions import defs
    from pipelines.summary import print_summary, run_log

    key = business_date.isoformat()
    started = time.monotonic()
    print(f"nightjar: running {key} (landing {settings.landing}, warehouse {settings.warehouse})")
    run_id = str(uuid.uuid4())  # chosen here, so the log file is named before the run starts
    log_file = settings.reports / key / f"run-{run_id}.log"
    # Dagster's log goes to the run's log file, every event with its traceback; the terminal
    # gets its warnings only, then the summary, and a failed step's cause once, below.
    job = defs.resolve_job_def("nightly_job").with_logger_defs({"nightjar": run_log})
    result = job.execute_in_process(
        partition_key=key,
        instance=_instance(),
        raise_on_error=False,
        run_id=run_id,
        run_config={
            "loggers": {"nightjar": {"config": {"path": str(log_file)}}},
            "resources": {"nightjar": {"config": options}},
        },
    )
    elapsed = time.monotonic() - started
    print_summary(result, key)
    if not result.success:
        _print_failure(result, key, elapsed, log_file)
        return EXIT_FAILED
    print(f"nightjar: {key} done in {elapsed:.1f}s")
    return 0


def _print_failure(result, key: str, elapsed: float, log_file: Path) -> None:
    """A failed night in a few lines, the cause last but one: what failed, why, and where
    the whole story is (which ends with these lines too)."""
    # Lazy: pipelines.summary is Dagster's (loaded by now, but not when the CLI starts).
    from pipelines.summary import failure_lines, run_failure_lines

    told = [
        f"nightjar: {key} FAILED after {elapsed:.1f}s",
        *(failure_lines(result) or run_failure_lines(result)),
    ]
    # A log that cannot be written hides no failure: the terminal still tells it.
    with contextlib.suppress(OSError), log_file.open("a", encoding="utf-8") as log:
        log.write("\n".join(told) + "\n")
    sys.stdout.flush()  # the summary first, where both streams share a terminal
    for line in told:
        print(line, file=sys.stderr)
    print(f"nightjar: every event of the run, tracebacks included: {log_file}", file=sys.stderr)


def _instance():
    """The Dagster instance `nightjar run` records its runs in, always with the project's
    settings: without them Dagster's defaults apply, telemetry on and no pool limit."""
    # Lazy: Dagster (and yaml) load only once the date has been accepted.
    import yaml
    from dagster import DagsterInstance

    # Unset, the project's instance; set to nothing, none: the run is kept in memory only
    # (the tests' choice: thousands of runs would pile up in one instance).
    home = os.environ.get("DAGSTER_HOME", str(PROJECT_DAGSTER_HOME)).strip()
    if not home:
        return DagsterInstance.ephemeral(settings=yaml.safe_load(DAGSTER_YAML.read_text()))
    Path(home).mkdir(parents=True, exist_ok=True)
    # the storage written into its dagster.yaml is under DAGSTER_HOME, unset for the project's
    os.environ["DAGSTER_HOME"] = home
    _write_project_settings(Path(home))
    return DagsterInstance.from_config(home)


def project_settings() -> str:
    """The dagster.yaml of a DAGSTER_HOME: the project's settings and its storage."""
    from pipelines.dagster_storage import HOME_STORAGE

    return DAGSTER_YAML.read_text() + HOME_STORAGE


def _write_project_settings(home: Path) -> None:
    """Give a DAGSTER_HOME without settings the project's dagster.yaml; never replace one."""
    if any((home / name).exists() for name in ("dagster.yaml", "dagster.yml")):
        return
    # Written aside, then linked into place: a link never replaces a file, and a second
    # `nightjar run` starting at the same moment never reads a half-written one.
    draft = home / f".dagster.yaml.{os.getpid()}"
    draft.write_text(project_settings())
    try:
        os.link(draft, home / "dagster.yaml")
    except FileExistsError:
        pass  # the other run's copy is the same file
    finally:
        draft.unlink()
