"""Only the latest business date sends (docs/contract.md §5): a date with a later complete
folder in the landing, or a later date already sent, sends nothing; an unfinished later
folder, a file named like a date and the earlier folders do not count."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from assets.shared.warehouse import connect, ensure_schema
from models.landing import list_folders
from senders.cohort import past_date_reason

DAY = dt.date(2025, 11, 18)


def _folder(landing, day: str, complete: bool = True) -> None:
    (landing / day).mkdir(parents=True)
    if complete:
        (landing / day / "_SUCCESS").write_text("")


def _reason(tmp_path, landing) -> str | None:
    with connect(tmp_path / "warehouse.duckdb") as con:
        ensure_schema(con)
        return past_date_reason(con, SimpleNamespace(landing=landing), DAY)


def test_a_later_complete_folder_stops_an_earlier_date_and_nothing_else_does(tmp_path):
    landing = tmp_path / "landing"
    for day in ("2025-11-16", "2025-11-17", "2025-11-18"):
        _folder(landing, day)
    _folder(landing, "2025-11-20", complete=False)  # still landing: not a later date yet
    (landing / "2025-11-21").write_text("a file, not a folder")
    _folder(landing, "2025-11-31")  # no such date
    assert _reason(tmp_path, landing) is None

    (landing / "2025-11-20" / "_SUCCESS").write_text("")
    assert _reason(tmp_path, landing) == (
        "a later business date (2025-11-20) has landed; only the latest date sends"
    )


def test_a_later_folder_behind_a_link_counts_and_a_missing_landing_stops_nothing(tmp_path):
    landing, elsewhere = tmp_path / "landing", tmp_path / "elsewhere"
    _folder(landing, "2025-11-18")
    _folder(elsewhere, "2025-11-19")
    (landing / "2025-11-19").symlink_to(elsewhere / "2025-11-19", target_is_directory=True)
    # links that loop or lead nowhere are no folders, as Path.is_dir says
    (landing / "2025-11-20").symlink_to(landing / "2025-11-20")
    (landing / "2025-11-21").symlink_to(tmp_path / "gone")
    assert [f.business_date.isoformat() for f in list_folders(landing)] == [
        "2025-11-18",
        "2025-11-19",
    ]
    assert "(2025-11-19) has landed" in _reason(tmp_path, landing)
    assert _reason(tmp_path, tmp_path / "no-landing") is None
