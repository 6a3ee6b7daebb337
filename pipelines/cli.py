"""The `nightjar` command: run a business date, generate sample data, or run the demo."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path

from pipelines.settings import Settings, load_settings

DEMO_MARKER = ".nightjar-demo"


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


# The project's instance settings: telemetry off, and the warehouse pool's limit of 1.
DAGSTER_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"


def _instance():
    """The Dagster instance `nightjar run` records its runs in, always with the project's
    settings: without them Dagster's defaults apply, telemetry on and no pool limit."""
    import yaml
    from dagster import DagsterInstance

    # With DAGSTER_HOME set, runs are recorded where `dagster dev` shows them.
    if os.environ.get("DAGSTER_HOME"):
        home = Path(os.environ["DAGSTER_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        _write_project_settings(home)
        return DagsterInstance.get()
    return DagsterInstance.ephemeral(settings=yaml.safe_load(DAGSTER_YAML.read_text()))


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


def run_date(
    business_date: dt.date,
    settings: Settings,
    dry_run: bool = False,
    approve: tuple = (),
    full_refresh: bool = False,
) -> int:
    """Materialize the nightly graph for one business date in-process; 0 when all succeeded.

    A dry run loads and builds as usual, then renders and counts every message without
    sending one or writing the ledger."""
    from pipelines.dbt_setup import ensure_manifest

    ensure_manifest()
    from pipelines.definitions import defs
    from pipelines.partitions import nightly_partitions
    from pipelines.summary import print_failures, print_summary

    key = business_date.isoformat()
    if not nightly_partitions.has_partition_key(key):
        print(
            f"nightjar: {key} is not a business date Nightjar can run: dates from "
            f"{nightly_partitions.start:%Y-%m-%d} run once they have ended in UTC "
            f"(the latest now is {nightly_partitions.get_last_partition_key()}).",
            file=sys.stderr,
        )
        return 2
    who = os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"
    started = time.monotonic()
    print(f"nightjar: running {key} (landing {settings.landing}, warehouse {settings.warehouse})")
    result = defs.resolve_job_def("nightly_job").execute_in_process(
        partition_key=key,
        instance=_instance(),
        raise_on_error=False,
        # Dagster's step-by-step log is for the UI; the terminal gets warnings and the summary.
        run_config={
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
            "resources": {
                "nightjar": {
                    "config": {
                        "dry_run": dry_run,
                        "approve": list(approve),
                        "approved_by": f"nightjar run by {who}",
                        "full_refresh": full_refresh,
                    }
                }
            },
        },
    )
    elapsed = time.monotonic() - started
    print_summary(result, key)
    if not result.success:
        print_failures(result)
        print(f"nightjar: {key} FAILED after {elapsed:.1f}s", file=sys.stderr)
        return 1
    print(f"nightjar: {key} done in {elapsed:.1f}s")
    return 0


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

    It starts from scratch each time, so it deletes the landing, warehouse, outbox and
    reports, but only those an earlier demo made: anything else is refused, never touched.
    """
    if args.days < 2:
        print(
            "nightjar demo: --days must be at least 2 (the demo runs two nights)", file=sys.stderr
        )
        return 2
    pending = settings.landing.with_name(settings.landing.name + ".demo-pending")
    owned = [settings.landing, settings.outbox, settings.warehouse, settings.reports, pending]
    for path in owned:
        if path.exists() and not _demo_marker(path).exists():
            print(
                f"nightjar demo: {path} exists and was not made by the demo; point "
                "NIGHTJAR_LANDING, NIGHTJAR_WAREHOUSE, NIGHTJAR_OUTBOX and NIGHTJAR_REPORTS "
                "elsewhere.",
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
    code = run_date(first, settings)
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
        return _generate_docs(settings, catalog)
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


def _generate_docs(settings: Settings, catalog: str) -> int:
    import json
    import subprocess

    from pipelines.dbt_setup import DBT_PROJECT_DIR, campaigns_var, dbt_executable, load_manifest

    env = {**os.environ, "NIGHTJAR_WAREHOUSE": catalog}
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


def _yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="nightjar", description=__doc__)
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
    settings = load_settings()
    if args.command == "run":
        return run_date(
            args.date,
            settings,
            dry_run=args.dry_run,
            approve=tuple(args.approve),
            full_refresh=args.full_refresh,
        )
    if args.command == "generate":
        return generate(args, settings)
    if args.command == "webhook":
        return webhook(args, settings)
    if args.command == "docs":
        return docs(args, settings)
    return demo(args, settings)


if __name__ == "__main__":
    sys.exit(main())
