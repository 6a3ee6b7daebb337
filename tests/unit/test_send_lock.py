"""Two runs can never send from one warehouse at the same time."""

from __future__ import annotations

import multiprocessing

import pytest

from senders.lock import SendLockTimeout, send_lock


def _hold(warehouse, ready, release):
    with send_lock(warehouse, wait_seconds=5):
        ready.set()
        release.wait(10)


@pytest.fixture
def holder(tmp_path):
    """Another process holding the send lock of tmp_path/warehouse.duckdb."""
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    process = multiprocessing.Process(
        target=_hold, args=(tmp_path / "warehouse.duckdb", ready, release)
    )
    process.start()
    assert ready.wait(10)
    yield process, release
    if process.is_alive():  # a killed waiter leaves the Event unusable: do not touch it
        release.set()
        process.join(10)


def test_a_second_sender_waits_then_stops_with_a_clear_message(tmp_path, holder):
    warehouse = tmp_path / "warehouse.duckdb"
    process, release = holder
    expected = r"Another run is sending from .*warehouse\.duckdb"
    with pytest.raises(SendLockTimeout, match=expected), send_lock(warehouse, 0.3):
        pass
    release.set()
    process.join(10)
    with send_lock(warehouse, wait_seconds=2):  # free again once the first has finished
        pass


def test_the_lock_is_released_when_the_holder_dies(tmp_path, holder):
    process, _ = holder
    process.kill()  # kill -9: the kernel drops the lock with the process
    process.join(10)
    with send_lock(tmp_path / "warehouse.duckdb", wait_seconds=5):  # raises if still held
        pass
