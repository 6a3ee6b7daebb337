"""Polars expressions that turn the extracts' text into typed values, one rule per type.

The same expressions serve the pandera checks (is every value parseable?) and the load
(parse it), so what validation accepts is exactly what the warehouse stores.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

import polars as pl

from models.landing import EARLIEST_BUSINESS_DATE

# Missing values: empty, whitespace-only and a literal "" (some exporters quote nothing).
_MISSING = ["", '""']

TRUE_TOKENS = ("true", "1")
FALSE_TOKENS = ("false", "0")


def clean_text(column: str) -> pl.Expr:
    """Trimmed text, with empty, whitespace-only and `""` as null."""
    # replace, not when(is_in).then(None): the same values, in 0.15 s where the branch took
    # 0.26 s for a chunk of the S landing's web events (2.3 M rows of 8 columns)
    return pl.col(column).str.strip_chars().replace(_MISSING, None).alias(column)


EARLIEST = dt.datetime.combine(EARLIEST_BUSINESS_DATE, dt.time(), dt.UTC)
LATEST = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)


def parse_timestamp(expr: pl.Expr) -> pl.Expr:
    """ISO 8601 text to a UTC timestamp from 1900 to 9999; no offset means UTC; unparseable
    or out of range gives null."""
    text = (
        expr.str.replace(r"(?i)^(\d{4}-\d{2}-\d{2})[ t]", "${1}T")
        .str.replace(r"(?i)z$", "+00:00")
        .str.replace(r"([+-]\d{2})(\d{2})$", "${1}:${2}")
        .str.replace(r"(T[\d:.]+[+-]\d{2})$", "${1}:00")  # an hour-only offset, "+01"
    )
    with_offset = (
        pl.when(text.str.contains(r"[+-]\d{2}:\d{2}$"))
        .then(text)
        .otherwise(pl.concat_str([text, pl.lit("+00:00")]))
    )
    # Minutes-only times ("T18:03+01:00") are valid ISO 8601; give them seconds.
    with_seconds = with_offset.str.replace(r"T(\d{2}:\d{2})([+-])", "T${1}:00${2}")
    parsed = with_seconds.str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_zone="UTC", time_unit="us"
    )
    # Years past 9999 (`+12025-...`, or 9999-12-31 with a western offset) parse, then break
    # every reader that turns them into a Python datetime: out of range is unparseable.
    return pl.when(parsed.is_between(EARLIEST, LATEST)).then(parsed)


# The forms nearly every exporter writes an instant in (UTC with Z, with an offset, without
# one), each parsed by a plain strptime: they spare most rows parse_timestamp's five regular
# expressions, which took a quarter of a history load's ingest; the rows none of them reads
# go through parse_timestamp. Each reads a text as parse_timestamp does (a test tries every
# spelling one or two pieces off the common one), the offset once its text ends as
# parse_timestamp wants an offset to: strptime alone takes `+02: 00`, `+02::00` or a
# Unicode minus, which parse_timestamp refuses.
_DIRECT_FORMS = (
    ("%Y-%m-%dT%H:%M:%SZ", None),
    ("%Y-%m-%dT%H:%M:%S%:z", r"[+-]\d{2}:\d{2}$"),
    ("%Y-%m-%dT%H:%M:%S", None),
)
_INSTANT = pl.Datetime("us", "UTC")


def parse_instants(text: pl.Series) -> pl.Series:
    """parse_timestamp of a whole column, the rows in a common form parsed directly."""
    parsed = _read(text, *_DIRECT_FORMS[0])
    for form, ending in (*_DIRECT_FORMS[1:], (None, None)):
        rest = parsed.is_null() & text.is_not_null()
        if not rest.any():
            break
        at = rest.arg_true()
        parsed = parsed.scatter(at, _read(text.gather(at), form, ending))
    instants = pl.DataFrame({text.name: parsed})
    in_range = pl.col(text.name).is_between(EARLIEST, LATEST)
    return instants.select(pl.when(in_range).then(pl.col(text.name)))[text.name]


def _read(text: pl.Series, form: str | None, ending: str | None) -> pl.Series:
    """`text` read by one direct form (None: by parse_timestamp)."""
    if form is None:
        return pl.DataFrame({"t": text}).select(parse_timestamp(pl.col("t")))["t"]
    # cache=False: polars keeps each distinct text's instant to parse it once, but instants
    # are nearly all distinct (1.77 M of the S landing's web events: 0.39 s, 0.47 s cached)
    read = text.str.to_datetime(form, strict=False, time_zone="UTC", time_unit="us", cache=False)
    if ending:
        read = pl.DataFrame({"t": text, "read": read}).select(
            pl.when(pl.col("t").str.contains(ending)).then(pl.col("read"))
        )["read"]
    return read


def instants(expr: pl.Expr) -> pl.Expr:
    """parse_instants as an expression, for checks and selects."""
    return expr.map_batches(parse_instants, return_dtype=_INSTANT)


# A history load parsed every instant twice, once by its check and once by the load (about
# 4 s of the 30 s the ingest of the bench's S history took). load_extract parses each
# timestamp column once, before the checks, into a column of its own beside the text
# (`parsed_column`); the check reads it (`instants_parsed`) and the load takes it.
_PARSED: ContextVar[Mapping[str, pl.Series] | None] = ContextVar("parsed_instants", default=None)


def parsed_column(column: str) -> str:
    """The name of `column`'s parsed instants beside it (never a contract column's name)."""
    return f"{column}:parsed"


@contextmanager
def instants_parsed(parsed: Mapping[str, pl.Series]) -> Iterator[None]:
    """Within: the check of a column named in `parsed` reads its instants from there; each
    is the whole frame's being checked, row for row."""
    token = _PARSED.set(parsed)
    try:
        yield
    finally:
        _PARSED.reset(token)


