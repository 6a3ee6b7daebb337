"""A corpus of broken extracts, each with the outcome Nightjar owes it.

Every case starts from one good folder (400 contacts, 400 orders, 400 web events; the cases
of the optional order lines add 400 lines) and breaks one thing. The outcome is either `Fail(pattern)`: the night stops with a message matching
the pattern (and loads nothing), or `Quarantine(rows, values)`: that many rows are set aside
and that many optional values emptied, the rest load.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.landing import LINE_COLUMNS, contact, event, line, order, write_csv, write_folder

DAY = "2025-11-20"
ROWS = 400  # one bad row is 0.25%: under the 0.5% threshold; three are 0.75%: over it


@dataclass(frozen=True)
class Fail:
    pattern: str


@dataclass(frozen=True)
class Quarantine:
    rows: int
    values: int = 0


@dataclass(frozen=True)
class Case:
    name: str
    extract: str
    breaks: Callable[[Path], None]  # given the folder, breaks it
    outcome: Fail | Quarantine
    crm_export: str = "snapshot"  # NIGHTJAR_CRM_EXPORT


def good_folder(landing: Path, day: str = DAY, success: str = "") -> Path:
    contacts = [contact(f"c{i:04d}", updated_at=f"{day}T01:00:00Z") for i in range(ROWS)]
    orders = [order(f"o{i:04d}", f"c{i:04d}", f"{day}T10:00:00Z", "1500.00") for i in range(ROWS)]
    events = [event(f"e{i:04d}", f"anon{i}", f"{day}T11:00:00Z") for i in range(ROWS)]
    folder = write_folder(landing, day, contacts=contacts, orders=orders, events=events)
    (folder / "_SUCCESS").write_text(success)
    return folder


def with_lines(*breaks: Callable[[Path], None]) -> Callable[[Path], None]:
    """The good folder with a line for each of its orders (order_lines.csv is optional), then
    `breaks` applied."""

    def landed(folder: Path) -> None:
        lines = [line(f"o{i:04d}", "1", f"SKU-{i:05d}", "3", "500.00") for i in range(ROWS)]
        write_csv(folder / "order_lines.csv", LINE_COLUMNS, lines)
        for each in breaks:
            each(folder)

    return landed


def _rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _write(path: Path, rows: list[dict], columns: list[str] | None = None, **options) -> None:
    columns = columns or list(rows[0])
    with path.open("w", encoding=options.pop("encoding", "utf-8"), newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", **options)
        writer.writeheader()
        writer.writerows(rows)


def set_values(extract: str, changes: dict[int, dict[str, str]]) -> Callable[[Path], None]:
    """Rows (0-based) of one file get new values."""

    def breaks(folder: Path) -> None:
        path = folder / f"{extract}.csv"
        rows = _rows(path)
        for index, values in changes.items():
            rows[index].update(values)
        _write(path, rows)

    return breaks


def first_rows(extract: str, count: int, **values) -> Callable[[Path], None]:
    return set_values(extract, dict.fromkeys(range(count), values))


def drop_column(extract: str, column: str) -> Callable[[Path], None]:
    def breaks(folder: Path) -> None:
        path = folder / f"{extract}.csv"
        rows = _rows(path)
        _write(path, rows, [c for c in rows[0] if c != column])

    return breaks


def rename_column(extract: str, old: str, new: str) -> Callable[[Path], None]:
    def breaks(folder: Path) -> None:
        path = folder / f"{extract}.csv"
        rows = [{(new if k == old else k): v for k, v in r.items()} for r in _rows(path)]
        _write(path, rows)

    return breaks


def delimiter(extract: str, sign: str) -> Callable[[Path], None]:
    def breaks(folder: Path) -> None:
        path = folder / f"{extract}.csv"
        _write(path, _rows(path), delimiter=sign)

    return breaks


def latin1(extract: str) -> Callable[[Path], None]:
    def breaks(folder: Path) -> None:
        path = folder / f"{extract}.csv"
        rows = _rows(path)
        rows[0]["first_name" if extract == "crm_contacts" else "page_url"] = "Zoë Müller"
        _write(path, rows, encoding="latin-1")

    return breaks


def truncate(extract: str, keep: int) -> Callable[[Path], None]:
    def breaks(folder: Path) -> None:
        path = folder / f"{extract}.csv"
        _write(path, _rows(path)[:keep])
        (folder / "_SUCCESS").write_text(f"{extract}.csv {ROWS}\n")

    return breaks


def cut_mid_line(extract: str) -> Callable[[Path], None]:
    def breaks(folder: Path) -> None:
        path = folder / f"{extract}.csv"
        text = path.read_text(encoding="utf-8")
        path.write_text(text[: len(text) // 2] + '"unterminated', encoding="utf-8")

    return breaks


def cut_in_last_value(extract: str) -> Callable[[Path], None]:
    """The file cut inside its last row's last value, written quoted: every field is there,
    the value is not (`...,"12` of `...,"12.50"`)."""

    def breaks(folder: Path) -> None:
        path = folder / f"{extract}.csv"
        lines = path.read_text(encoding="utf-8").rstrip("\n").split("\n")
        *head, last = lines
        value_at = last.rindex(",") + 1
        path.write_text("\n".join([*head, f'{last[:value_at]}"{last[value_at:][:2]}']))

    return breaks


def remove(extract: str) -> Callable[[Path], None]:
    return lambda folder: (folder / f"{extract}.csv").unlink()


def empty_bytes(extract: str) -> Callable[[Path], None]:
    return lambda folder: (folder / f"{extract}.csv").write_bytes(b"")


def header_only(extract: str) -> Callable[[Path], None]:
    def breaks(folder: Path) -> None:
        path = folder / f"{extract}.csv"
        path.write_text(path.read_text(encoding="utf-8").splitlines()[0] + "\n")

    return breaks


def duplicate_row(extract: str) -> Callable[[Path], None]:
    def breaks(folder: Path) -> None:
        path = folder / f"{extract}.csv"
        rows = _rows(path)
        _write(path, [*rows, rows[7]])

    return breaks


def _lines(folder: Path, extract: str) -> tuple[Path, list[bytes]]:
    # the good folder's files end their lines in CRLF, as the csv module writes them
    path = folder / f"{extract}.csv"
    return path, path.read_bytes().split(b"\r\n")


def line_endings(extract: str, ending: bytes, header_only: bool = False) -> Callable[[Path], None]:
    """Every line (or the header alone) ends in `ending` instead of CRLF."""

    def breaks(folder: Path) -> None:
        path, lines = _lines(folder, extract)
        if header_only:
            path.write_bytes(lines[0] + ending + b"\n".join(lines[1:]))
        else:
            path.write_bytes(ending.join(lines))

    return breaks


def lone_cr_after_row(extract: str, row: int) -> Callable[[Path], None]:
    def breaks(folder: Path) -> None:
        path, lines = _lines(folder, extract)
        text = b"\n".join(lines[: row + 1]) + b"\r" + b"\n".join(lines[row + 1 :])
        path.write_bytes(text)

    return breaks


def header(extract: str, rename) -> Callable[[Path], None]:
    """The header's names changed by `rename(names)`, the rows as they were."""

    def breaks(folder: Path) -> None:
        path, lines = _lines(folder, extract)
        names = lines[0].decode().split(",")
        path.write_bytes(b"\r\n".join([",".join(rename(names)).encode(), *lines[1:]]))

    return breaks


