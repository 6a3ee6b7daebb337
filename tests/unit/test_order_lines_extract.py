"""The optional order_lines extract: checked like the others (file, row, column, rule), its
key two columns, and a folder without it is a night without lines."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from models.extract_files import load_extract
from models.extracts import EXTRACTS, ExtractError
from models.landing import LandingFolder
from models.quarantine import shown
from tests.support.landing import LINE_COLUMNS, line, order, write_csv, write_folder

DAY = "2025-11-20"
LINES = EXTRACTS["order_lines"]


def _load(tmp_path, lines, max_bad_share=1.0, success=""):
    folder = write_folder(
        tmp_path,
        DAY,
        orders=[order("o1", "c1", f"{DAY}T10:00:00Z", "30.00")],
        lines=lines,
    )
    (folder / "_SUCCESS").write_text(success)
    return load_extract(
        [LandingFolder(dt.date.fromisoformat(DAY), folder)], LINES, "USD", max_bad_share
    )


def test_good_lines_load_typed_with_extra_columns_ignored(tmp_path):
    checked = _load(
        tmp_path,
        [
            line("o1", "1", "SKU-00001", "2", "10.00", colour="red"),
            line("o1", "2", "SKU-7", "1", "10"),
        ],
    )
    frame = checked.frame.sort("line_id")
    assert frame["quantity"].to_list() == [2, 1]
    assert [str(p) for p in frame["unit_price"]] == ["10.0000", "10.0000"]
    assert "colour" not in frame.columns
    assert checked.quarantine.height == 0


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("quantity", "0", "a whole number ≥ 1"),
        ("quantity", "1.5", "a whole number ≥ 1"),
        ("quantity", "", "present (it is required)"),
        ("unit_price", "-1.00", "a decimal number ≥ 0 with at most 4 decimal places"),
        ("unit_price", "9.99999", "a decimal number ≥ 0 with at most 4 decimal places"),
        ("sku", "", "present (it is required)"),
        ("line_id", "2\u200b", "free of control and invisible characters"),
        # SKU-2 and SKU-2 with a zero-width space would be two products nobody can tell apart
        ("sku", "SKU-2\u200b", "free of control and invisible characters"),
    ],
)
def test_a_bad_line_is_set_aside_and_named_by_file_row_column_and_rule(
    tmp_path, column, value, rule
):
    bad = {**line("o1", "2", "SKU-2", "1", "5.00"), column: value}
    checked = _load(tmp_path, [line("o1", "1", "SKU-1", "1", "25.00"), bad])
    assert checked.frame["line_id"].to_list() == ["1"]
    (problem,) = checked.quarantine.iter_rows(named=True)
    assert (problem["source_row"], problem["column_name"], problem["action"]) == (
        2,
        column,
        "row_quarantined",
    )
    assert problem["rule"].startswith(rule)
    assert problem["extract"] == "order_lines"

    with pytest.raises(ExtractError) as refused:  # none may be set aside: the file is refused
        _load(tmp_path, [line("o1", "1", "SKU-1", "1", "25.00"), bad], max_bad_share=0)
    message = str(refused.value)
    assert "order_lines.csv row 2, column " + column in message
    assert "nothing was loaded" in message


def test_a_bad_product_name_is_emptied_and_the_line_kept(tmp_path):
    checked = _load(tmp_path, [line("o1", "1", "SKU-1", "1", "30", product_name="x" * 300)])
    assert checked.frame["product_name"].to_list() == [None]
    assert checked.quarantine["action"].to_list() == ["value_removed"]


def test_a_line_twice_in_one_file_refuses_the_file(tmp_path):
    lines = [
        line("o1", "1", "SKU-1", "1", "10"),
        line("o1", "2", "SKU-2", "1", "10"),
        line("o2", "1", "SKU-3", "1", "10"),  # the same line_id in another order is fine
        line("o1", "1", "SKU-4", "1", "10"),
    ]
    with pytest.raises(ExtractError) as refused:
        _load(tmp_path, lines)
    message = str(refused.value)
    assert "1 order_id, line_id(s) appear more than once in one file" in message
    assert "order_lines.csv: order_id, line_id 'o1', '1' on rows 1, 4" in message


def test_a_folder_without_lines_is_a_night_without_lines(tmp_path):
    checked = _load(tmp_path, None)
    assert checked.frame.height == 0 and checked.quarantine.height == 0


def test_lines_the_exporter_counted_but_did_not_write_are_lost_not_absent(tmp_path):
    with pytest.raises(ExtractError, match=r"order_lines.csv: missing, though the exporter"):
        _load(tmp_path, None, success="order_lines.csv 3\n")


def test_row_counts_in_success_apply_to_the_lines(tmp_path):
    with pytest.raises(ExtractError, match="truncated"):
        _load(tmp_path, [line("o1", "1", "SKU-1", "1", "30")], success="order_lines.csv 2\n")


def test_a_missing_required_column_refuses_the_file(tmp_path):
    folder = tmp_path / DAY
    folder.mkdir()
    write_csv(folder / "order_lines.csv", [c for c in LINE_COLUMNS if c != "quantity"], [])
    with pytest.raises(ExtractError, match="missing required column"):
        load_extract([LandingFolder(dt.date.fromisoformat(DAY), folder)], LINES, "USD")


def test_a_megabyte_sku_is_set_aside_in_moments_its_value_cut(tmp_path):
    # Masking addresses in a long value without an "@" backtracked over it from every
    # position: 40,000 characters took 11 s, a 10 MB SKU hung the night (and its run lock).
    started = time.perf_counter()
    sku = "S" * 1_000_000
    checked = _load(tmp_path, [line("o1", "1", sku, "1", "30", product_name="Mug")])
    assert time.perf_counter() - started < 20
    (problem,) = checked.quarantine.iter_rows(named=True)
    assert problem["column_name"] == "sku"
    assert problem["value"] == "S" * 80 + "… (1,000,000 characters)"


def test_addresses_in_a_shown_value_are_masked_and_long_text_is_quick():
    assert shown("sku", "see jane.doe@example.com or bob%40example.org") == (
        "see j***@example.com or b***%40example.org"
    )
    started = time.perf_counter()
    shown("sku", "a.b" * 100_000 + "%40x")
    assert time.perf_counter() - started < 1


def test_a_repeated_line_is_named_by_its_key_shown_cut_never_megabytes(tmp_path):
    big = "X" * 1_000_000
    with pytest.raises(ExtractError) as refused:
        _load(tmp_path, [line(big, "1", "SKU-1", "1", "10"), line(big, "1", "SKU-1", "1", "10")])
    message = str(refused.value)
    assert len(message) < 1_000
    assert "'" + "X" * 80 + "… (1,000,000 characters)', '1' on rows 1, 2" in message


def test_a_line_whose_amount_the_warehouse_cannot_hold_is_set_aside(tmp_path):
    # quantity * unit_price is a DECIMAL(18, 4) in the warehouse: past 10^14 every model of
    # the lines failed, night after night, as the loaded line stayed in raw.order_lines
    checked = _load(
        tmp_path,
        [
            line("o1", "1", "SKU-1", "1", "99999999999999.9999"),
            line("o1", "2", "SKU-2", "1000", "99999999999.9999"),
            line("o1", "3", "SKU-3", "2", "50000000000000"),
            line("o1", "4", "SKU-4", "999999999", "99999999999999.9999"),
        ],
    )
    assert checked.frame["line_id"].to_list() == ["1", "2"]
    assert [
        (p["source_row"], p["column_name"]) for p in checked.quarantine.iter_rows(named=True)
    ] == [
        (3, "unit_price"),
        (4, "unit_price"),
    ]
    assert set(checked.quarantine["rule"]) == {
        "a price whose line amount (quantity * unit_price) is below 10^14"
    }
