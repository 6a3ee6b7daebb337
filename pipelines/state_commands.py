"""`nightjar state` and `nightjar explain`: back up or restore the state nothing rebuilds, and
say why a contact got each campaign's message on a date, or did not."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

from models.settings import Settings
from pipelines.explain import Unknown, explain
from pipelines.run import EXIT_FAILED, EXIT_REFUSED
from pipelines.state import StateNotEmpty, export_state, import_state


def state(args: argparse.Namespace, settings: Settings) -> int:
    """`nightjar state export --to DIR` / `import --from DIR`: the state nothing rebuilds."""
    try:
        if args.state_command == "export":
            counts = export_state(settings.warehouse, Path(args.to).resolve())
        else:
            counts = import_state(settings.warehouse, Path(args.source).resolve(), args.replace)
    except (StateNotEmpty, FileNotFoundError) as error:
        print(f"nightjar state: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except duckdb.Error as error:  # a state file that is not one, or damaged: one line
        cause = " ".join(str(error).split())
        print(
            f"nightjar state {args.state_command}: the state {settings.state_path} cannot be "
            f"read: {cause}. Restore the last good export into a new state file.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    rows = ", ".join(f"{table} {n:,}" for table, n in counts.items())
    print(f"nightjar state {args.state_command}: {rows}")
    return 0


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