def renamed(old: str, new: str):
    return lambda names: [new if n == old else n for n in names]


def quote_spanning_rows(extract: str, first: int, last: int) -> Callable[[Path], None]:
    """A quote opens at the start of row `first`'s last field and closes at the end of row
    `last`'s: valid CSV that swallows the rows between into one value."""

    def breaks(folder: Path) -> None:
        path, lines = _lines(folder, extract)
        head, _, tail = lines[first].rpartition(b",")
        lines[first] = head + b',"' + tail
        lines[last] = lines[last] + b'"'
        path.write_bytes(b"\r\n".join(lines))

    return breaks


def field_dropped(extract: str, row: int, column: str, **values) -> Callable[[Path], None]:
    """Row `row` (0-based) gets `values`, then loses its `column` field: the rest of its line
    moves one column to the left."""

    def breaks(folder: Path) -> None:
        set_values(extract, {row: values})(folder)
        path, lines = _lines(folder, extract)
        position = lines[0].decode().split(",").index(column)
        fields = lines[row + 1].decode().split(",")
        lines[row + 1] = ",".join(fields[:position] + fields[position + 1 :]).encode()
        path.write_bytes(b"\r\n".join(lines))

    return breaks


def big(characters: int, fill: str = "x") -> str:
    return fill * characters


