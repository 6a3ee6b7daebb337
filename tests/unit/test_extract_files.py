"""Reading and checking the landed files: every problem named with file, row, column, rule."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import polars as pl
import pytest

from models.extract_files import load_extract
from models.extracts import EXTRACTS, ExtractError
from models.landing import LandingFolder
from models.parsing import parse_instants, parse_timestamp
from tests.support.landing import (
    CONTACT_COLUMNS,
    ORDER_COLUMNS,
    contact,
    order,
    write_csv,
    write_folder,
)


def folder(landing, day="2025-11-20", **files) -> LandingFolder:
    path = write_folder(landing, day, **files)
    return LandingFolder(dt.date.fromisoformat(day), path)


def load(landing_folder, extract):
    return load_extract([landing_folder], EXTRACTS[extract], "USD").frame


def load_strictly(landing_folder, extract):
    """No row may be quarantined, so a one-row file shows its fault as an error."""
    return load_extract([landing_folder], EXTRACTS[extract], "USD", max_bad_share=0).frame


def test_bom_quotes_unicode_and_blank_values_are_read_as_the_contract_says(tmp_path):
    f = folder(tmp_path)
    text = (
        "\ufeff" + ",".join(CONTACT_COLUMNS) + "\n"
        'c1, Ann@Example.com ,"Zoë, ""Z""",,,us,,TRUE,2025-11-19T08:00:00+01:00,'
        '2025-11-19T08:00:00,""\n'
    )
    (f.path / "crm_contacts.csv").write_text(text, encoding="utf-8")
    row = load(f, "crm_contacts").row(0, named=True)
    assert row["first_name"] == 'Zoë, "Z"'
    assert row["email"] == "Ann@Example.com"  # trimmed; normalized later, in SQL
    assert row["last_name"] is None and row["timezone"] is None
    assert row["email_opt_in"] is True and row["is_deleted"] is False
    assert row["created_at"] == dt.datetime(2025, 11, 19, 7, 0, tzinfo=dt.UTC)
    assert row["updated_at"] == dt.datetime(2025, 11, 19, 8, 0, tzinfo=dt.UTC)  # no offset = UTC
    assert (row["source_row"], row["business_date"]) == (1, dt.date(2025, 11, 20))


def test_is_deleted_is_optional_and_defaults_to_false(tmp_path):
    f = folder(tmp_path)
    columns = [c for c in CONTACT_COLUMNS if c != "is_deleted"]
    write_csv(f.path / "crm_contacts.csv", columns, [contact("c1")])
    assert load(f, "crm_contacts")["is_deleted"].to_list() == [False]


def test_an_empty_orders_file_loads_no_rows(tmp_path):
    assert load(folder(tmp_path), "orders").height == 0


def test_a_missing_column_names_the_file_and_the_column(tmp_path):
    f = folder(tmp_path)
    write_csv(f.path / "orders.csv", [c for c in ORDER_COLUMNS if c != "currency"], [])
    with pytest.raises(ExtractError, match=r"orders\.csv: missing required column\(s\) currency"):
        load(f, "orders")


def test_one_bad_row_in_a_small_file_is_quarantined_not_fatal(tmp_path):
    # A quiet day's changes: 0.5% of 20 rows is less than a row, yet one row may go aside.
    orders = [order(f"o{i}", "c1", "2025-11-20T10:00:00Z", "10") for i in range(19)]
    f = folder(tmp_path, orders=[*orders, order("o-bad", "c1", "2025-11-20T10:00:00Z", "-5")])
    checked = load_extract([f], EXTRACTS["orders"], "USD")
    assert checked.frame.height == 19
    assert checked.quarantine.select("source_row", "column_name").rows() == [(20, "total_amount")]
    with pytest.raises(ExtractError, match=r"1 of 20 rows \(5\.0%\); at most 0\.0%"):
        load_extract([f], EXTRACTS["orders"], "USD", max_bad_share=0)


