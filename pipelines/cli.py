"""The `nightjar` command: run a business date, generate sample data, or run the demo."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import NoReturn

# Nothing here imports Dagster at module level: a bad date or setting is refused in a blink,
# before the seconds Dagster and dbt take to load.
from pipelines.landing import EARLIEST_BUSINESS_DATE, first_business_date
from pipelines.run_lock import RunLockBusy, run_lock
from pipelines.settings import Settings, load_settings

DEMO_MARKER = ".nightjar-demo"
EXIT_FAILED, EXIT_REFUSED, EXIT_BUSY = 1, 2, 3


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


PROJECT = Path(__file__).resolve().parent.parent
# The project's instance settings: telemetry off, and the warehouse pool's limit of 1.
DAGSTER_YAML = PROJECT / "dagster.yaml"
# The instance `make dev` opens (the Makefile's DAGSTER_HOME): runs started from the CLI are
# recorded there unless DAGSTER_HOME says otherwise.
PROJECT_DAGSTER_HOME = PROJECT / ".dagster"


def _instance():
    """The Dagster instance `nightjar run` records its runs in, always with the project's
    settings: without them Dagster's defaults apply, telemetry on and no pool limit."""
    import yaml
    from dagster import DagsterInstance

    # Unset, the project's instance; set to nothing, none: the run is kept in memory only
    # (the tests' choice: thousands of runs would pile up in one instance).
    home = os.environ.get("DAGSTER_HOME", str(PROJECT_DAGSTER_HOME)).strip()
    if not home:
        return DagsterInstance.ephemeral(settings=yaml.safe_load(DAGSTER_YAML.read_text()))
    Path(home).mkdir(parents=True, exist_ok=True)
    _write_project_settings(Path(home))
    return DagsterInstance.from_config(home)


def _write_project_settings(home: Path) -> None:
    """Give a DAGSTER_HOME without settings the project's dagster.yaml; never replace one."""
    if any((home / name).exists() for name in ("dagster.yaml", "dagster.yml")):
        return
    # Written aside, then linked into place: a link never replaces a file, and a second
    # `nightjar run` starting at the same moment never reads a half-written one.
    draft = home / f".dagster.yaml.{os.getpid()}"
    shutil.copyfile(DAGSTER_YAML, draft)
    try:
        os.link(draft, home / "dagster.yaml")
    except FileExistsError:
        pass  # the other run's copy is the same file
    finally:
        draft.unlink()


def date_refusal(business_date: dt.date, settings: Settings) -> str | None:
    """Why `business_date` cannot run, in one sentence, or None. A date runs once it has
    ended in UTC, from the partitions' first date on, as nightly_partitions says."""
    today = dt.datetime.now(dt.UTC).date()
    latest = today - dt.timedelta(days=1)
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


def state_refusal(settings: Settings) -> str | None:
    """Why the PostgreSQL state (NIGHTJAR_STATE_URL) cannot be used, in one line naming its
    server, never its password; checked before anything is loaded or sent."""
    if not settings.state_url:
        return None
    from pipelines.state_postgres import check

    problem = check(settings.state_url)
    return f"{problem}. Nothing was loaded or sent." if problem else None


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


def run_date(
    business_date: dt.date,
    settings: Settings,
    dry_run: bool = False,
    approve: tuple = (),
    full_refresh: bool = False,
    baseline: bool = False,
    send_backlog: bool = False,
) -> int:
    """Materialize the nightly graph for one business date in-process; 0 when all succeeded.

    A dry run loads and builds as usual, then renders and counts every message without
    sending one or writing the ledger. `baseline` / `send_backlog`: what a first night does
    (assets/send_checks.py). One run at a time per warehouse: a second one waits for the
    first up to NIGHTJAR_RUN_LOCK_WAIT_SECONDS, then stops with EXIT_BUSY."""
    refusal = (
        date_refusal(business_date, settings) or paths_refusal(settings) or state_refusal(settings)
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
            }
            return _run_night(business_date, settings, options)
    except RunLockBusy as busy:
        print(f"nightjar: {busy}", file=sys.stderr)
        return EXIT_BUSY


def _run_night(business_date: dt.date, settings: Settings, options: dict) -> int:
    """The night itself; `options`: the nightjar resource's run config."""
    from pipelines.dbt_setup import ensure_manifest

    ensure_manifest()
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


