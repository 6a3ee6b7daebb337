"""Read the landed extract files, check them against their pandera contract, and type them.

Nothing here touches the warehouse: it turns files into typed polars frames or a report
naming every problem (file, row, column, rule), so a bad night is refused before loading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandera.polars as pa
import polars as pl

from models.extracts import CrmContacts, Orders, WebEvents, currency_check
from models.parsing import clean_text, parse_bool, parse_date, parse_decimal, parse_timestamp
from pipelines.landing import LandingFolder
from senders.base import mask_emails_in

MAX_REPORTED_PROBLEMS = 50


@dataclass(frozen=True)
class ExtractSpec:
    """One extract: its file name, pandera model, optional columns and typed columns."""

    name: str
    model: type[pa.DataFrameModel]
    optional: dict[str, str]  # column -> default text when the column is absent
    timestamps: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    booleans: tuple[str, ...] = ()
    decimals: tuple[str, ...] = ()

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
    ),
    "orders": ExtractSpec(
        "orders",
        Orders,
        optional={},
        timestamps=("ordered_at", "updated_at"),
        decimals=("total_amount",),
    ),
    "web_events": ExtractSpec(
        "web_events",
        WebEvents,
        optional={},
        timestamps=("event_timestamp",),
        decimals=("value",),
    ),
}


class ExtractError(Exception):
    """An extract broke its contract; the message names the file, row, column and rule."""


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    # Parquet arrives typed; render it as the CSV text the contract describes, so one set
    # of rules checks both.
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            utc = col.dt.replace_time_zone("UTC") if dtype.time_zone is None else col
            exprs.append(
                utc.dt.convert_time_zone("UTC")
                .dt.strftime("%Y-%m-%dT%H:%M:%S%.f+00:00")
                .alias(name)
            )
        elif dtype == pl.Boolean:
            # A null stays null, so a missing required flag is still reported as missing.
            exprs.append(
                pl.when(col.is_null())
                .then(pl.lit(None, pl.String))
                .when(col)
                .then(pl.lit("true"))
                .otherwise(pl.lit("false"))
                .alias(name)
            )
        else:
            exprs.append(col.cast(pl.String).alias(name))
    return frame.select(exprs)


def read_extract_file(path: Path, spec: ExtractSpec) -> pl.DataFrame:
    """One file as text columns with its origin; ExtractError if unreadable or short of columns."""
    try:
        if path.suffix == ".parquet":
            frame = _as_text(pl.read_parquet(path))
        else:
            frame = pl.read_csv(path, infer_schema=False, encoding="utf8", raise_if_empty=False)
    except Exception as exc:  # polars raises several types; the file is what matters here
        # The parser quotes raw rows: mask addresses before the text reaches logs or the UI.
        reason = mask_emails_in(str(exc))
        raise ExtractError(
            f"{path}: cannot be read as {path.suffix[1:].upper()} (UTF-8, comma-separated, "
            f"RFC 4180 quoting): {reason}"
        ) from None
    frame = frame.rename({c: c.strip() for c in frame.columns})
    missing = [c for c in spec.columns if c not in frame.columns and c not in spec.optional]
    if missing:
        raise ExtractError(
            f"{path}: missing required column(s) {', '.join(missing)}; the header has "
            f"{', '.join(frame.columns) or 'no columns'}. Fix the export (CONTRACT §1)."
        )
    for column, default in spec.optional.items():
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(default, pl.String).alias(column))
    return frame.select(
        pl.lit(str(path)).alias("source_file"),
        pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("source_row"),
        *[clean_text(c).cast(pl.String) for c in spec.columns],
    ).with_columns(
        # An optional column's empty value means its default, as its absence does.
        pl.col(column).fill_null(default)
        for column, default in spec.optional.items()
    )


def _problem_lines(errors: pa.errors.SchemaErrors, frame: pl.DataFrame) -> list[str]:
    cases = errors.failure_cases
    origin = frame.select("source_file", "source_row").with_row_index("index")
    cases = cases.with_columns(pl.col("index").cast(pl.UInt32)).join(origin, on="index", how="left")
    lines = []
    for case in cases.sort("source_file", "source_row", nulls_last=False).iter_rows(named=True):
        where = f"{case['source_file']} row {case['source_row']}" if case["source_row"] else "file"
        column = case["column"] if case["schema_context"] == "Column" else "(row)"
        value = case["failure_case"] if case["schema_context"] == "Column" else None
        # Errors end up in logs and the Dagster UI: never a full email address there.
        shown = "" if value is None else f" (value {mask_emails_in(value)!r})"
        lines.append(f"{where}, column {column}: must be {_rule(case['check'])}{shown}")
    return lines


def _rule(check: str) -> str:
    """pandera's name of a check, in words a data engineer reads at 7 a.m."""
    allowed = re.fullmatch(r"isin\(\[(.*)\]\)", check)
    if allowed:
        return "one of " + allowed.group(1).replace("'", "")
    return {
        "not_nullable": "present (it is required)",
        "str_matches('^[A-Za-z]{2}$')": "an ISO 3166-1 alpha-2 country code",
    }.get(check, check)


def validate(frame: pl.DataFrame, spec: ExtractSpec, base_currency: str) -> None:
    """Check every row against the extract's contract; raise one report of every problem."""
    schema = spec.model.to_schema()
    if spec.name == "orders":
        schema = schema.update_column("currency", checks=[currency_check(base_currency)])
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        lines = _problem_lines(errors, frame)
        shown = "\n  ".join(lines[:MAX_REPORTED_PROBLEMS])
        more = len(lines) - MAX_REPORTED_PROBLEMS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise ExtractError(
            f"{spec.name}: {len(lines)} problem(s) break the extract contract; nothing was "
            f"loaded. Fix the export and run the date again.\n  {shown}{tail}"
        ) from None


def to_typed(frame: pl.DataFrame, spec: ExtractSpec) -> pl.DataFrame:
    """Parse the validated text columns into the warehouse's types."""
    return frame.with_columns(
        *[parse_timestamp(pl.col(c)).alias(c) for c in spec.timestamps],
        *[parse_date(pl.col(c)).alias(c) for c in spec.dates],
        *[parse_bool(pl.col(c)).alias(c) for c in spec.booleans],
        *[parse_decimal(pl.col(c)).alias(c) for c in spec.decimals],
    )


def load_extract(
    folders: list[LandingFolder], spec: ExtractSpec, base_currency: str
) -> pl.DataFrame:
    """All folders' files of one extract, validated together and typed, with business_date."""
    frames = []
    for folder in folders:
        path = folder.extract_file(spec.name)
        if path is None:
            raise ExtractError(
                f"{folder.path}: no {spec.name}.csv (or .parquet) although the folder is "
                "marked complete; the exporter must write all three files before _SUCCESS."
            )
        frames.append(
            read_extract_file(path, spec).with_columns(
                pl.lit(folder.business_date).alias("business_date")
            )
        )
    if not frames:
        return pl.DataFrame()
    frame = pl.concat(frames, how="vertical")
    validate(frame, spec, base_currency)
    return to_typed(frame, spec)
