"""The extracts' checks asked of polars at once (models/quarantine.py, `_every_check_passes`)
agree with pandera's own validation on every column and every kind of bad value: a row
passes the quick way exactly when pandera passes it, so the quick way never loads a row
pandera would have set aside or refused."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
import pytest

from models.extracts import EXTRACTS
from models.quarantine import _every_check_passes, contract_schema
from tests.support.landing import contact, event, line, order

INSTANT = "2024-01-02T03:04:05Z"
# One good row of each extract, as cleaned text (no empty value: cleaning makes it null).
GOOD = {
    "crm_contacts": contact("c1", birth_date="1990-02-03"),
    "orders": order("o1", "c1", INSTANT, "12.50", email="ann@example.com"),
    "web_events": event("e1", "a1", INSTANT, contact_id="c1", sku="SKU-1", value="3.5"),
    "order_lines": line("o1", "1", "SKU-1", "2", "4.25"),
}
# Each kind of value some column refuses, and some that every column takes.
VALUES = [
    None, "", "x", "x\x00", "x\u200b", "x\u2028", "x\ty", "ne\u200cw", "x" * 255,
    "x" * 256, "x" * 2049, "1", "0", "-1", "+3", "2.5", "12.12345", "1e3", " 7", "99999999999999",
    "TRUE", "maybe", "gb", "G", "Mars/Olympus", "refunded", "EUR",
    "1990-02-30", "1990-02-03", "2024-01-02 03:04:05+0100", "2024-01-02T03:04Z",
    "1899-12-31T23:59:59Z", "10000-01-01T00:00:00Z", "yesterday",
]  # fmt: skip


def _frame(extract: str, rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"source_file": "f.csv", "source_row": i, **row} for i, row in enumerate(rows, 1)],
        schema={"source_file": pl.String, "source_row": pl.Int64}
        | dict.fromkeys(GOOD[extract], pl.String),
    )


@pytest.mark.parametrize("extract", list(EXTRACTS))
def test_rows_pass_the_quick_way_exactly_when_pandera_passes_them(extract):
    schema = contract_schema(EXTRACTS[extract], "USD")
    good = GOOD[extract]
    assert _every_check_passes(_frame(extract, [good]), schema)
    rows = [good | {column: value} for column in good for value in VALUES]
    # pandera once over them all: the rows it fails (by their index in the frame)
    try:
        schema.validate(_frame(extract, rows), lazy=True)
        failed = set()
    except pa.errors.SchemaErrors as errors:
        failed = set(errors.failure_cases["index"].drop_nulls().to_list())
    assert failed, "no value broke a rule: the comparison proves nothing"
    # the checks are row by row: the rows pandera passes pass together, and each it fails
    # fails alone
    passing = [row for i, row in enumerate(rows) if i not in failed]
    assert _every_check_passes(_frame(extract, passing), schema)
    for i in sorted(failed):
        assert not _every_check_passes(_frame(extract, [rows[i]]), schema), rows[i]


def test_a_missing_column_or_one_of_another_type_is_left_to_pandera():
    schema = contract_schema(EXTRACTS["orders"], "USD")
    frame = _frame("orders", [GOOD["orders"]])
    assert not _every_check_passes(frame.drop("status"), schema)
    assert not _every_check_passes(frame.with_columns(pl.col("source_row").cast(pl.String)), schema)
