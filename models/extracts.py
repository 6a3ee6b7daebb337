"""pandera data contracts of the nightly extracts (docs/contract.md §1): the three every folder
holds and the optional order lines, checked on their text.

Every column arrives as text; each model states what that text must look like so that one
lazy validation reports every problem (file, row, column, rule) before anything is loaded.
A key twice in one file is a fault of the whole file, checked before these
(models/quarantine.py, `_duplicate_keys`). `EXTRACTS` names each extract's model and how its
text columns are typed once they passed.

Every text column is bounded: a value over its length (or holding a control character) is a
bad value like any other, so one row can never carry megabytes through the warehouse into a
SendGrid request and fail its whole batch there.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from functools import cache

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from models.parsing import (
    DECIMAL_PLACES,
    instants,
    instants_known,
    parse_bool,
    parse_date,
    parse_decimal,
    parse_integer,
)

ORDER_STATUSES = ("completed", "cancelled", "refunded")

# The longest value each kind of text may have, in characters.
MAX_ID = 255  # contact, order, event and visitor ids; SendGrid echoes the contact id
MAX_EMAIL = 254  # RFC 5321: the longest address a mail server must accept
MAX_NAME = 255
MAX_NAME_OF_EVENT = 64  # GA4 names are at most 40
MAX_SKU = 255
MAX_PRODUCT_TEXT = 255  # a product's name or category
MAX_URL = 2048
MAX_AMOUNT = 10**14  # every amount, and an order line's quantity * unit_price, is below it
# No control character (C0 but tab and line breaks, DEL, C1) nor line or paragraph separator
# in any text; in an id or an address no tab, line break or invisible format character either
# (a zero-width space, a soft hyphen, a byte-order mark): `erased\u200b` would be another
# contact than `erased`, unseen. Names keep format characters: Persian writes with the
# zero-width non-joiner.
# Spelled as ranges (Unicode's Cc, Zl, Zp and Cf) that Python's re, which pandera compiles
# them with, and polars' Rust regex both read. Text keeps tab and line breaks: a Parquet
# name may hold them (a CSV value may not span lines), and the display name drops them.
_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029"
_BREAKS = r"\t\n\r"
_FORMAT = (
    r"\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    r"\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    r"\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    r"\U000e0020-\U000e007f"
)
NO_CONTROL_CHARACTERS = rf"^[^{_CONTROL}]*$"
NO_INVISIBLE_CHARACTERS = rf"^[^{_CONTROL}{_BREAKS}{_FORMAT}]*$"


def text(max_chars: int, **kwargs):
    """A text column of at most `max_chars` characters and no control characters (a NUL or
    an escape sequence hides what the value really is)."""
    return pa.Field(
        str_length={"max_value": max_chars}, str_matches=NO_CONTROL_CHARACTERS, **kwargs
    )


def identifier(max_chars: int, **kwargs):
    """An id or an address: text without invisible characters either."""
    return pa.Field(
        str_length={"max_value": max_chars}, str_matches=NO_INVISIBLE_CHARACTERS, **kwargs
    )


@cache
def iana_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _parses(data: PolarsData, parser) -> pl.LazyFrame:
    column = pl.col(data.key)
    return data.lazyframe.select(column.is_null() | parser(column).is_not_null())


def _parses_as_instants(data: PolarsData) -> pl.LazyFrame:
    """_parses by parse_instants, or by the column's instants parsed before the checks
    (models/parsing.py, instants_parsed), which are this very frame's, row for row."""
    known = instants_known(data.key)
    if known is None:
        return _parses(data, instants)
    return data.lazyframe.select(pl.col(data.key).is_null() | pl.lit(known).is_not_null())


class _Extract(pa.DataFrameModel):
    """Columns every loaded frame carries: where each row came from."""

    source_file: str = pa.Field(description="Path of the extract file the row was read from.")
    source_row: int = pa.Field(
        description="1-based data row number in that file (header excluded)."
    )

    class Config:
        strict = "filter"  # columns outside the contract are ignored, as docs/contract.md §1 allows
        coerce = False


