"""The landing area: which business-date folders exist, and which are complete."""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

SUCCESS_MARKER = "_SUCCESS"
# SendGrid events landed by `nightjar webhook`, one JSON-lines file per UTC receipt date.
EVENTS_FOLDER = "sendgrid_events"
# The nights a state recorded, one date a line, kept in the landing: the one place every
# installation of a Nightjar shares and backs up. Beside an empty state they say the state
# was lost, or NIGHTJAR_STATE / NIGHTJAR_WAREHOUSE name the wrong file
# (assets/sends/first_night.py).
NIGHTS_RECORDED = "_nightjar/nights_recorded"
_DATE_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# The earliest business date Nightjar runs: that of the earliest timestamp an extract may
# carry (models/parsing.py), so that a retailer's history of any era loads and replays.
EARLIEST_BUSINESS_DATE = date(1900, 1, 1)
_ROW_COUNT = re.compile(r"^(\S+?)\s*[\s=,:]\s*(\d+)$")


@contextmanager
def events_folder_lock(landing: Path) -> Iterator[Path]:
    """The SendGrid events folder (created if missing), held by one writer at a time across
    processes: the webhook appends to its files while erasure rewrites them."""
    folder = landing / EVENTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class LandingNotReady(Exception):
    """The business date's folder is missing or has no _SUCCESS marker yet."""


@dataclass(frozen=True)
class LandingFolder:
    business_date: date
    path: Path

    @property
    def complete(self) -> bool:
        return (self.path / SUCCESS_MARKER).is_file()

    def expected_rows(self) -> dict[str, int]:
        """Row counts the exporter may write into _SUCCESS, one `<file> <rows>` a line
        (`=`, `,` or `:` also separate them); an empty _SUCCESS promises nothing."""
        marker = self.path / SUCCESS_MARKER
        counts = {}
        for line in marker.read_text(encoding="utf-8", errors="replace").splitlines():
            match = _ROW_COUNT.match(line.strip())
            if match:
                counts[match.group(1)] = int(match.group(2))
        return counts

    def extract_file(self, extract: str) -> Path | None:
        """The CSV if present, else the Parquet file (docs/contract.md §1: the .csv wins)."""
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
    # scandir's entries know whether they are folders without a stat each (a landing holds
    # a folder a day: a night lists it a dozen times)
    with os.scandir(landing) as children:
        for child in children:
            if _DATE_FOLDER.match(child.name) and _is_folder(child):
                try:
                    business_date = date.fromisoformat(child.name)
                except ValueError:
                    continue  # e.g. 2026-02-30: not a business date
                folders.append(LandingFolder(business_date, landing / child.name))
    return sorted(folders, key=lambda f: f.business_date)


def _is_folder(entry: os.DirEntry) -> bool:
    """Path.is_dir's answer, without its stat for an entry that knows (scandir's is_dir
    forgives a missing target only: a link that loops is Path.is_dir's to judge)."""
    try:
        return entry.is_dir()
    except OSError:
        return Path(entry.path).is_dir()


def first_business_date(landing: Path, setting: date | None) -> date:
    """The first date the nightly partitions have: NIGHTJAR_FIRST_DATE, else the first landed
    folder (1997's for a history from 1997), else, before anything has landed, the latest date
    that can run. Dagster shows every partition from it on, so a landing that starts in 2025
    does not show a century of empty dates as "0% filled"."""
    if setting:
        return setting
    dates = [f.business_date for f in list_folders(landing)]
    if dates:
        return max(dates[0], EARLIEST_BUSINESS_DATE)
    return datetime.now(UTC).date() - timedelta(days=1)


def require_ready(landing: Path, business_date: date) -> LandingFolder:
    """The folder of `business_date`, or a one-line reason why the night cannot run: each
    way of not being ready has its own sentence, saying what to do."""
    if not landing.is_dir():
        raise LandingNotReady(
            f"The landing folder {landing} does not exist: set NIGHTJAR_LANDING to the folder "
            "the extracts land in."
        )
    folders = list_folders(landing)
    today = datetime.now(UTC).date()
    future = [f for f in folders if f.business_date >= today]
    if future:
        raise LandingNotReady(
            f"Landing folder {future[0].path} is dated {future[0].business_date}, a day that "
            f"has not ended yet (today is {today} UTC): an exporter's clock or a misnamed "
            "folder. Move it away; nothing is loaded while it is there."
        )
    folder = LandingFolder(business_date, landing / business_date.isoformat())
    if not folder.path.is_dir():
        raise LandingNotReady(_missing_folder(folder, folders))
    if not folder.complete:
        raise LandingNotReady(
            f"Landing folder {folder.path} is not ready: no {SUCCESS_MARKER} file yet "
            "(the exporter writes it last). Run again once the export has finished."
        )
    return folder


def _missing_folder(folder: LandingFolder, folders: list[LandingFolder]) -> str:
    """Why a date's folder is missing, as far as the landing can tell."""
    day, landing = folder.business_date, folder.path.parent
    if not folders:
        return (
            f"No extracts have landed in {landing} (no YYYY-MM-DD folder in it): check "
            "NIGHTJAR_LANDING, or wait for the first export."
        )
    first, latest = folders[0].business_date, folders[-1].business_date
    if day < first:
        return (
            f"{day} is before the first landed folder, {first} (in {landing}): there is "
            f"nothing to load for it. Run a date from {first} on."
        )
    if day > latest:
        return (
            f"The extracts for {day} have not landed yet: there is no folder {folder.path} "
            f"(the latest folder is {latest})."
        )
    return (
        f"The extracts for {day} are missing: there is no folder {folder.path}, though "
        f"later dates have landed (up to {latest}). Ask the exporter for {day}."
    )


def complete_folders_through(landing: Path, business_date: date) -> list[LandingFolder]:
    return [f for f in list_folders(landing) if f.business_date <= business_date and f.complete]


def incomplete_folders_through(landing: Path, business_date: date) -> list[LandingFolder]:
    return [f for f in list_folders(landing) if f.business_date <= business_date and not f.complete]


def record_night(landing: Path, business_date: date) -> None:
    """Add `business_date` to the landing's record of the nights a state recorded."""
    path = landing / NIGHTS_RECORDED
    path.parent.mkdir(exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"{business_date.isoformat()}\n")


def nights_recorded(landing: Path) -> set[date]:
    path = landing / NIGHTS_RECORDED
    if not path.is_file():
        return set()
    nights = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            nights.add(date.fromisoformat(line.strip()))
        except ValueError:
            continue  # a line cut by a crash mid-write
    return nights