def instants_known(column: str) -> pl.Series | None:
    """The parsed instants of `column` of the frame being checked, if its caller has them."""
    return (_PARSED.get() or {}).get(column)


def parse_date(expr: pl.Expr) -> pl.Expr:
    """`YYYY-MM-DD` text to a date; anything else (or 30 February) gives null."""
    return expr.str.to_date("%Y-%m-%d", strict=False)


def parse_bool(expr: pl.Expr) -> pl.Expr:
    """`true`/`false` in any case, or `1`/`0`; anything else gives null."""
    lowered = expr.str.to_lowercase()
    return (
        pl.when(lowered.is_in(TRUE_TOKENS))
        .then(True)
        .when(lowered.is_in(FALSE_TOKENS))
        .then(False)
        .otherwise(None)
    )


DECIMAL_PLACES = 4  # enough for every ISO 4217 currency (three places at most) and more


def parse_decimal(expr: pl.Expr) -> pl.Expr:
    """Plain decimal text (`12.50`, `-3`, `0.125`) to a decimal; more than four decimal places
    (which would be rounded) or anything else gives null."""
    valid = expr.str.contains(
        rf"^[+-]?(\d+(\.\d{{0,{DECIMAL_PLACES}}})?|\.\d{{1,{DECIMAL_PLACES}}})$"
    )
    return (
        pl.when(valid).then(expr).otherwise(None).cast(pl.Decimal(18, DECIMAL_PLACES), strict=False)
    )


MAX_INTEGER_DIGITS = 9  # a count of units, never near a 32-bit integer's limit


def parse_integer(expr: pl.Expr) -> pl.Expr:
    """Plain whole-number text (`3`, `+3`, `-1`) to an integer; a decimal point, an
    exponent or more than nine digits gives null."""
    valid = expr.str.contains(rf"^[+-]?\d{{1,{MAX_INTEGER_DIGITS}}}$")
    return pl.when(valid).then(expr).otherwise(None).cast(pl.Int64, strict=False)