def test_every_bad_row_is_reported_with_row_column_and_rule(tmp_path):
    f = folder(
        tmp_path,
        orders=[
            order("o1", "c1", "2025-11-20T10:00:00Z", "-5"),
            order("o2", "c1", "yesterday", "10", status="shipped"),
            order("o3", "c1", "2025-11-20T10:00:00Z", "10", currency="EUR"),
        ],
    )
    with pytest.raises(ExtractError) as error:
        load(f, "orders")
    message = str(error.value)
    assert (
        "orders: too many rows break the extract contract (" in message
        and "orders.csv: 3 of 3 rows (100.0%); at most 0.5% may be quarantined); nothing was "
        "loaded."
        in message
    )
    assert (
        "orders.csv row 1, column total_amount: must be a decimal number ≥ 0 with at most "
        "4 decimal places (value '-5')" in message
    )
    timestamp = "must be an ISO 8601 timestamp of the years 1900 to 9999 (value 'yesterday')"
    assert f"orders.csv row 2, column ordered_at: {timestamp}" in message
    assert f"row 2, column updated_at: {timestamp}" in message
    assert (
        "row 2, column status: must be one of completed, cancelled, refunded (value 'shipped')"
        in message
    )
    assert "row 3, column currency: must be equal to the base currency USD (value 'EUR')" in message


def test_a_key_twice_in_one_file_fails_the_file_naming_the_rows(tmp_path):
    f = folder(
        tmp_path,
        orders=[
            order("o1", "c1", "2025-11-20T10:00:00Z", "5"),
            order("o2", "c1", "2025-11-20T10:00:00Z", "6"),
            order("o1", "c1", "2025-11-20T11:00:00Z", "7"),
        ],
    )
    with pytest.raises(ExtractError) as error:
        load(f, "orders")
    assert "orders: 1 order_id(s) appear more than once in one file; nothing was loaded" in str(
        error.value
    )
    assert "orders.csv: order_id 'o1' on rows 1, 3" in str(error.value)


def test_email_values_in_errors_are_masked(tmp_path):
    f = folder(
        tmp_path, contacts=[contact("c1", email="jane.doe@example.com", email_opt_in="maybe")]
    )
    with pytest.raises(ExtractError) as error:
        load_strictly(f, "crm_contacts")
    assert "email_opt_in: must be a boolean true/false/1/0 (value 'maybe')" in str(error.value)
    assert "jane.doe" not in str(error.value)


def test_a_29_february_birth_date_is_valid_and_30_february_is_not(tmp_path):
    ok = folder(tmp_path, "2025-11-19", contacts=[contact("c1", birth_date="2000-02-29")])
    assert load(ok, "crm_contacts")["birth_date"].to_list() == [dt.date(2000, 2, 29)]
    bad = folder(tmp_path, "2025-11-20", contacts=[contact("c1", birth_date="2001-02-29")])
    with pytest.raises(ExtractError, match="birth_date: must be a date YYYY-MM-DD"):
        load_strictly(bad, "crm_contacts")


def _orders_parquet(path, **columns) -> None:
    at = dt.datetime(2025, 11, 20, 10, tzinfo=dt.UTC)
    pl.DataFrame(
        {
            "order_id": ["o1"],
            "contact_id": ["c1"],
            "email": [None],
            "ordered_at": [at],
            "updated_at": [at],
            "status": ["completed"],
            "currency": ["USD"],
            "total_amount": [12.5],
            **columns,
        }
    ).write_parquet(path / "orders.parquet")


def test_parquet_is_accepted_and_csv_wins_when_both_exist(tmp_path):
    f = folder(tmp_path, orders=[order("from-csv", "c1", "2025-11-20T10:00:00Z", "10")])
    _orders_parquet(f.path, order_id=["from-parquet"])
    assert load(f, "orders")["order_id"].to_list() == ["from-csv"]
    (f.path / "orders.csv").unlink()
    typed = load(f, "orders").row(0, named=True)
    assert typed["order_id"] == "from-parquet"
    assert typed["total_amount"] == Decimal("12.50")
    assert typed["ordered_at"] == dt.datetime(2025, 11, 20, 10, tzinfo=dt.UTC)


