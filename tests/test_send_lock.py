"""Two runs can never send from one warehouse at the same time."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from senders.settlement import SendLockTimeout, send_lock


def _hold(warehouse, ready, release):
    with send_lock(warehouse, wait_seconds=5):
        ready.set()
        release.wait(10)


def test_a_second_sender_waits_then_stops_with_a_clear_message(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold, args=(warehouse, ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        expected = r"Another run is sending from .*warehouse\.duckdb"
        with pytest.raises(SendLockTimeout, match=expected), send_lock(warehouse, 0.3):
            pass
        release.set()
        holder.join(10)
        with send_lock(warehouse, wait_seconds=2):  # free again once the first has finished
            pass
    finally:
        release.set()
        holder.join(10)


def test_the_lock_is_released_when_the_holder_dies(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold, args=(warehouse, ready, release))
    holder.start()
    assert ready.wait(10)
    holder.kill()  # kill -9: the kernel drops the lock with the process
    holder.join(10)
    started = time.monotonic()
    with send_lock(warehouse, wait_seconds=5):
        assert time.monotonic() - started < 5
