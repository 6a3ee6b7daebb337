"""The optional order lines as the night loads them: with the other extracts or not at all,
and a landing without them loads exactly as before (no dbt here: fast)."""

from __future__ import annotations

import datetime as dt

import pytest

from assets.ingest.extracts import ingest_night
from models.extracts import ExtractError
from models.settings import load_settings
from tests.support.landing import contact, line, order, write_folder

YESTERDAY, TODAY = "2025-11-19", "2025-11-20"


def _ingest(day: str):
    return ingest_night(load_settings(), dt.date.fromisoformat(day))


def _night(workspace, day: str, lines=None, **orders_fields):
    return write_folder(
        workspace.landing,
        day,
        contacts=[contact("c1")],
        orders=[order(f"o-{day}", "c1", f"{day}T10:00:00Z", "30.00", **orders_fields)],
        lines=lines,
    )


def test_a_landing_without_lines_loads_as_before_and_is_not_loaded_again(workspace):
    _night(workspace, YESTERDAY)
    assert _ingest(YESTERDAY)["order_lines"].rows == 0
    _night(workspace, TODAY, lines=[line(f"o-{TODAY}", "1", "SKU-1", "2", "15.00")])
    summary = _ingest(TODAY)
    # yesterday's folder, complete without lines, is not loaded again every night
    assert summary["orders"].dates == [dt.date(2025, 11, 20)]
    assert summary["order_lines"].rows == 1
    loaded = "select business_date::varchar, extract, row_count from raw.loaded_files order by 1, 2"
    assert workspace.query(loaded) == [
        (YESTERDAY, "crm_contacts", 1), (YESTERDAY, "orders", 1), (YESTERDAY, "web_events", 0),
        (TODAY, "crm_contacts", 1), (TODAY, "order_lines", 1), (TODAY, "orders", 1),
        (TODAY, "web_events", 0),
    ]  # fmt: skip
    assert workspace.query("select order_id, line_id, quantity from raw.order_lines") == [
        (f"o-{TODAY}", "1", 2)
    ]


def test_lines_landed_in_a_folder_loaded_before_are_loaded_next_run(workspace):
    folder = _night(workspace, YESTERDAY)
    _ingest(YESTERDAY)
    # the exporter adds the lines to yesterday's folder: the next night loads them
    _night(workspace, YESTERDAY, lines=[line(f"o-{YESTERDAY}", "1", "SKU-1", "1", "30.00")])
    _night(workspace, TODAY)
    assert (folder / "order_lines.csv").exists()
    assert _ingest(TODAY)["order_lines"].rows == 1


def test_refused_lines_refuse_the_whole_night_and_a_refused_orders_file_the_lines(
    workspace, monkeypatch
):
    duplicated = [
        line(f"o-{TODAY}", "1", "SKU-1", "1", "15"),
        line(f"o-{TODAY}", "1", "SKU-2", "1", "15"),
    ]
    _night(workspace, TODAY, lines=duplicated)
    with pytest.raises(ExtractError, match="order_lines: 1 order_id, line_id"):
        _ingest(TODAY)
    counts = "select (select count(*) from raw.orders), (select count(*) from raw.crm_contacts)"
    assert workspace.query(counts) == [(0, 0)]

    good = [line(f"o-{TODAY}", "1", "SKU-1", "2", "15.00")]
    _night(workspace, TODAY, lines=good, status="shipped")  # orders' bad row ...
    monkeypatch.setenv("NIGHTJAR_QUARANTINE_MAX_SHARE", "0")  # ... may not be set aside
    with pytest.raises(ExtractError, match=r"orders\.csv row 1, column status"):
        _ingest(TODAY)
    assert workspace.query("select count(*) from raw.order_lines") == [(0,)]