def test_a_parquet_column_of_lists_is_named_or_ignored_as_an_extra(tmp_path):
    f = folder(tmp_path)
    (f.path / "orders.csv").unlink()
    # an extra column is ignored, whatever it holds
    _orders_parquet(f.path, tags=[["gift", "sale"]], shipping=[{"city": "Oslo"}])
    assert load(f, "orders")["order_id"].to_list() == ["o1"]
    # a contract column must hold one value per row
    _orders_parquet(f.path, status=[["completed", "refunded"]])
    with pytest.raises(ExtractError) as error:
        load(f, "orders")
    message = str(error.value)
    assert "orders.parquet: column status holds lists" in message
    assert "one value per row" in message
    # matched as a header's names are: trimmed, any case
    _orders_parquet(f.path, status=["completed"], currency=[{"code": "USD"}])
    path = f.path / "orders.parquet"
    pl.read_parquet(path).rename({"currency": " Currency "}).write_parquet(path)
    with pytest.raises(ExtractError, match="column currency holds records"):
        load(f, "orders")


@pytest.mark.parametrize("name", ["isDeleted", "gdpr_erasure"])
def test_a_parquet_erasure_flag_of_lists_or_records_is_not_read_as_no_erasure(tmp_path, name):
    # is_deleted is optional (false when absent): a flag under a near-miss name must be
    # refused as the CSV header's would be, whatever it holds, or an erasure is lost
    f = folder(tmp_path)
    (f.path / "crm_contacts.csv").unlink()
    at = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    for value in ([True], {"requested": True}):
        pl.DataFrame(
            {
                "contact_id": ["c1"],
                "email": ["a@example.com"],
                "email_opt_in": [True],
                "created_at": [at],
                "updated_at": [at],
                name: [value],
            }
        ).write_parquet(f.path / "crm_contacts.parquet")
        with pytest.raises(ExtractError, match="looks like the contract's column is_deleted"):
            load(f, "crm_contacts")


def test_a_file_that_is_not_utf8_is_refused_with_its_name(tmp_path):
    f = folder(tmp_path)
    (f.path / "web_events.csv").write_bytes("event_id\nd\xe9j\xe0\n".encode("latin-1"))
    with pytest.raises(ExtractError, match=r"web_events\.csv: cannot be read as CSV"):
        load(f, "web_events")


def test_an_extract_file_missing_from_a_complete_folder_is_named(tmp_path):
    f = folder(tmp_path)
    (f.path / "web_events.csv").unlink()
    with pytest.raises(
        ExtractError, match=r"no web_events\.csv .* although the folder is marked complete"
    ):
        load(f, "web_events")


def test_parquet_booleans_and_timestamps_are_read_as_their_text(tmp_path):
    f = folder(tmp_path)
    (f.path / "crm_contacts.csv").unlink()
    pl.DataFrame(
        {
            "contact_id": ["c1", "c2"],
            "email": ["a@example.com", None],
            "first_name": ["Ann", None],
            "last_name": [None, None],
            "birth_date": [dt.date(2000, 2, 29), None],
            "country": ["US", None],
            "timezone": [None, None],
            "email_opt_in": [True, False],
            "created_at": [dt.datetime(2025, 1, 1, tzinfo=dt.UTC)] * 2,
            "updated_at": [dt.datetime(2025, 1, 1, 12, 30)] * 2,  # no zone: UTC
            "is_deleted": [False, None],
        }
    ).write_parquet(f.path / "crm_contacts.parquet")
    rows = load(f, "crm_contacts").sort("contact_id").to_dicts()
    assert [r["email_opt_in"] for r in rows] == [True, False]
    assert [r["is_deleted"] for r in rows] == [False, False]
    assert rows[0]["birth_date"] == dt.date(2000, 2, 29)
    assert rows[0]["updated_at"] == dt.datetime(2025, 1, 1, 12, 30, tzinfo=dt.UTC)


