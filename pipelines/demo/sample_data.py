"""Deterministic, vectorized generator of a realistic sample landing of nightly retail extracts.

One random generator, seeded, drawn from in a fixed order, so that a seed always writes the
same bytes: the world first (pipelines/demo/world.py, contacts.py), then day by day the CRM
extract (crm.py), the orders (orders.py) and the web events (web_events.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.demo.crm import CONTACT_COLUMNS, contacts_for_day
from pipelines.demo.orders import ORDER_COLUMNS, orders_for_day
from pipelines.demo.timeline import Window
from pipelines.demo.web_events import WEB_COLUMNS, web_for_day
from pipelines.demo.world import build_world

# The extracts' columns are the modules' that write them; tests and tools read them here.
__all__ = ["CONTACT_COLUMNS", "EXTRACTS", "ORDER_COLUMNS", "WEB_COLUMNS", "generate_landing"]

EXTRACTS = (
    ("crm_contacts.csv", CONTACT_COLUMNS),
    ("orders.csv", ORDER_COLUMNS),
    ("web_events.csv", WEB_COLUMNS),
)


def generate_landing(
    out_dir: Path, *, contacts: int, days: int, end: date, seed: int
) -> dict[str, int]:
    """Writes out_dir/YYYY-MM-DD/ folders for the `days` dates ending at `end` (inclusive).

    Returns row counts {"contacts": ..., "orders": ..., "web_events": ..., "folders": ...}:
    rows written over all folders (re-sent web events and later order rows included).
    """
    if contacts < 1 or days < 1:
        raise ValueError("contacts and days must be at least 1")
    rng = np.random.default_rng(seed)
    world = build_world(rng, contacts, Window.ending(end, days))
    counts = {"contacts": 0, "orders": 0, "web_events": 0, "folders": 0}
    for d in range(days):
        frames = (
            contacts_for_day(rng, world, d),
            orders_for_day(rng, world, d),
            web_for_day(rng, world, d),
        )
        _write_folder(Path(out_dir) / world.win.date(d).isoformat(), frames)
        for key, frame in zip(("contacts", "orders", "web_events"), frames, strict=True):
            counts[key] += frame.height
        counts["folders"] += 1
    return counts


def _write_folder(folder: Path, frames: tuple[pl.DataFrame, ...]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    success = folder / "_SUCCESS"
    success.unlink(missing_ok=True)  # a rewrite in progress must not look complete
    for (name, columns), frame in zip(EXTRACTS, frames, strict=True):
        frame.select(columns).write_csv(folder / name)
    success.touch()
