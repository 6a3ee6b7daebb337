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


def _instance():
    from dagster import DagsterInstance

    # With DAGSTER_HOME set, runs are recorded where `dagster dev` shows them.
    if os.environ.get("DAGSTER_HOME"):
        Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
        return DagsterInstance.get()
    return DagsterInstance.ephemeral()


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
    """A fresh sample landing, then the nightly run of its last date.

    It starts from scratch each time, so it deletes the landing, warehouse and outbox, but
    only those an earlier demo made: anything else is refused, never touched.
    """
    owned = [settings.landing, settings.outbox, settings.warehouse]
    for path in owned:
        if path.exists() and not _demo_marker(path).exists():
            print(
                f"nightjar demo: {path} exists and was not made by the demo; point "
                "NIGHTJAR_LANDING, NIGHTJAR_WAREHOUSE and NIGHTJAR_OUTBOX elsewhere.",
                file=sys.stderr,
            )
            return 2
    for path in owned:
        if path.is_dir():
            shutil.rmtree(path)
        for leftover in (path, _demo_marker(path), path.with_name(path.name + ".wal")):
            if leftover.is_file():
                leftover.unlink()
    for path in (settings.landing, settings.outbox):
        path.mkdir(parents=True, exist_ok=True)
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    for path in owned:
        _demo_marker(path).touch()
    args.out = None
    generate(args, settings)
    return run_date(args.end, settings)


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

    hook = commands.add_parser("webhook", help="receive SendGrid's Event Webhook into the landing")
    hook.add_argument("--host", help="address to listen on (default $NIGHTJAR_WEBHOOK_HOST)")
    hook.add_argument("--port", type=int, help="port (default $NIGHTJAR_WEBHOOK_PORT or 8026)")

    for name, help_text in (
        ("generate", "write a sample landing of nightly extracts"),
        ("demo", "generate a sample landing and run its last date end to end"),
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
    return demo(args, settings)


if __name__ == "__main__":
    sys.exit(main())