def test_amounts_keep_up_to_four_decimal_places_and_hour_offsets_parse(tmp_path):
    f = folder(
        tmp_path,
        orders=[
            order("o1", "c1", "2025-11-20T10:00:00+01", "12.345"),
            order("o2", "c1", "2025-11-20T10:00:00Z", "0.0050"),
        ],
    )
    rows = load(f, "orders").sort("order_id").to_dicts()
    assert [r["total_amount"] for r in rows] == [Decimal("12.345"), Decimal("0.005")]
    assert rows[0]["ordered_at"] == dt.datetime(2025, 11, 20, 9, tzinfo=dt.UTC)
    rounded = folder(
        tmp_path, "2025-11-21", orders=[order("o3", "c1", "2025-11-21T10:00:00Z", "1.23456")]
    )
    with pytest.raises(ExtractError, match="at most 4 decimal places"):
        load_strictly(rounded, "orders")


def test_a_malformed_csv_is_named_without_leaking_addresses(tmp_path):
    f = folder(tmp_path)
    header = ",".join(CONTACT_COLUMNS)
    (f.path / "crm_contacts.csv").write_text(
        f'{header}\nc1,"unterminated,x,y\nc2,jane.doe@example.com,Jane\n', encoding="utf-8"
    )
    with pytest.raises(ExtractError) as error:
        load(f, "crm_contacts")
    assert "crm_contacts.csv" in str(error.value)
    assert "jane.doe@example.com" not in str(error.value)


def test_the_instants_fast_paths_parse_every_spelling_as_parse_timestamp_does():
    spellings = [
        "2025-06-01T00:10:15Z", "2025-06-01T00:10:15", "2025-06-01 00:10:15z",
        "2025-06-01t00:10:15Z", "2025-06-01T00:10:15+0100", "2025-06-01T00:10+01:00",
        "2025-06-01T00:10:15.123456Z", "2025-06-01T00:10:15-03", "1899-12-31T23:59:59Z",
        "1900-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "9999-12-31T23:00:00-05:00",
        "+12025-01-01T00:00:00Z", "2025-02-30T00:00:00Z", "2025-06-01T24:00:00Z", None,
    ]  # fmt: skip
    text = pl.Series("ordered_at", spellings)
    expected = pl.DataFrame({"t": text}).select(parse_timestamp(pl.col("t")))["t"]
    parsed = parse_instants(text)
    assert parsed.name == "ordered_at"
    assert parsed.to_list() == expected.to_list()
    assert parsed.null_count() == 6  # 1899, 9999 west of UTC, year 12025, 30 Feb, 24:00, None


# Pieces of an instant as exporters spell it, the first of each the common one. Every text
# that differs from the common one in one or two pieces is tried: a direct form accepting
# what parse_timestamp refuses, or reading it otherwise, is a text with a piece or two off.
_INSTANT_PIECES = (
    ["", " ", "x"],
    ["2025", "1900", "1899", "9999", "12025", "+2025", "25", "-2025"],
    ["-06", "-6", "-13", "-00"],
    ["-01", "-1", "-31", "-30", "-00"],
    ["T", "t", " ", "TT", "_", ""],
    ["10", "0", "23", "24", "\uff11\uff10"],
    [":00", ":0", ":59", ":60"],
    [":15", "", ":60", ":5", ":07.5", ":07.123456", ":07.1234567890", ":07.", ":07,5"],
    [
        "Z",
        "",
        "z",
        "+00:00",
        "+02:00",
        "-08:00",
        "+0200",
        "+02",
        "+24:00",
        "+02:60",
        " Z",
        "UTC",
        "+02: 00",
        "+02 00",
        "+02::00",
        "\u221202:00",
        "+02\xa000",
        "+\u0660\u0662:00",
    ],
    ["", " ", "x", "\n"],
)


def _instant_spellings() -> list[str]:
    common = [pieces[0] for pieces in _INSTANT_PIECES]
    spellings = []
    for first, second in itertools.combinations(range(len(_INSTANT_PIECES)), 2):
        for a, b in itertools.product(_INSTANT_PIECES[first], _INSTANT_PIECES[second]):
            spelling = list(common)
            spelling[first], spelling[second] = a, b
            spellings.append("".join(spelling))
    return spellings


