"""One sender at a time: the send lock on a warehouse, held while a process sends from it."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