class CrmContacts(_Extract):
    """crm_contacts.csv: one version of a contact; upsert by contact_id, latest updated_at."""

    contact_id: str = identifier(MAX_ID, description="CRM identifier, compared exactly.")
    email: str = identifier(
        MAX_EMAIL, nullable=True, description="Email address as the CRM holds it."
    )
    first_name: str = text(MAX_NAME, nullable=True)
    last_name: str = text(MAX_NAME, nullable=True)
    birth_date: str = pa.Field(nullable=True, description="YYYY-MM-DD.")
    country: str = pa.Field(
        nullable=True, str_matches=r"^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2."
    )
    timezone: str = pa.Field(nullable=True, description="IANA time zone name.")
    email_opt_in: str = pa.Field(description="true/false (or 1/0): consent to marketing email.")
    created_at: str = pa.Field(description="ISO 8601 timestamp.")
    updated_at: str = pa.Field(description="ISO 8601 timestamp; the latest version wins.")
    is_deleted: str = pa.Field(nullable=True, description="true = erasure request (optional).")

    @pa.check("birth_date", name="a date YYYY-MM-DD")
    def _birth_date(cls, data: PolarsData) -> pl.LazyFrame:
        return _parses(data, parse_date)

    @pa.check("timezone", name="an IANA time zone name")
    def _timezone(cls, data: PolarsData) -> pl.LazyFrame:
        column = pl.col(data.key)
        return data.lazyframe.select(column.is_null() | column.is_in(list(iana_timezones())))

    @pa.check("email_opt_in", "is_deleted", name="a boolean true/false/1/0")
    def _booleans(cls, data: PolarsData) -> pl.LazyFrame:
        return _parses(data, parse_bool)

    @pa.check("created_at", "updated_at", name="an ISO 8601 timestamp of the years 1900 to 9999")
    def _timestamps(cls, data: PolarsData) -> pl.LazyFrame:
        return _parses_as_instants(data)


class Orders(_Extract):
    """orders.csv: one version of an order; a refund arrives later as a new status."""

    order_id: str = identifier(MAX_ID, description="Order identifier, compared exactly.")
    contact_id: str = identifier(MAX_ID, nullable=True, description="Empty for a guest checkout.")
    email: str = identifier(
        MAX_EMAIL, nullable=True, description="Attaches guest orders to a contact."
    )
    ordered_at: str = pa.Field(description="ISO 8601 timestamp of the purchase.")
    updated_at: str = pa.Field(description="ISO 8601 timestamp; the latest version wins.")
    status: str = pa.Field(isin=list(ORDER_STATUSES), description="Order status.")
    currency: str = pa.Field(description="ISO 4217; must be the configured base currency.")
    total_amount: str = pa.Field(description="Order total, a decimal ≥ 0.")

    @pa.check("ordered_at", "updated_at", name="an ISO 8601 timestamp of the years 1900 to 9999")
    def _timestamps(cls, data: PolarsData) -> pl.LazyFrame:
        return _parses_as_instants(data)

    @pa.check("total_amount", name="a decimal number ≥ 0 with at most 4 decimal places")
    def _amount(cls, data: PolarsData) -> pl.LazyFrame:
        amount = parse_decimal(pl.col(data.key))
        return data.lazyframe.select(amount.is_not_null() & (amount >= 0))


class WebEvents(_Extract):
    """web_events.csv: analytics events, appended and de-duplicated by event_id."""

    event_id: str = identifier(MAX_ID, description="Event identifier; a repeated id counts once.")
    event_timestamp: str = pa.Field(description="ISO 8601 timestamp.")
    event_name: str = text(
        MAX_NAME_OF_EVENT, description="GA4 event name (page_view, add_to_cart, ...)."
    )
    anonymous_id: str = identifier(MAX_ID, description="Cookie id (GA4 user_pseudo_id).")
    contact_id: str = identifier(
        MAX_ID, nullable=True, description="Set while the visitor is logged in."
    )
    page_url: str = text(MAX_URL, nullable=True)
    sku: str = text(MAX_SKU, nullable=True)
    value: str = pa.Field(nullable=True, description="A decimal, may be empty.")

    @pa.check("event_timestamp", name="an ISO 8601 timestamp of the years 1900 to 9999")
    def _timestamp(cls, data: PolarsData) -> pl.LazyFrame:
        return _parses_as_instants(data)

    @pa.check("value", name="a decimal number with at most 4 decimal places")
    def _value(cls, data: PolarsData) -> pl.LazyFrame:
        return _parses(data, parse_decimal)


