"""The `nightjar` command: run a business date, generate sample data, or run the demo."""

# The docstring above is the command's --help. This module reads the arguments and the
# settings and hands over to the sub-command: `run` (pipelines/run.py), `state` and `explain`
# (pipelines/state_commands.py), `generate` and `demo` (pipelines/demo_commands.py), `docs`
# (pipelines/docs_command.py), `webhook` (below). Nothing here imports Dagster, DuckDB or
# polars at module level: a bad date or setting is refused in a blink, before the seconds
# they take to load.

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn

from models.settings import Settings, load_settings
from pipelines.run import EXIT_REFUSED, latest_runnable_date, run_date

# run_date: `from pipelines.cli import run_date`
__all__ = ["console", "main", "parser", "run_date"]

Command = Callable[[argparse.Namespace, Settings], int]


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
            pause=tuple(args.pause),
        )
    return _command(args.command)(args, settings)


def _command(name: str) -> Command:
    """The sub-command's function, its module imported only now (each loads DuckDB, polars,
    dbt's manifest or an HTTP server, which no other sub-command should wait for)."""
    if name in ("state", "explain"):
        from pipelines.state_commands import explain_contact, state  # lazy: DuckDB, manifest

        return state if name == "state" else explain_contact
    if name in ("generate", "demo"):
        from pipelines.demo_commands import demo, generate  # lazy: polars, the sample world

        return generate if name == "generate" else demo
    if name == "send-test":
        from pipelines.send_test import send_test  # lazy: DuckDB, the manifest, the senders

        return send_test
    if name == "docs":
        from pipelines.docs_command import docs  # lazy: DuckDB, dbt's manifest

        return docs
    return webhook


def webhook(args: argparse.Namespace, settings: Settings) -> int:
    """`nightjar webhook`: serve SendGrid's Event Webhook into the landing, signed events
    only."""
    if not settings.webhook_public_key:
        print(
            "nightjar webhook: set SENDGRID_WEBHOOK_PUBLIC_KEY to the verification key from "
            "SendGrid (Mail Settings > Event Webhook > Signature Verification); unsigned "
            "events are never accepted.",
            file=sys.stderr,
        )
        return 2
    from pipelines.webhook import serve  # lazy: the HTTP server and signature checks

    try:
        serve(
            settings.landing,
            settings.webhook_public_key,
            settings.unsubscribe_secret,
            args.host or settings.webhook_host,
            args.port if args.port is not None else settings.webhook_port,
        )
    except ValueError as error:
        print(f"nightjar webhook: {error}", file=sys.stderr)
        return 2
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error (a date that is no date) in one line instead of three."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_REFUSED, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def parser() -> argparse.ArgumentParser:
    root = _Parser(prog="nightjar", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    _add_run(commands)
    _add_state(commands)
    why = commands.add_parser(
        "explain", help="why a contact got each campaign's message on a date, or did not"
    )
    why.add_argument("--date", type=_date, required=True, help="business date YYYY-MM-DD")
    why.add_argument("--contact", required=True, help="the contact's id, exactly as in the CRM")
    commands.add_parser("docs", help="generate dbt's documentation site as one static page")
    test = commands.add_parser(
        "send-test",
        help="send each variant of a campaign, with a real member's data (masked), to one "
        "address; marked as a test, never in the ledger",
    )
    test.add_argument("--campaign", required=True, help="the campaign's or journey's name")
    test.add_argument("--step", help="one step of a journey (default: every step)")
    test.add_argument("--to", required=True, help="the address to send the test to")
    test.add_argument(
        "--unmasked", action="store_true", help="the member's data as it is, not masked"
    )
    hook = commands.add_parser("webhook", help="receive SendGrid's Event Webhook into the landing")
    hook.add_argument("--host", help="address to listen on (default $NIGHTJAR_WEBHOOK_HOST)")
    hook.add_argument("--port", type=int, help="port (default $NIGHTJAR_WEBHOOK_PORT or 8026)")
    _add_sample_commands(commands)
    return root


def _add_run(commands) -> None:
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
        "--pause",
        action="append",
        default=[],
        metavar="PROGRAM",
        help="decide this campaign or journey but send nothing and record nothing tonight, "
        "as `enabled: false` in its block would; may be repeated",
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


def _add_state(commands) -> None:
    state = commands.add_parser("state", help="back up or restore Nightjar's state")
    state_commands = state.add_subparsers(dest="state_command", required=True)
    export = state_commands.add_parser("export", help="write each state table as Parquet")
    export.add_argument("--to", required=True, help="a folder for the Parquet files")
    restore = state_commands.add_parser("import", help="restore an export into the state")
    restore.add_argument("--from", dest="source", required=True, help="an export's folder")
    restore.add_argument("--replace", action="store_true", help="drop what the state holds first")


def _add_sample_commands(commands) -> None:
    for name, help_text in (
        ("generate", "write a sample landing of nightly extracts"),
        ("demo", "generate a sample landing and run its last two dates end to end"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--contacts", type=int, default=2000)
        command.add_argument("--days", type=int, default=400)
        command.add_argument("--end", type=_date, default=latest_runnable_date(), help="last date")
        command.add_argument("--seed", type=int, default=7)
        if name == "generate":
            command.add_argument("--out", help="landing folder (default $NIGHTJAR_LANDING)")
            command.add_argument(
                "--no-order-lines",
                dest="order_lines",
                action="store_false",
                help="write no order_lines.csv (the optional fourth extract); the other files "
                "are the same bytes either way",
            )


def console() -> NoReturn:
    """The installed `nightjar` command (and `python -m pipelines.cli`)."""
    _exit_without_teardown(main())


def _exit_without_teardown(code: int) -> NoReturn:
    """Out of the process once what must happen at exit has happened.

    Python's own exit frees every object one by one before the process ends; after a night,
    whose process holds dbt's parse and Dagster's definitions, that took 1.5 s of an empty
    day's 19 (docs/performance.md). What an exit must do is done here: the atexit handlers
    (logging's flush and close, temporary folders removed, dbt's and Dagster's own) and the
    standard streams' flush. A thread still at work would be cut short, so then Python exits
    as usual and waits for it. The warehouse's connections are closed where they are opened;
    Dagster keeps its SQLite files open, as it would at a normal exit; every commit of both is
    on disk already."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(t.is_alive() and not t.daemon for t in others):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        # a closed pipe: nothing more can reach the reader
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    console()
