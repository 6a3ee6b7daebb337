"""Spark's copy of the raw rows (NIGHTJAR_ENGINE=spark, docs/contract.md §18), written by the
load itself and without pyspark: a parquet file per landed file, written again only when its
rows changed, and an erasure leaves no copy of the erased contact's data in Spark's files
even if that night's build never runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from tests.conftest import Workspace
from tests.support.scenario import write_business_date, write_history

HISTORY, ERASURE_NIGHT = dt.date(2025, 11, 19), dt.date(2025, 11, 20)


def _load(day: dt.date) -> None:
    from assets.ingest.extracts import ingest_night
    from models.settings import load_settings

    ingest_night(load_settings(), day)


def _files(folder: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in sorted(folder.glob("*.parquet"))}


def _read(folder: Path, sql: str) -> list[tuple]:
    return duckdb.sql(sql.replace("FILES", f"read_parquet('{folder}/*.parquet')")).fetchall()


def test_each_landed_file_is_copied_once_and_again_only_when_its_rows_change(
    workspace: Workspace, monkeypatch
):
    monkeypatch.setenv("NIGHTJAR_ENGINE", "spark")
    raw = workspace.root / "spark" / "raw"
    write_history(workspace.landing)
    _load(HISTORY)
    assert len(_files(raw / "crm_contacts")) == len(_files(raw / "orders")) == 1
    copied = _read(raw / "crm_contacts", "select * from FILES order by contact_id")
    assert copied == workspace.query("select * from raw.crm_contacts order by contact_id")
    assert ("erased", "Erased") in _read(
        raw / "crm_contacts", "select contact_id, first_name from FILES"
    )
    before = {table: _files(raw / table) for table in ("crm_contacts", "orders", "web_events")}
    # what a build made from the old rows (dbt's tables, the state's copy)
    for made in ("tables/build.db/customer_360", "nightjar/send_ledger"):
        (workspace.root / "spark" / made).mkdir(parents=True)

    # a draft a killed copy left, holding the same rows
    draft = raw / "crm_contacts" / f".{history_file_of(before)}.draft"
    draft.write_bytes((raw / "crm_contacts" / history_file_of(before)).read_bytes())
    write_business_date(workspace.landing)  # the night that erases "erased"
    _load(ERASURE_NIGHT)

    contacts = _files(raw / "crm_contacts")
    assert len(contacts) == 2
    # the history's contacts file is written again: it held the erased contact's name
    (history_file,) = before["crm_contacts"]
    assert contacts[history_file] != before["crm_contacts"][history_file]
    everything = raw.parent / "raw" / "*"
    found = duckdb.sql(
        f"select count(*) from read_parquet('{everything}/*.parquet', union_by_name = true) "
        "where email = 'erased@example.com' or first_name = 'Erased'"
    ).fetchall()
    assert found == [(0,)]
    assert _read(raw / "crm_contacts", "select count(*) from FILES") == workspace.query(
        "select count(*) from raw.crm_contacts"
    )
    # a file whose rows did not change is not written again
    (events_file,) = before["web_events"]
    assert _files(raw / "web_events")[events_file] == before["web_events"][events_file]
    # and nothing a build made from the old rows is left, nor the draft
    assert not (workspace.root / "spark" / "tables").exists()
    assert not (workspace.root / "spark" / "nightjar").exists()
    assert not draft.exists()


def history_file_of(files: dict[str, dict[str, int]]) -> str:
    (name,) = files["crm_contacts"]
    return name


def test_back_on_duckdb_the_copy_goes_with_its_erasures(workspace: Workspace, monkeypatch):
    monkeypatch.setenv("NIGHTJAR_ENGINE", "spark")
    write_history(workspace.landing)
    _load(HISTORY)
    assert (workspace.root / "spark" / "raw" / "crm_contacts").is_dir()
    monkeypatch.setenv("NIGHTJAR_ENGINE", "duckdb")
    write_business_date(workspace.landing)
    _load(ERASURE_NIGHT)
    # no erasure would reach a copy Spark no longer reads
    assert not (workspace.root / "spark" / "raw").exists()


def test_on_duckdb_the_load_writes_no_copy(workspace: Workspace):
    write_history(workspace.landing)
    _load(HISTORY)
    assert workspace.query("select count(*) from raw.crm_contacts")[0][0] > 0
    assert not (workspace.root / "spark").exists()