def test_parse_instants_reads_any_text_as_parse_timestamp_does():
    text = pl.Series("t", _instant_spellings())
    expected = pl.DataFrame({"t": text}).select(parse_timestamp(pl.col("t")))["t"]
    parsed = parse_instants(text)
    differ = pl.DataFrame({"text": text, "got": parsed, "want": expected}).filter(
        ~parsed.eq_missing(expected)
    )
    assert differ.height == 0, differ.head(10)
    assert 0 < expected.null_count() < len(text)


# Files as exporters write them, each valid: the files of a chunk are read together
# (models/extract_files.read_extract_chunk) and must come out as each read alone.
_HEADER = ",".join(ORDER_COLUMNS)
_ROW = "o{n},c{n},,2025-06-0{d}T10:00:00Z,2025-06-0{d}T10:00:00Z,completed,USD,1{n}.50"
_VALID_FILES = {
    "plain": _HEADER + "\n" + "\n".join(_ROW.format(n=n, d=1) for n in range(3)) + "\n",
    "no last line break": _HEADER + "\n" + _ROW.format(n=7, d=2),
    "crlf": (_HEADER + "\r\n" + _ROW.format(n=8, d=3) + "\r\n"),
    "bom": "\ufeff" + _HEADER + "\n" + _ROW.format(n=9, d=4) + "\n",
    "header only": _HEADER + "\n",
    "quoted comma": _HEADER + '\n"o,5",c5,,2025-06-05T10:00:00Z,2025-06-05T10:00:00Z,'
    'completed,USD,"15.50"\n',
    "blank and empty rows": _HEADER + "\n" + _ROW.format(n=6, d=6) + "\n\n,,,,,,,\n",
    "other spelling": _HEADER.upper() + "\n" + _ROW.format(n=4, d=7) + "\n",
    "another plain": _HEADER + "\n" + _ROW.format(n=3, d=8) + "\n",
}


def test_the_files_of_a_chunk_read_together_come_out_as_each_read_alone(tmp_path):
    from models.extract_files import read_extract_file, read_extract_files

    spec = EXTRACTS["orders"]
    paths = []
    for i, text in enumerate(_VALID_FILES.values()):
        path = tmp_path / f"2025-06-{i + 1:02d}" / "orders.csv"
        path.parent.mkdir()
        path.write_bytes(text.encode())
        paths.append(path)
    together = read_extract_files(paths, spec)
    for path, frame, name in zip(paths, together, _VALID_FILES, strict=True):
        assert frame.equals(read_extract_file(path, spec)), name
    assert [f.height for f in together] == [3, 1, 1, 1, 0, 1, 1, 1, 1]
    assert together[0]["source_row"].to_list() == [1, 2, 3]
    # and they were read together, not each alone after a failed attempt
    from models.extract_files import _read_together
    from models.extract_reader import checked_csv_bytes

    same_header = [(p, *checked_csv_bytes(p)) for p in (paths[0], paths[1], paths[8])]
    header = same_header[0][1].split(b"\n", 1)[0]
    read = _read_together(header, same_header, spec)
    assert read is not None and read[1] == [3, 1, 1]


@pytest.mark.parametrize("files", ["one header", "several headers"])
def test_a_chunk_of_files_comes_out_as_its_files_read_alone_one_after_the_other(tmp_path, files):
    """read_extract_chunk: one frame for a chunk's files, each file's rows counted; the files
    sharing a header are one polars read, taken as it is."""
    from models.extract_files import read_extract_chunk, read_extract_file

    spec = EXTRACTS["orders"]
    texts = list(_VALID_FILES.values())
    if files == "one header":
        same = ("plain", "no last line break", "blank and empty rows", "another plain")
        texts = [_VALID_FILES[name] for name in same]
    paths = []
    for i, text in enumerate(texts):
        path = tmp_path / f"2025-06-{i + 1:02d}" / "orders.csv"
        path.parent.mkdir()
        path.write_bytes(text.encode())
        paths.append(path)
    frame, rows = read_extract_chunk(paths, spec)
    alone = [read_extract_file(path, spec) for path in paths]
    assert frame.equals(pl.concat(alone))
    assert rows == [each.height for each in alone]
    assert frame["source_file"].to_list() == [
        str(path) for path, each in zip(paths, alone, strict=True) for _ in range(each.height)
    ]


