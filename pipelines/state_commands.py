"""`nightjar state` and `nightjar explain`: back up or restore the state nothing rebuilds, and
say why a contact got each campaign's message on a date, or did not."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

from models.settings import Settings
from pipelines.explain import Unknown, explain
from pipelines.run import EXIT_BUSY, EXIT_FAILED, EXIT_REFUSED
from pipelines.run_lock import RunLockBusy, run_lock
from pipelines.state import ExportUnreadable, StateNotEmpty, export_state, import_state


def state(args: argparse.Namespace, settings: Settings) -> int:
    """`nightjar state export --to DIR` / `import --from DIR`: the state nothing rebuilds.
    Under the run lock: a night must not write the state while it is copied or replaced."""
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
    try:
        lines = explain(settings, args.date, args.contact)
    except Unknown as unknown:
        print(f"nightjar explain: {unknown}", file=sys.stderr)
        return EXIT_REFUSED
    print("\n".join(lines))
    return 0
