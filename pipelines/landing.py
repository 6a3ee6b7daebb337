"""The landing area: which business-date folders exist, and which are complete."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

SUCCESS_MARKER = "_SUCCESS"
# SendGrid events landed by `nightjar webhook`, one JSON-lines file per UTC receipt date.
EVENTS_FOLDER = "sendgrid_events"
_DATE_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class LandingNotReady(Exception):
    """The business date's folder is missing or has no _SUCCESS marker yet."""


@dataclass(frozen=True)
class LandingFolder:
    business_date: date
    path: Path

    @property
    def complete(self) -> bool:
        return (self.path / SUCCESS_MARKER).is_file()

    def extract_file(self, extract: str) -> Path | None:
        """The CSV if present, else the Parquet file (CONTRACT §1: the .csv wins)."""
        for suffix in (".csv", ".parquet"):
            candidate = self.path / f"{extract}{suffix}"
            if candidate.is_file():
                return candidate
        return None


def list_folders(landing: Path) -> list[LandingFolder]:
    """Every YYYY-MM-DD folder in the landing, oldest first; other names are ignored."""
    if not landing.is_dir():
        return []
    folders = []
    for child in landing.iterdir():
        if child.is_dir() and _DATE_FOLDER.match(child.name):
            try:
                folders.append(LandingFolder(date.fromisoformat(child.name), child))
            except ValueError:
                continue  # e.g. 2026-02-30: not a business date
    return sorted(folders, key=lambda f: f.business_date)


def require_ready(landing: Path, business_date: date) -> LandingFolder:
    """The folder of `business_date`, or a one-line reason why the night cannot run yet."""
    folder = LandingFolder(business_date, landing / business_date.isoformat())
    if not folder.path.is_dir():
        raise LandingNotReady(
            f"Landing folder {folder.path} does not exist: the extracts for "
            f"{business_date} have not landed yet."
        )
    if not folder.complete:
        raise LandingNotReady(
            f"Landing folder {folder.path} is not ready: no {SUCCESS_MARKER} file yet "
            "(the exporter writes it last). Run again once the export has finished."
        )
    return folder


def complete_folders_through(landing: Path, business_date: date) -> list[LandingFolder]:
    return [f for f in list_folders(landing) if f.business_date <= business_date and f.complete]


def incomplete_folders_through(landing: Path, business_date: date) -> list[LandingFolder]:
    return [f for f in list_folders(landing) if f.business_date <= business_date and not f.complete]