def test_a_broken_file_among_others_is_named_as_when_read_alone(tmp_path):
    from models.extract_files import read_extract_file, read_extract_files

    spec = EXTRACTS["orders"]
    broken = _HEADER + '\n"o1,c1,,2025-06-01T10:00:00Z,x,completed,USD,1\n' + _ROW.format(n=2, d=1)
    paths = []
    for i, text in enumerate([_VALID_FILES["plain"], broken, _VALID_FILES["another plain"]]):
        path = tmp_path / f"2025-06-{i + 1:02d}" / "orders.csv"
        path.parent.mkdir()
        path.write_bytes(text.encode())
        paths.append(path)
    with pytest.raises(ExtractError) as alone:
        read_extract_file(paths[1], spec)
    with pytest.raises(ExtractError) as together:
        read_extract_files(paths, spec)
    assert str(together.value) == str(alone.value)
    assert str(paths[1]) in str(together.value)


def _order_of_many_forms(day: int, i: int) -> dict:
    """An order whose instants are spelled as exporters do, a tenth of its updates unreadable."""
    forms = ("{}T{}Z", "{}T{}+02:00", "{}T{}", "{} {}", "{}T{}.5-0330")
    ordered = forms[i % 5].format(f"2025-11-{day}", f"{i % 24:02}:{i % 60:02}:07")
    updated = f"2024-0{1 + i % 9}-1{i % 10}T00:00:{i % 60:02}Z" if i % 97 != 3 else "yesterday"
    return order(f"o{day}-{i}", "c1", ordered, "10", updated_at=updated)


def test_each_loaded_row_keeps_its_own_instants_when_rows_are_set_aside(tmp_path):
    # The instants are parsed once, before the checks, beside the text they came from; the
    # rows set aside must take theirs with them, in every file of a chunk.
    days = {day: [_order_of_many_forms(day, i) for i in range(400)] for day in (19, 20)}
    chunk = [folder(tmp_path, f"2025-11-{day}", orders=rows) for day, rows in days.items()]
    checked = load_extract(chunk, EXTRACTS["orders"], "USD", max_bad_share=0.05)

    written = {row["order_id"]: row for rows in days.values() for row in rows}
    set_aside = {k for k, row in written.items() if row["updated_at"] == "yesterday"}
    assert len(set_aside) == 10 and checked.quarantine.height == 10
    loaded = checked.frame
    assert set(loaded["order_id"]) == set(written) - set_aside
    assert [c for c in loaded.columns if ":" in c] == []  # nothing beside the contract's
    for column in ("ordered_at", "updated_at"):
        texts = pl.Series([written[k][column] for k in loaded["order_id"]])
        assert loaded[column].to_list() == parse_instants(texts).to_list()
        assert loaded[column].null_count() == 0


def test_addresses_in_urls_are_masked_in_the_rows_that_hold_them_and_no_other():
    from models.extract_files import to_typed

    def events(urls):
        return pl.DataFrame(
            {"event_timestamp": "2024-01-02T03:04:05Z", "value": "1", "page_url": urls},
            schema_overrides={"page_url": pl.String},
        )

    urls = [
        "https://shop.example/p/1",
        "https://shop.example/u?email=jane.doe%40example.com&x=1",
        None,
        "mailto:bob@example.org",
        "https://shop.example/p/2",
    ]
    typed = to_typed(events(urls), EXTRACTS["web_events"])
    assert typed["page_url"].to_list() == [
        "https://shop.example/p/1",
        "https://shop.example/u?email=j***%40example.com&x=1",
        None,
        "mailto:b***@example.org",
        "https://shop.example/p/2",
    ]
    plain = ["https://shop.example/p/1", None]
    assert to_typed(events(plain), EXTRACTS["web_events"])["page_url"].to_list() == plain
