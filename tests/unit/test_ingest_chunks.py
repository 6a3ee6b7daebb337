"""How a catch-up is cut into chunks, each checked whole and written in one transaction
(docs/contract.md, Catch-up): consecutive folders, at most BYTES_PER_CHUNK of the extracts'
files (a folder bigger than that alone is a chunk of its own) and FOLDERS_PER_CHUNK folders."""

from __future__ import annotations

import datetime as dt

import assets.ingest.extracts as ingest
from models.landing import LandingFolder

EXTRACTS = ("crm_contacts", "orders")


def folders_of(tmp_path, sizes: list[tuple[int, int]]) -> list[LandingFolder]:
    """A folder a day, its two files of the given sizes in bytes (only their sizes count)."""
    folders = []
    for n, (contacts, orders) in enumerate(sizes):
        day = dt.date(2025, 1, 1) + dt.timedelta(days=n)
        path = tmp_path / day.isoformat()
        path.mkdir()
        (path / "crm_contacts.csv").write_bytes(b"x" * contacts)
        (path / "orders.csv").write_bytes(b"x" * orders)
        folders.append(LandingFolder(day, path))
    return folders


def days_of(chunks) -> list[list[int]]:
    return [[folder.business_date.day for folder in chunk] for chunk in chunks]


def test_a_chunk_holds_folders_in_order_up_to_the_byte_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "BYTES_PER_CHUNK", 100)
    # 40, 40 | 40 | 150 (alone over the bound) | 60, 40 (exactly the bound)
    folders = folders_of(tmp_path, [(20, 20), (30, 10), (40, 0), (100, 50), (60, 0), (0, 40)])
    assert days_of(ingest._chunks(folders, EXTRACTS)) == [[1, 2], [3], [4], [5, 6]]


def test_a_chunk_holds_at_most_the_folder_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "FOLDERS_PER_CHUNK", 2)
    folders = folders_of(tmp_path, [(1, 1)] * 5)
    assert days_of(ingest._chunks(folders, EXTRACTS)) == [[1, 2], [3, 4], [5]]


def test_only_the_extracts_loaded_count_towards_the_bound(tmp_path, monkeypatch):
    # the orders' files (90 bytes each) are not loaded by this run: they weigh nothing
    monkeypatch.setattr(ingest, "BYTES_PER_CHUNK", 100)
    folders = folders_of(tmp_path, [(30, 90), (30, 90), (30, 90), (30, 90)])
    assert days_of(ingest._chunks(folders, ("crm_contacts",))) == [[1, 2, 3], [4]]
