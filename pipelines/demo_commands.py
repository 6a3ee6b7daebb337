"""`nightjar generate` and `nightjar demo`: a sample landing of nightly extracts, and the demo
that runs its last two dates end to end, the second night measuring the first night's sends."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import shutil
import sys
import time
from pathlib import Path

from models.settings import Settings
from pipelines.demo.engagement import write_demo_events
from pipelines.demo.sample_data import generate_landing
from pipelines.run import EXIT_REFUSED, run_date

DEMO_MARKER = ".nightjar-demo"


def generate(args: argparse.Namespace, settings: Settings) -> int:
    out = Path(args.out).resolve() if args.out else settings.landing
    started = time.monotonic()
    counts = generate_landing(
        out,
        contacts=args.contacts,
        days=args.days,
        end=args.end,
        seed=args.seed,
        # `nightjar demo` has no --no-order-lines: its landing always has them
        order_lines=getattr(args, "order_lines", True),
    )
    took = time.monotonic() - started
    print(f"nightjar: wrote {counts} to {out} in {took:.1f}s")
    return 0


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
        return EXIT_REFUSED
    pending = settings.landing.with_name(settings.landing.name + ".demo-pending")
    owned = [settings.landing, settings.outbox, settings.warehouse, settings.reports, pending]
    # The state too: an earlier demo's ledger would have this one send nothing. A state made
    # beside a demo's warehouse before the state had a marker of its own is the demo's.
    if settings.state_path.exists() and _demo_marker(settings.warehouse).exists():
        _demo_marker(settings.state_path).touch()
    owned.append(settings.state_path)
    refused = _not_the_demos(owned)
    if refused:
        print(
            f"nightjar demo: {refused} exists and was not made by the demo; point "
            "NIGHTJAR_LANDING, NIGHTJAR_WAREHOUSE, NIGHTJAR_STATE, NIGHTJAR_OUTBOX and "
            "NIGHTJAR_REPORTS elsewhere.",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    _start_afresh(owned, settings, pending)
    if settings.one_click == "nightjar" and not settings.unsubscribe_secret:
        # Every message carries a signed unsubscribe link; a demo signs with a key of its own.
        secret = os.environ["NIGHTJAR_UNSUBSCRIBE_SECRET"] = secrets.token_hex(32)
        settings = settings.model_copy(update={"unsubscribe_secret": secret})
        print(
            "nightjar demo: NIGHTJAR_UNSUBSCRIBE_SECRET is unset; this demo signs with a random one"
        )
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
    events = write_demo_events(settings.outbox / first.isoformat(), settings.landing, last, 1)
    print(f"nightjar demo: {events} made-up SendGrid events for {first}'s messages")
    (pending / last.isoformat()).rename(settings.landing / last.isoformat())
    shutil.rmtree(pending)  # now only its demo marker
    return run_date(last, settings)


def _demo_marker(path: Path) -> Path:
    # A folder holds its marker; a file (the warehouse) has one beside it.
    return (
        path / DEMO_MARKER if path.suffix != ".duckdb" else path.with_name(path.name + DEMO_MARKER)
    )


def _not_the_demos(owned: list[Path]) -> Path | None:
    """The first of the paths the demo deletes that an earlier demo did not make."""
    return next((p for p in owned if p.exists() and not _demo_marker(p).exists()), None)


def _start_afresh(owned: list[Path], settings: Settings, pending: Path) -> None:
    """An earlier demo's landing, warehouse, outbox and reports deleted, made anew and
    marked as the demo's."""
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