CASES = [
    # crm_contacts: file-level
    Case("crm missing", "crm_contacts", remove("crm_contacts"), Fail(r"no crm_contacts\.csv \(or \.parquet\) although the folder is marked complete")),
    Case("crm zero bytes", "crm_contacts", empty_bytes("crm_contacts"), Fail(r"crm_contacts\.csv: the file is empty \(0 bytes, not even a header\)")),
    Case("crm empty snapshot", "crm_contacts", header_only("crm_contacts"), Fail(r"crm_contacts\.csv: a header and no rows, but the CRM exports full snapshots")),
    Case("crm no changes today", "crm_contacts", header_only("crm_contacts"), Quarantine(0), crm_export="changes"),
    Case("crm column missing", "crm_contacts", drop_column("crm_contacts", "email_opt_in"), Fail(r"crm_contacts\.csv: missing required column\(s\) email_opt_in")),
    Case("crm column renamed", "crm_contacts", rename_column("crm_contacts", "updated_at", "last_modified"), Fail(r"missing required column\(s\) updated_at; the header has 11 name\(s\), of the contract's columns contact_id, email")),
    Case("crm semicolons", "crm_contacts", delimiter("crm_contacts", ";"), Fail(r"crm_contacts\.csv: the header is separated by semicolons, not commas")),
    Case("crm tabs", "crm_contacts", delimiter("crm_contacts", "\t"), Fail(r"crm_contacts\.csv: the header is separated by tabs, not commas")),
    Case("crm latin-1", "crm_contacts", latin1("crm_contacts"), Fail(r"crm_contacts\.csv: cannot be read as CSV \(UTF-8")),
    Case("crm truncated", "crm_contacts", truncate("crm_contacts", 250), Fail(r"crm_contacts\.csv: 250 rows, fewer than the 400 the exporter recorded in .*_SUCCESS: the file is truncated")),
    Case("crm duplicate contact", "crm_contacts", duplicate_row("crm_contacts"), Fail(r"crm_contacts: 1 contact_id\(s\) appear more than once in one file.*contact_id 'c0007' on rows 8, 401")),
    # crm_contacts: rows
    Case("crm opt-in maybe", "crm_contacts", first_rows("crm_contacts", 1, email_opt_in="maybe"), Quarantine(1)),
    Case("crm bad updated_at", "crm_contacts", first_rows("crm_contacts", 1, updated_at="yesterday"), Quarantine(1)),
    Case("crm missing id", "crm_contacts", first_rows("crm_contacts", 1, contact_id=""), Quarantine(1)),
    Case("crm birth date 30 Feb", "crm_contacts", first_rows("crm_contacts", 1, birth_date="2001-02-30"), Quarantine(0, 1)),
    Case("crm bad country", "crm_contacts", first_rows("crm_contacts", 2, country="USA"), Quarantine(0, 2)),
    Case("crm bad time zone", "crm_contacts", first_rows("crm_contacts", 1, timezone="Mars/Olympus"), Quarantine(0, 1)),
    Case("crm every opt-in broken", "crm_contacts", first_rows("crm_contacts", ROWS, email_opt_in="nope"), Fail(r"crm_contacts\.csv: 400 of 400 rows \(100\.0%\); at most 0\.5% may be quarantined")),
    Case("crm erasure flag unreadable", "crm_contacts", first_rows("crm_contacts", 1, is_deleted="yes"), Fail(r"crm_contacts: is_deleted cannot be read on 1 row\(s\).*An erasure request must never be guessed")),
    Case("crm three bad rows", "crm_contacts", first_rows("crm_contacts", 3, created_at="31/12/2024"), Fail(r"crm_contacts\.csv: 3 of 400 rows \(0\.8%\)")),
    # orders: file-level
    Case("orders missing", "orders", remove("orders"), Fail(r"no orders\.csv \(or \.parquet\) although the folder is marked complete")),
    Case("orders column missing", "orders", drop_column("orders", "currency"), Fail(r"orders\.csv: missing required column\(s\) currency")),
    Case("orders pipes", "orders", delimiter("orders", "|"), Fail(r"orders\.csv: the header is separated by pipes, not commas")),
    Case("orders cut mid-line", "orders", cut_mid_line("orders"), Fail(r"orders\.csv: the last line is cut short .*: the file is truncated")),
    Case("orders cut in a quoted last value", "orders", cut_in_last_value("orders"), Fail(r"orders\.csv: the last line is cut short .*a quoted value left open.*: the file is truncated")),
    Case("orders truncated", "orders", truncate("orders", 399), Fail(r"orders\.csv: 399 rows, fewer than the 400 the exporter recorded")),
    Case("orders duplicate order", "orders", duplicate_row("orders"), Fail(r"orders: 1 order_id\(s\) appear more than once in one file")),
    # orders: rows
    Case("orders negative amount", "orders", first_rows("orders", 1, total_amount="-12.50"), Quarantine(1)),
    Case("orders unknown status", "orders", first_rows("orders", 1, status="shipped"), Quarantine(1)),
    Case("orders other currency", "orders", first_rows("orders", 1, currency="EUR"), Quarantine(1)),
    Case("orders amount with comma", "orders", first_rows("orders", 1, total_amount="1,234.00"), Quarantine(1)),
    Case("orders five decimals", "orders", first_rows("orders", 1, total_amount="1.23456"), Quarantine(1)),
    Case("orders bad timestamp", "orders", first_rows("orders", 1, ordered_at="2025-13-01T00:00:00Z"), Quarantine(1)),
    Case("orders all in EUR", "orders", first_rows("orders", ROWS, currency="EUR"), Fail(r"orders\.csv: 400 of 400 rows \(100\.0%\)")),
    # web_events: file-level
    Case("events missing", "web_events", remove("web_events"), Fail(r"no web_events\.csv \(or \.parquet\) although the folder is marked complete")),
    Case("events column renamed", "web_events", rename_column("web_events", "anonymous_id", "user_pseudo_id"), Fail(r"web_events\.csv: missing required column\(s\) anonymous_id")),
    Case("events truncated", "web_events", truncate("web_events", 100), Fail(r"web_events\.csv: 100 rows, fewer than the 400")),
    Case("events latin-1", "web_events", latin1("web_events"), Fail(r"web_events\.csv: cannot be read as CSV \(UTF-8")),
    # web_events: rows
    Case("events bad value", "web_events", first_rows("web_events", 1, value="ten"), Quarantine(0, 1)),
    Case("events no anonymous id", "web_events", first_rows("web_events", 1, anonymous_id=""), Quarantine(1)),
    Case("events bad timestamp", "web_events", first_rows("web_events", 1, event_timestamp="now"), Quarantine(1)),
    Case("events half broken", "web_events", first_rows("web_events", 200, event_timestamp="now"), Fail(r"web_events\.csv: 200 of 400 rows \(50\.0%\)")),
    # order_lines (optional): file-level
    Case("lines absent", "order_lines", lambda folder: None, Quarantine(0)),
    Case("lines duplicate line", "order_lines", with_lines(duplicate_row("order_lines")), Fail(r"order_lines: 1 order_id, line_id\(s\) appear more than once in one file.*order_id, line_id 'o0007', '1' on rows 8, 401")),
    Case("lines truncated", "order_lines", with_lines(truncate("order_lines", 300)), Fail(r"order_lines\.csv: 300 rows, fewer than the 400 the exporter recorded")),
    Case("lines column missing", "order_lines", with_lines(drop_column("order_lines", "quantity")), Fail(r"order_lines\.csv: missing required column\(s\) quantity")),
    Case("lines unit price spelt with a space", "order_lines", with_lines(header("order_lines", renamed("unit_price", "Unit Price"))), Fail(r"order_lines\.csv: header 'Unit Price' \(column 7\) looks like the contract's column unit_price")),
    # order_lines: rows
    Case("lines zero quantity", "order_lines", with_lines(first_rows("order_lines", 1, quantity="0")), Quarantine(1)),
    Case("lines price five decimals", "order_lines", with_lines(first_rows("order_lines", 1, unit_price="4.99999")), Quarantine(1)),
    Case("lines no sku", "order_lines", with_lines(first_rows("order_lines", 1, sku="")), Quarantine(1)),
    Case("lines 1,000-character product name", "order_lines", with_lines(first_rows("order_lines", 1, product_name=big(1_000))), Quarantine(0, 1)),
    Case("lines half without quantity", "order_lines", with_lines(first_rows("order_lines", 200, quantity="")), Fail(r"order_lines\.csv: 200 of 400 rows \(50\.0%\)")),
    # line endings: each convention read as the exporter meant it, or refused
    Case("crm old Mac line endings (CR)", "crm_contacts", line_endings("crm_contacts", b"\r"), Quarantine(0)),
    Case("crm LF line endings", "crm_contacts", line_endings("crm_contacts", b"\n"), Quarantine(0)),
    Case("crm header alone ends in CR", "crm_contacts", line_endings("crm_contacts", b"\r", header_only=True), Fail(r"crm_contacts\.csv: mixed line endings: 1 line break\(s\) are a lone CR \(old Mac style\), the first on line 1")),
    Case("orders one row ends in a lone CR", "orders", lone_cr_after_row("orders", 57), Fail(r"orders\.csv: mixed line endings: .* the first on line 58")),
    Case("events quote swallowing rows", "web_events", quote_spanning_rows("web_events", 10, 14), Fail(r"web_events\.csv: 396 row\(s\) read from 400 line\(s\) after the header; row 10 \(line 11\) holds a line break")),
    # header spellings: trimmed and any case, or refused by name
    Case("crm header in capitals", "crm_contacts", header("crm_contacts", lambda names: [n.upper() for n in names]), Quarantine(0)),
    Case("crm header padded", "crm_contacts", header("crm_contacts", lambda names: [f"  {n} " for n in names]), Quarantine(0)),
    Case("crm is_deleted as isDeleted", "crm_contacts", header("crm_contacts", renamed("is_deleted", "isDeleted")), Fail(r"crm_contacts\.csv: header 'isDeleted' \(column 11\) looks like the contract's column is_deleted but is spelled differently")),
    Case("crm is_deleted as is-deleted", "crm_contacts", header("crm_contacts", renamed("is_deleted", "is-deleted")), Fail(r"header 'is-deleted' \(column 11\) looks like the contract's column is_deleted")),
    Case("crm is_deleted as deleted", "crm_contacts", header("crm_contacts", renamed("is_deleted", "deleted")), Fail(r"header 'deleted' \(column 11\) looks like the contract's column is_deleted")),
    Case("crm is_deleted as deleted_at", "crm_contacts", header("crm_contacts", renamed("is_deleted", "deleted_at")), Fail(r"header 'deleted_at' \(column 11\) looks like the contract's column is_deleted")),
    Case("crm is_deleted as gdpr_erasure", "crm_contacts", header("crm_contacts", renamed("is_deleted", "GDPR erasure")), Fail(r"header 'GDPR erasure' \(column 11\) looks like the contract's column is_deleted")),
    Case("crm is_deleted misspelt", "crm_contacts", header("crm_contacts", renamed("is_deleted", "is_delted")), Fail(r"header 'is_delted' \(column 11\) looks like the contract's column is_deleted")),
    Case("crm email twice", "crm_contacts", header("crm_contacts", lambda names: [*names[:-1], "EMAIL "]), Fail(r"crm_contacts\.csv: the header names 'email' twice \(columns 2 and 11; names are compared trimmed and case-insensitively\)")),
    Case("orders total amount spelt with a space", "orders", header("orders", renamed("total_amount", "Total Amount")), Fail(r"orders\.csv: header 'Total Amount' \(column 8\) looks like the contract's column total_amount")),
    Case("events sku twice after trimming", "web_events", header("web_events", renamed("value", " SKU ")), Fail(r"web_events\.csv: the header names 'sku' twice \(columns 7 and 8")),
    Case("events quoted comma in a value", "web_events", set_values("web_events", {5: {"anonymous_id": "a,b"}}), Quarantine(0)),
    Case("crm erasure row missing a field", "crm_contacts", field_dropped("crm_contacts", 6, "first_name", is_deleted="true"), Fail(r"crm_contacts\.csv: line 8 has 10 field\(s\), the header 11: a field missing would move the values after it into the wrong columns")),
    # oversized and hidden fields: bounded by the contract, one row never holds a file hostage
    Case("crm 10 KB contact id", "crm_contacts", first_rows("crm_contacts", 1, contact_id=big(10_000)), Quarantine(1)),
    Case("crm 10 MB first name", "crm_contacts", first_rows("crm_contacts", 1, first_name=big(10_000_000)), Quarantine(0, 1)),
    Case("crm 300-character address", "crm_contacts", first_rows("crm_contacts", 1, email=big(290) + "@example.com"), Quarantine(0, 1)),
    Case("crm zero-width space in an erasure's id", "crm_contacts", first_rows("crm_contacts", 1, contact_id="c0000\u200b", is_deleted="true"), Fail(r"crm_contacts: 1 erasure request\(s\) \(is_deleted true\) break the extract contract.*column contact_id: must be free of control and invisible characters")),
    Case("crm NUL in a contact id", "crm_contacts", first_rows("crm_contacts", 1, contact_id="c\x00000"), Quarantine(1)),
    Case("orders 10 KB contact id", "orders", first_rows("orders", 1, contact_id=big(10_000)), Quarantine(1)),
    Case("events 5,000-character page url", "web_events", first_rows("web_events", 1, page_url="https://shop.example.com/?q=" + big(5_000)), Quarantine(0, 1)),
    Case("events escape sequence in a sku", "web_events", first_rows("web_events", 1, sku="\x1b[2Jsku"), Quarantine(0, 1)),
    # poison records: values that parse but would break a later stage
    Case("orders year past 9999", "orders", first_rows("orders", 1, ordered_at="9999-12-31T23:00:00-14:00"), Quarantine(1)),
    Case("orders signed five-digit year", "orders", first_rows("orders", 1, updated_at="+12025-01-01T00:00:00Z"), Quarantine(1)),
    Case("orders amount past decimal(18,4)", "orders", first_rows("orders", 1, total_amount="123456789012345678901.00"), Quarantine(1)),
    Case("events year 1066", "web_events", first_rows("web_events", 1, event_timestamp="1066-10-14T09:00:00Z"), Quarantine(1)),
]  # fmt: skip