def generate(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.sample_data import generate_landing

    out = Path(args.out).resolve() if args.out else settings.landing
    started = time.monotonic()
    counts = generate_landing(
        out, contacts=args.contacts, days=args.days, end=args.end, seed=args.seed
    )
    took = time.monotonic() - started
    print(f"nightjar: wrote {counts} to {out} in {took:.1f}s")
    return 0


def _demo_marker(path: Path) -> Path:
    # A folder holds its marker; a file (the warehouse) has one beside it.
    return (
        path / DEMO_MARKER if path.suffix != ".duckdb" else path.with_name(path.name + DEMO_MARKER)
    )


def demo(args: argparse.Namespace, settings: Settings) -> int:
    """A fresh sample landing, then the nightly runs of its last two dates: the second
    night's results measure the first night's sends against its control group.

    It starts from scratch each time, so it deletes the landing, warehouse, state, outbox
    and reports, but only those an earlier demo made: anything else is refused, never touched.
    """
    if args.days < 2:
        print(
            "nightjar demo: --days must be at least 2 (the demo runs two nights)", file=sys.stderr
        )
        return 2
    pending = settings.landing.with_name(settings.landing.name + ".demo-pending")
    owned = [settings.landing, settings.outbox, settings.warehouse, settings.reports, pending]
    # The state too: an earlier demo's ledger would have this one send nothing. A state made
    # beside a demo's warehouse before the state had a marker of its own is the demo's.
    state = settings.state_path
    if state.exists() and _demo_marker(settings.warehouse).exists():
        _demo_marker(state).touch()
    owned.append(state)
    for path in owned:
        if path.exists() and not _demo_marker(path).exists():
            print(
                f"nightjar demo: {path} exists and was not made by the demo; point "
                "NIGHTJAR_LANDING, NIGHTJAR_WAREHOUSE, NIGHTJAR_STATE, NIGHTJAR_OUTBOX and "
                "NIGHTJAR_REPORTS elsewhere.",
                file=sys.stderr,
            )
            return 2
    for path in owned:
        if path.is_dir():
            shutil.rmtree(path)
        for leftover in (path, _demo_marker(path), path.with_name(path.name + ".wal")):
            if leftover.is_file():
                leftover.unlink()
    for path in (settings.landing, settings.outbox, settings.reports, pending):
        path.mkdir(parents=True, exist_ok=True)
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    for path in owned:
        _demo_marker(path).touch()
    # Generated aside, then landed a night at a time: only the latest date landed sends.
    args.out = str(pending)
    generate(args, settings)
    first, last = args.end - dt.timedelta(days=1), args.end
    for folder in sorted(pending.iterdir()):
        if folder.is_dir() and folder.name != last.isoformat():
            folder.rename(settings.landing / folder.name)
    code = run_date(first, settings, send_backlog=True)  # the demo's first night sends
    if code:
        return code
    from pipelines.demo_engagement import write_demo_events

    events = write_demo_events(settings.outbox / first.isoformat(), settings.landing, last, 1)
    print(f"nightjar demo: {events} made-up SendGrid events for {first}'s messages")
    (pending / last.isoformat()).rename(settings.landing / last.isoformat())
    shutil.rmtree(pending)  # now only its demo marker
    return run_date(last, settings)


def docs(args: argparse.Namespace, settings: Settings) -> int:
    """dbt's documentation site as one static page: every model, column, test and the
    lineage, with this installation's thresholds in the descriptions and, once a night has
    run, each column's type from the warehouse."""
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="nightjar-docs-"))
    try:
        catalog, why_not = _catalog_copy(settings.warehouse, scratch)
        if why_not:
            print(f"nightjar docs: no column types in the docs: {why_not}")
        return _generate_docs(settings, catalog, _state_copy(settings.warehouse, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


DOCS_COPY_MAX_BYTES = 1024**3


def _catalog_copy(warehouse: Path, scratch: Path) -> tuple[str, str | None]:
    """A copy of the warehouse for dbt's catalog (the column types): dbt opens its database
    for writing, and must not hold the live file's lock while a night may start."""
    import duckdb

    if not warehouse.exists():
        return ":memory:", f"{warehouse} does not exist yet (make demo)"
    if warehouse.stat().st_size > DOCS_COPY_MAX_BYTES:
        return ":memory:", f"{warehouse} is larger than 1 GB, too large to copy"
    try:
        duckdb.connect(str(warehouse), read_only=True).close()  # not being written now
    except duckdb.Error:
        return ":memory:", f"{warehouse} is being written (a run in progress?)"
    copy = scratch / warehouse.name
    for source in (warehouse, warehouse.with_name(warehouse.name + ".wal")):
        if source.exists():
            shutil.copy2(source, scratch / source.name)
    return str(copy), None


def _state_copy(warehouse: Path, scratch: Path) -> str:
    """A copy of Nightjar's state for dbt to attach (its sources): a run may be writing the
    live one. An empty one before any night ran."""
    import duckdb

    from pipelines.warehouse import state_path_for

    live, copy = state_path_for(warehouse), scratch / "state" / "state.duckdb"
    copy.parent.mkdir()
    for source in (live, live.with_name(live.name + ".wal")):
        if source.exists():
            shutil.copy2(source, copy.parent / source.name)
    duckdb.connect(str(copy)).close()  # creates an empty one where there was none
    return str(copy)


def _generate_docs(settings: Settings, catalog: str, state_copy: str) -> int:
    import json
    import subprocess

    from pipelines.dbt_setup import DBT_PROJECT_DIR, campaigns_var, dbt_executable, load_manifest

    env = {**os.environ, "NIGHTJAR_WAREHOUSE": catalog, "NIGHTJAR_STATE": state_copy}
    variables = {
        **settings.dbt_vars,
        "as_of_date": _yesterday().isoformat(),  # the SQL shown is last night's
        "default_timezone": settings.default_timezone,
        "campaigns": campaigns_var(load_manifest()),
    }
    # A target of its own: the nightly runs' manifest stays as `dbt parse` made it.
    command = [
        dbt_executable(), "docs", "generate", "--static", "--quiet",
        "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", "target/docs",
        "--vars", json.dumps(variables),
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=DBT_PROJECT_DIR, env=env, check=False)
    if completed.returncode:
        print("nightjar docs: dbt docs generate failed (above)", file=sys.stderr)
        return 1
    page = DBT_PROJECT_DIR / "target" / "docs" / "static_index.html"
    print(f"nightjar docs: open {page} in a browser (one file, no server needed)")
    return 0


def webhook(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.webhook import serve

    if not settings.webhook_public_key:
        print(
            "nightjar webhook: set SENDGRID_WEBHOOK_PUBLIC_KEY to the verification key from "
            "SendGrid (Mail Settings > Event Webhook > Signature Verification); unsigned "
            "events are never accepted.",
            file=sys.stderr,
        )
        return 2
    try:
        serve(
            settings.landing,
            settings.webhook_public_key,
            args.host or settings.webhook_host,
            args.port if args.port is not None else settings.webhook_port,
        )
    except ValueError as error:
        print(f"nightjar webhook: {error}", file=sys.stderr)
        return 2
    return 0


def state(args: argparse.Namespace, settings: Settings) -> int:
    """`nightjar state export --to DIR` / `import --from DIR`: the state nothing rebuilds.
    Under the run lock: a night must not write the state while it is copied or replaced."""
    import duckdb

    from pipelines.state import ExportUnreadable, StateNotEmpty, export_state, import_state

    command = f"nightjar state {args.state_command}"
    try:
        with run_lock(settings.warehouse, None, settings.run_lock_wait_seconds, task=command):
            if args.state_command == "export":
                counts = export_state(settings.warehouse, Path(args.to).resolve())
            else:
                source = Path(args.source).resolve()
                counts = import_state(settings.warehouse, source, args.replace)
    except RunLockBusy as busy:
        print(f"{command}: {busy}", file=sys.stderr)
        return EXIT_BUSY
    except (StateNotEmpty, ExportUnreadable, FileNotFoundError, FileExistsError) as error:
        print(f"{command}: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except duckdb.Error as error:
        print(f"{command}: {_state_error(error, settings)}", file=sys.stderr)
        return EXIT_BUSY if "Could not set lock" in str(error) else EXIT_FAILED
    rows = ", ".join(f"{table} {n:,}" for table, n in counts.items())
    print(f"{command}: {rows}")
    return 0


def _state_error(error: Exception, settings: Settings) -> str:
    """One line: another process holds the file (not a damaged state), or the state cannot
    be read."""
    cause = " ".join(str(error).split())
    if "Could not set lock" in cause:
        return (
            f"another process holds the warehouse or the state (a `dagster dev` run, a duckdb "
            f"shell): nothing was changed; run again once it has let go. {cause}"
        )
    return (
        f"the state {settings.state_path} cannot be read: {cause}. Restore the last good "
        "export into a new state file."
    )


def explain_contact(args: argparse.Namespace, settings: Settings) -> int:
    """`nightjar explain --date D --contact ID`: every campaign's decision for one contact
    and why (pipelines/explain.py); reads the warehouse read-only, also while a run holds it."""
    from pipelines.explain import Unknown, explain

    try:
        lines = explain(settings, args.date, args.contact)
    except Unknown as unknown:
        print(f"nightjar explain: {unknown}", file=sys.stderr)
        return EXIT_REFUSED
    print("\n".join(lines))
    return 0


def _yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error (a date that is no date) in one line instead of three."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_REFUSED, f"{self.prog}: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    root = _Parser(prog="nightjar", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the nightly graph for one business date")
    run.add_argument("--date", type=_date, required=True, help="business date YYYY-MM-DD")
    run.add_argument(
        "--dry-run", action="store_true", help="render and count every message; send none"
    )
    run.add_argument(
        "--approve",
        action="append",
        default=[],
        metavar="CHECK",
        help="release a send check that blocked this date (recorded); may be repeated",
    )
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild dbt's incremental models from the whole history (Nightjar does so by "
        "itself on a first build, a re-run or a past date, and after models changed)",
    )
    first_night = run.add_mutually_exclusive_group()
    first_night.add_argument(
        "--baseline",
        action="store_true",
        help="on a first night (nothing ever sent): record every current occasion as served "
        "and message no one; from the next night on only new occasions are sent",
    )
    first_night.add_argument(
        "--send-backlog",
        action="store_true",
        help="on a first night: send to every current member of every cohort",
    )

    state = commands.add_parser("state", help="back up or restore Nightjar's state")
    state_commands = state.add_subparsers(dest="state_command", required=True)
    export = state_commands.add_parser("export", help="write each state table as Parquet")
    export.add_argument("--to", required=True, help="a folder for the Parquet files")
    restore = state_commands.add_parser("import", help="restore an export into the state")
    restore.add_argument("--from", dest="source", required=True, help="an export's folder")
    restore.add_argument("--replace", action="store_true", help="drop what the state holds first")

    why = commands.add_parser(
        "explain", help="why a contact got each campaign's message on a date, or did not"
    )
    why.add_argument("--date", type=_date, required=True, help="business date YYYY-MM-DD")
    why.add_argument("--contact", required=True, help="the contact's id, exactly as in the CRM")

    commands.add_parser("docs", help="generate dbt's documentation site as one static page")
    hook = commands.add_parser("webhook", help="receive SendGrid's Event Webhook into the landing")
    hook.add_argument("--host", help="address to listen on (default $NIGHTJAR_WEBHOOK_HOST)")
    hook.add_argument("--port", type=int, help="port (default $NIGHTJAR_WEBHOOK_PORT or 8026)")

    for name, help_text in (
        ("generate", "write a sample landing of nightly extracts"),
        ("demo", "generate a sample landing and run its last two dates end to end"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--contacts", type=int, default=2000)
        command.add_argument("--days", type=int, default=400)
        command.add_argument("--end", type=_date, default=_yesterday(), help="last date")
        command.add_argument("--seed", type=int, default=7)
        if name == "generate":
            command.add_argument("--out", help="landing folder (default $NIGHTJAR_LANDING)")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except ValueError as error:  # the settings' own one-line reason, naming the variable
        print(f"nightjar: {error}", file=sys.stderr)
        return EXIT_REFUSED
    if args.command == "run":
        return run_date(
            args.date,
            settings,
            dry_run=args.dry_run,
            approve=tuple(args.approve),
            full_refresh=args.full_refresh,
            baseline=args.baseline,
            send_backlog=args.send_backlog,
        )
    if args.command == "state":
        return state(args, settings)
    if args.command == "generate":
        return generate(args, settings)
    if args.command == "webhook":
        return webhook(args, settings)
    if args.command == "docs":
        return docs(args, settings)
    if args.command == "explain":
        return explain_contact(args, settings)
    return demo(args, settings)


if __name__ == "__main__":
    sys.exit(main())
