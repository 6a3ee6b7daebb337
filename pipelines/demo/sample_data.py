"""Deterministic, vectorized generator of a realistic sample landing of nightly retail extracts.

One random generator, seeded, drawn from in a fixed order, so that a seed always writes the
same bytes: the world first (pipelines/demo/world.py, contacts.py), then day by day the CRM
extract (crm.py), the orders (orders.py) and the web events (web_events.py). The optional
order lines (order_lines.py, catalogue.py) draw from a second generator of their own, so that
the three extracts are the same bytes with or without them."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.demo.catalogue import build_catalogue
from pipelines.demo.crm import CONTACT_COLUMNS, contacts_for_day
from pipelines.demo.order_lines import LINE_COLUMNS, lines_for_day
from pipelines.demo.orders import ORDER_COLUMNS, orders_for_day
from pipelines.demo.timeline import Window
from pipelines.demo.web_events import WEB_COLUMNS, web_for_day
from pipelines.demo.world import build_world

# The extracts' columns are the modules' that write them; tests and tools read them here.
__all__ = [
    "CONTACT_COLUMNS",
    "EXTRACTS",
    "LINE_COLUMNS",
    "ORDER_COLUMNS",
    "WEB_COLUMNS",
    "generate_landing",
]

EXTRACTS = (
    ("crm_contacts.csv", CONTACT_COLUMNS),
    ("orders.csv", ORDER_COLUMNS),
    ("web_events.csv", WEB_COLUMNS),
    ("order_lines.csv", LINE_COLUMNS),
)
# Mixed into the seed of the order lines' generator: any constant, never changed, or a
# seed's lines change.
LINES_STREAM = 17


def _lines_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, LINES_STREAM])


def generate_landing(
    out_dir: Path, *, contacts: int, days: int, end: date, seed: int, order_lines: bool = True
) -> dict[str, int]:
    """Writes out_dir/YYYY-MM-DD/ folders for the `days` dates ending at `end` (inclusive),
    each with order_lines.csv unless `order_lines` is false (the file is optional; the other
    files are the same bytes either way).

    Returns row counts {"contacts": ..., "orders": ..., "web_events": ..., "order_lines": ...,
    "folders": ...}: rows written over all folders (re-sent web events and later order rows
    included).
    """
    if contacts < 1 or days < 1:
        raise ValueError("contacts and days must be at least 1")
    rng = np.random.default_rng(seed)
    world = build_world(rng, contacts, Window.ending(end, days))
    lines_rng = _lines_rng(seed)
    catalogue = build_catalogue(lines_rng) if order_lines else None
    counts = {"contacts": 0, "orders": 0, "web_events": 0, "order_lines": 0, "folders": 0}
    for d in range(days):
        frames = (
            contacts_for_day(rng, world, d),
            orders := orders_for_day(rng, world, d),
            web_for_day(rng, world, d),
        )
        if catalogue is not None:
            frames = (*frames, lines_for_day(lines_rng, world, catalogue, orders))
        _write_folder(Path(out_dir) / world.win.date(d).isoformat(), frames)
        keys = ("contacts", "orders", "web_events", "order_lines")[: len(frames)]
        for key, frame in zip(keys, frames, strict=True):
            counts[key] += frame.height
        counts["folders"] += 1
    return counts


def _write_folder(folder: Path, frames: tuple[pl.DataFrame, ...]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    success = folder / "_SUCCESS"
    success.unlink(missing_ok=True)  # a rewrite in progress must not look complete
    # without lines, the first three only
    for (name, columns), frame in zip(EXTRACTS[: len(frames)], frames, strict=True):
        frame.select(columns).write_csv(folder / name)
    success.touch()