class OrderLines(_Extract):
    """order_lines.csv (optional): one version of an order's line; upsert by (order_id,
    line_id), the version landed with its order's latest updated_at wins."""

    order_id: str = identifier(MAX_ID, description="The order the line belongs to.")
    line_id: str = identifier(MAX_ID, description="The line within its order, compared exactly.")
    # an id: "never recommend what the contact had" must not be beaten by an invisible character
    sku: str = identifier(MAX_SKU, description="The product's stock-keeping unit.")
    product_name: str = text(MAX_PRODUCT_TEXT, nullable=True)
    category: str = text(MAX_PRODUCT_TEXT, nullable=True)
    quantity: str = pa.Field(description="Units bought, a whole number ≥ 1.")
    unit_price: str = pa.Field(description="Price of one unit, a decimal ≥ 0.")

    @pa.check("quantity", name="a whole number ≥ 1")
    def _quantity(cls, data: PolarsData) -> pl.LazyFrame:
        # An empty value is reported once, as missing (not_nullable), not again here.
        column = pl.col(data.key)
        quantity = parse_integer(column)
        return data.lazyframe.select(column.is_null() | (quantity.is_not_null() & (quantity >= 1)))

    @pa.check("unit_price", name="a decimal number ≥ 0 with at most 4 decimal places")
    def _price(cls, data: PolarsData) -> pl.LazyFrame:
        column = pl.col(data.key)
        price = parse_decimal(column)
        return data.lazyframe.select(column.is_null() | (price.is_not_null() & (price >= 0)))

    @pa.check("unit_price", name="a price whose line amount (quantity * unit_price) is below 10^14")
    def _line_amount(cls, data: PolarsData) -> pl.LazyFrame:
        # The warehouse holds a line's amount as it holds every amount, a DECIMAL(18, 4):
        # past it, every model reading the lines fails, and the line stays in raw. Exact,
        # in decimals; a value that does not parse is reported by the checks above.
        quantity = parse_integer(pl.col("quantity")).cast(pl.Decimal(38, 0))
        amount = quantity * parse_decimal(pl.col(data.key)).cast(pl.Decimal(38, DECIMAL_PLACES))
        below = amount < pl.lit(MAX_AMOUNT).cast(pl.Decimal(38, DECIMAL_PLACES))
        return data.lazyframe.select(below.fill_null(True))


def currency_check(base_currency: str) -> pa.Check:
    """The base currency is a setting, so its check is built at run time."""
    return pa.Check.isin(
        [base_currency],
        name="base_currency",
        error=f"equal to the base currency {base_currency}",
    )


class ExtractError(Exception):
    """An extract broke its contract; the message names the file, row, column and rule."""


@dataclass(frozen=True)
class ExtractSpec:
    """One extract: its file name, pandera model, optional columns and typed columns, and
    whether every complete folder must hold it."""

    name: str
    model: type[pa.DataFrameModel]
    optional: dict[str, str]  # column -> default text when the column is absent
    timestamps: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    booleans: tuple[str, ...] = ()
    decimals: tuple[str, ...] = ()
    integers: tuple[str, ...] = ()
    key: tuple[str, ...] = ()  # unique within one file (together, when several columns)
    free_text: tuple[str, ...] = ()  # may carry an address (a URL's ?email=): kept masked
    # An optional extract may be missing from a complete folder: that night has none of it.
    required: bool = True

    @property
    def columns(self) -> list[str]:
        return [c for c in self.model.to_schema().columns if c not in ("source_file", "source_row")]


EXTRACTS = {
    "crm_contacts": ExtractSpec(
        "crm_contacts",
        CrmContacts,
        optional={"is_deleted": "false"},
        timestamps=("created_at", "updated_at"),
        dates=("birth_date",),
        booleans=("email_opt_in", "is_deleted"),
        key=("contact_id",),
    ),
    "orders": ExtractSpec(
        "orders",
        Orders,
        optional={},
        timestamps=("ordered_at", "updated_at"),
        decimals=("total_amount",),
        key=("order_id",),
    ),
    "web_events": ExtractSpec(
        "web_events",
        WebEvents,
        optional={},
        timestamps=("event_timestamp",),
        decimals=("value",),
        free_text=("page_url",),
    ),
    "order_lines": ExtractSpec(
        "order_lines",
        OrderLines,
        optional={},
        decimals=("unit_price",),
        integers=("quantity",),
        key=("order_id", "line_id"),
        required=False,
    ),
}
REQUIRED_EXTRACTS = tuple(name for name, spec in EXTRACTS.items() if spec.required)
