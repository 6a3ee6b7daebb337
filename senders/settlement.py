"""Settling messages of unknown fate from SendGrid's own events, and one sender at a time."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from pipelines.landing import EVENTS_FOLDER


def send_ids_seen_by_sendgrid(landing: Path, send_ids: Collection[str]) -> set[str]:
    """The send_ids any SendGrid event mentions (processed, delivered, dropped, bounce...).

    SendGrid echoes each personalization's custom_args in its events, so one event proves the
    request was accepted, whatever became of the message afterwards.
    """
    files = sorted(str(p) for p in (landing / EVENTS_FOLDER).glob("*.jsonl"))
    if not files or not send_ids:
        return set()
    with duckdb.connect() as con:
        rows = con.execute(
            """
            select distinct send_id
            from read_json(
                $files, format = 'newline_delimited', columns = {send_id: 'VARCHAR'},
                ignore_errors = true  -- a line being written, or cut short by a crash
            )
            where send_id in (select unnest($ids::varchar[]))
            """,
            {"files": files, "ids": list(send_ids)},
        ).fetchall()
    return {row[0] for row in rows}


class SendLockTimeout(Exception):
    """Another run holds the send lock."""


@contextmanager
def send_lock(warehouse: Path, wait_seconds: float) -> Iterator[None]:
    """Only one process sends from a warehouse at a time; a second waits, then gives up."""
    path = warehouse.with_name(warehouse.name + ".send.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SendLockTimeout(
                        f"Another run is sending from {warehouse} (lock {path} is held); "
                        f"waited {wait_seconds:.0f}s. Run this date again once it has finished: "
                        "nothing it sent will be sent twice."
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
