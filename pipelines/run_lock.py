"""One nightly run at a time per warehouse: a lock file beside it names the run that holds it.

DuckDB lets one process write a file at a time, so a second `nightjar run` started while the
first is loading would fail the first half way (its next write meets the second's lock). The
run lock is taken before anything is loaded and held until the run ends; a second run waits
up to NIGHTJAR_RUN_LOCK_WAIT_SECONDS, then stops without touching anything and names the run
holding the warehouse. The kernel releases the lock when its process ends, however it ends,
so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

POLL_SECONDS = 0.2
# The holder writes its record just after it takes the lock: a waiter that finds the file
# empty in between reads again, briefly.
HOLDER_READ_ATTEMPTS = 5


def lock_path(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + ".run.lock")


@dataclass(frozen=True)
class Holder:
    """The run holding the lock, as it recorded itself in the lock file."""

    pid: int | None = None
    business_date: str | None = None
    started: dt.datetime | None = None
    task: str | None = None  # what else than a night holds it: `nightjar state import`

    def describe(self, now: dt.datetime) -> str:
        if self.pid is None:
            return "another run"
        started = self.started
        when = ""
        if started is not None:
            shown = "%H:%M UTC" if started.date() == now.date() else "%Y-%m-%d %H:%M UTC"
            when = f", started {started:{shown}}"
        if self.task:
            return f"`{self.task}` (pid {self.pid}{when})"
        return f"another run (pid {self.pid}, business date {self.business_date}{when})"


class RunLockBusy(Exception):
    """Another run holds the warehouse; str() is the one line the CLI prints."""

    def __init__(self, warehouse: Path, holder: Holder, waited: float):
        self.warehouse, self.holder, self.waited = warehouse, holder, waited
        now = dt.datetime.now(dt.UTC)
        super().__init__(
            f"{holder.describe(now)} holds {warehouse}; waited {waited:.0f}s. Nothing was "
            "loaded, sent or changed: run again once it has finished "
            "(NIGHTJAR_RUN_LOCK_WAIT_SECONDS sets how long to wait for it)."
        )


@contextmanager
def run_lock(
    warehouse: Path, business_date: dt.date | None, wait_seconds: float, task: str | None = None
) -> Iterator[Holder]:
    """Hold the warehouse's run lock for the block, recording this run (or `task`, what else
    writes the state: `nightjar state import`) in the lock file; RunLockBusy when another
    still holds it after `wait_seconds`."""
    path = lock_path(warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Appending, never truncating on open: a waiter must not erase the holder's record.
    with path.open("a+", encoding="utf-8") as handle:
        _acquire(handle, warehouse, wait_seconds)
        try:
            yield _record_holder(handle, business_date, task)
        finally:
            handle.truncate(0)  # the record of a run that has ended would mislead
            fcntl.flock(handle, fcntl.LOCK_UN)


def _acquire(handle: IO[str], warehouse: Path, wait_seconds: float) -> None:
    started = time.monotonic()
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            waited = time.monotonic() - started
            if waited >= wait_seconds:
                raise RunLockBusy(warehouse, _read_holder(handle), waited) from None
            time.sleep(min(POLL_SECONDS, wait_seconds - waited))


def _record_holder(handle: IO[str], business_date: dt.date | None, task: str | None) -> Holder:
    day = business_date.isoformat() if business_date else None
    holder = Holder(os.getpid(), day, dt.datetime.now(dt.UTC), task)
    handle.truncate(0)
    record = {
        "pid": holder.pid,
        "business_date": holder.business_date,
        "started": holder.started.isoformat(timespec="seconds"),
        "task": task,
    }
    handle.write(json.dumps(record) + "\n")
    handle.flush()
    return holder


def _read_holder(handle: IO[str]) -> Holder:
    for attempt in range(HOLDER_READ_ATTEMPTS):
        handle.seek(0)
        text = handle.read().strip()
        if text:
            return _parse_holder(text)
        if attempt + 1 < HOLDER_READ_ATTEMPTS:
            time.sleep(0.05)
    return Holder()


def _parse_holder(text: str) -> Holder:
    try:
        record = json.loads(text.splitlines()[-1])
        started = dt.datetime.fromisoformat(record["started"])
        task = record.get("task")
        return Holder(int(record["pid"]), str(record["business_date"]), started, task)
    except (ValueError, KeyError, TypeError, IndexError):
        return Holder()  # written by something else: the lock still counts
