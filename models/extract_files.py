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

from models.extract_reader import SIGNS, ExtractError, contract_names, read_csv_text
from models.extracts import (
    NO_CONTROL_CHARACTERS,
    NO_INVISIBLE_CHARACTERS,
    CrmContacts,
    Orders,
    WebEvents,
    currency_check,
)
from models.landing import LandingFolder
from models.parsing import clean_text, parse_bool, parse_date, parse_decimal, parse_timestamp
from models.privacy import LOCAL_PART, mask_emails_in

MAX_REPORTED_PROBLEMS = 50
DEFAULT_MAX_BAD_SHARE = 0.005  # of a file's rows, quarantined before the night fails


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
    key: str | None = None  # unique within one file
    free_text: tuple[str, ...] = ()  # may carry an address (a URL's ?email=): kept masked

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
        key="contact_id",
    ),
    "orders": ExtractSpec(
        "orders",
        Orders,
        optional={},
        timestamps=("ordered_at", "updated_at"),
        decimals=("total_amount",),
        key="order_id",
    ),
    "web_events": ExtractSpec(
        "web_events",
        WebEvents,
        optional={},
        timestamps=("event_timestamp",),
        decimals=("value",),
        free_text=("page_url",),
    ),
}


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
    if path.stat().st_size == 0:
        raise ExtractError(
            f"{path}: the file is empty (0 bytes, not even a header): the export did not "
            "finish. Export the folder again and run the date again."
        )
    if path.suffix == ".parquet":
        try:
            frame = _as_text(pl.read_parquet(path))
        except Exception as exc:  # the kind of fault, never a message that may quote values
            raise ExtractError(
                f"{path}: cannot be read as Parquet ({type(exc).__name__}). Export it again."
            ) from None
        names = frame.columns
    else:
        frame, names = read_csv_text(path)
    for sign, name in SIGNS.items():
        if len(names) == 1 and sign in names[0]:
            raise ExtractError(
                f"{path}: the header is separated by {name}, not commas; the contract wants "
                "comma-separated values (README, The extracts). Fix the export's delimiter."
            )
    resolved = contract_names(path, names, spec.columns)
    frame = frame.rename(
        {old: new for old, new in zip(frame.columns, resolved, strict=True) if new in spec.columns}
    )
    missing = [c for c in spec.columns if c not in frame.columns and c not in spec.optional]
    if missing:
        found = [c for c in spec.columns if c in frame.columns]
        # The header's other names are not shown: without a header line, they are a customer.
        raise ExtractError(
            f"{path}: missing required column(s) {', '.join(missing)}; the header has "
            f"{len(names)} name(s), of the contract's columns "
            f"{', '.join(found) if found else 'none (is the header line missing?)'}. Fix the "
            "export (README, The extracts)."
        )
    for column, default in spec.optional.items():
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(default, pl.String).alias(column))
    return (
        frame.select(
            pl.lit(str(path)).alias("source_file"),
            pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("source_row"),
            *[clean_text(c).cast(pl.String) for c in spec.columns],
        )
        # A blank line (or one of empty fields) is no record: nothing to load or set aside.
        .filter(~pl.all_horizontal(pl.col(spec.columns).is_null()))
        .with_columns(
            # An optional column's empty value means its default, as its absence does.
            pl.col(column).fill_null(default)
            for column, default in spec.optional.items()
        )
    )


# Columns whose values are personal: shown masked in errors and in the quarantine table.
PERSONAL_COLUMNS = {"email", "first_name", "last_name", "birth_date", "country", "timezone"}
QUARANTINE_SCHEMA = {
    "source_file": pl.String,
    "source_row": pl.Int64,
    "column_name": pl.String,
    "rule": pl.String,
    "value": pl.String,
    "action": pl.String,  # row_quarantined: the row is left out; value_removed: kept, emptied
}


@dataclass(frozen=True)
class Checked:
    """An extract's rows that may be loaded, and what was set aside on the way."""

    frame: pl.DataFrame
    quarantine: pl.DataFrame


SHOWN_CHARACTERS = 80  # of a value in errors and the quarantine: a 10 MB field is not shown


def _shown(column: str, value: str | None) -> str | None:
    """A value as errors and the quarantine show it: personal data masked, control
    characters replaced, and cut to SHOWN_CHARACTERS."""
    if value is None:
        return None
    if column == "email":
        value = mask_emails_in(value) if "@" in value else "***"
    elif column in PERSONAL_COLUMNS:
        value = value[:1] + "***"
    else:
        value = mask_emails_in(value)
    value = re.sub(r"[\x00-\x1f\x7f]", "\N{REPLACEMENT CHARACTER}", value)
    if len(value) > SHOWN_CHARACTERS:
        return f"{value[:SHOWN_CHARACTERS]}… ({len(value):,} characters)"
    return value


def _cases(errors: pa.errors.SchemaErrors, frame: pl.DataFrame) -> pl.DataFrame:
    """pandera's failure cases with the file and row each came from."""
    origin = frame.select("source_file", "source_row").with_row_index("index")
    return (
        errors.failure_cases.with_columns(pl.col("index").cast(pl.UInt32))
        .join(origin, on="index", how="left")
        .sort("source_file", "source_row", nulls_last=False)
    )


def _problem_line(case: dict) -> str:
    where = f"{case['source_file']} row {case['source_row']}" if case["source_row"] else "file"
    shown = _shown(case["column"], case["failure_case"])
    value = "" if shown is None else f" (value {shown!r})"
    return f"{where}, column {case['column']}: must be {_rule(case['check'])}{value}"


def _rule(check: str) -> str:
    """pandera's name of a check, in words a data engineer reads at 7 a.m."""
    allowed = re.fullmatch(r"isin\(\[(.*)\]\)", check)
    if allowed:
        return "one of " + allowed.group(1).replace("'", "")
    longest = re.fullmatch(r"str_length\(None, (\d+)\)", check)
    if longest:
        return f"at most {int(longest.group(1)):,} characters long"
    return {
        "not_nullable": "present (it is required)",
        "str_matches('^[A-Za-z]{2}$')": "an ISO 3166-1 alpha-2 country code",
        f"str_matches('{NO_CONTROL_CHARACTERS}')": "free of control characters (NUL, ESC, …)",
        f"str_matches('{NO_INVISIBLE_CHARACTERS}')": (
            "free of control and invisible characters (NUL, a zero-width space, …)"
        ),
    }.get(check, check)


def _report(title: str, lines: list[str]) -> str:
    shown = "\n  ".join(lines[:MAX_REPORTED_PROBLEMS])
    more = len(lines) - MAX_REPORTED_PROBLEMS
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return f"{title}\n  {shown}{tail}"


def _duplicate_keys(frame: pl.DataFrame, spec: ExtractSpec) -> None:
    """A key twice in one file is an export fault, not a bad row: which version is right?"""
    key = spec.key
    if key is None:
        return
    repeated = (
        frame.filter(pl.col(key).is_not_null() & pl.col(key).is_duplicated().over("source_file"))
        .group_by("source_file", key, maintain_order=True)
        .agg(pl.col("source_row"))
    )
    if repeated.height:
        lines = [
            f"{row['source_file']}: {key} {row[key]!r} on rows "
            + ", ".join(str(r) for r in row["source_row"])
            for row in repeated.iter_rows(named=True)
        ]
        raise ExtractError(
            _report(
                f"{spec.name}: {repeated.height} {key}(s) appear more than once in one file; "
                "nothing was loaded. A file holds one version of each; fix the export and run "
                "the date again.",
                lines,
            )
        )


def validate(
    frame: pl.DataFrame, spec: ExtractSpec, base_currency: str, max_bad_share: float
) -> Checked:
    """Check every row against the extract's contract. A bad value in an optional column is
    emptied, a row with a bad required value is set aside, both recorded for the quarantine
    table; a file with more than `max_bad_share` of its rows in trouble fails the night."""
    _duplicate_keys(frame, spec)
    schema = spec.model.to_schema()
    if spec.name == "orders":
        schema = schema.update_column("currency", checks=[currency_check(base_currency)])
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = _cases(errors, frame).filter(pl.col("schema_context") == "Column")
    else:
        return Checked(frame, pl.DataFrame(schema=QUARANTINE_SCHEMA))
    # A column with a default (is_deleted) cannot be guessed: an erasure request read as
    # "false" would be lost. Such a value fails the file.
    flags = cases.filter(pl.col("column").is_in(list(spec.optional)))
    if flags.height:
        _refuse(
            f"{spec.name}: {', '.join(sorted(set(flags['column'])))} cannot be read on "
            f"{flags.height} row(s); nothing was loaded. An erasure request must never be "
            "guessed: fix the export and run the date again.",
            flags,
        )
    # An optional value may be emptied, but not the contact an order or visit belongs to:
    # emptied, it would make the order a guest's, to be matched by address.
    optional = {n for n, c in schema.columns.items() if c.nullable} - {"contact_id"}
    cases = cases.with_columns(
        action=pl.when(pl.col("column").is_in(list(optional)))
        .then(pl.lit("value_removed"))
        .otherwise(pl.lit("row_quarantined"))
    )
    _refuse_files_over_threshold(frame, cases, spec, max_bad_share)
    _refuse_erasures_set_aside(frame, cases, spec)
    dropped = cases.filter(pl.col("action") == "row_quarantined")["index"].unique()
    emptied = cases.filter(pl.col("action") == "value_removed")
    repaired = frame.with_row_index("index").with_columns(
        pl.when(pl.col("index").is_in(emptied.filter(pl.col("column") == c)["index"].implode()))
        .then(pl.lit(None, pl.String))
        .otherwise(pl.col(c))
        .alias(c)
        for c in emptied["column"].unique().to_list()
    )
    kept = repaired.filter(~pl.col("index").is_in(dropped.implode())).drop("index")
    quarantine = pl.DataFrame(
        [
            (
                case["source_file"],
                case["source_row"],
                case["column"],
                _rule(case["check"]),
                _shown(case["column"], case["failure_case"]),
                case["action"],
            )
            for case in cases.iter_rows(named=True)
        ],
        schema=QUARANTINE_SCHEMA,
        orient="row",
    )
    return Checked(kept, quarantine)


def _refuse_erasures_set_aside(frame: pl.DataFrame, cases: pl.DataFrame, spec: ExtractSpec):
    """An erasure request is never set aside: a row asking for it with another bad value
    fails the file, as the contact would otherwise keep its data and its messages."""
    if "is_deleted" not in frame.columns:
        return
    erasures = frame.with_row_index("index").filter(parse_bool(pl.col("is_deleted")))
    lost = cases.filter(
        (pl.col("action") == "row_quarantined") & pl.col("index").is_in(erasures["index"].implode())
    )
    if lost.height:
        _refuse(
            f"{spec.name}: {lost['index'].n_unique()} erasure request(s) (is_deleted true) "
            "break the extract contract; nothing was loaded. An erasure is never set aside: "
            "fix the export and run the date again.",
            lost,
        )


def _refuse_files_over_threshold(frame, cases, spec: ExtractSpec, max_bad_share: float) -> None:
    rows = dict(frame.group_by("source_file").len().iter_rows())
    bad = dict(cases.group_by("source_file").agg(pl.col("index").n_unique()).iter_rows())
    # One bad row never fails a small file (a quiet day's changes): 0.5% of 150 rows is
    # less than a row. A share of 0 still means none.
    floor = 1 if max_bad_share > 0 else 0
    over = {f: n for f, n in bad.items() if n > max(max_bad_share * rows[f], floor)}
    if not over:
        return
    shares = "; ".join(
        f"{name}: {count:,} of {rows[name]:,} rows ({count / rows[name]:.1%})"
        for name, count in over.items()
    )
    _refuse(
        f"{spec.name}: too many rows break the extract contract ({shares}; at most "
        f"{max_bad_share:.1%} may be quarantined); nothing was loaded. Fix the export and "
        "run the date again.",
        cases.filter(pl.col("source_file").is_in(list(over))),
    )


def _refuse(title: str, cases: pl.DataFrame) -> None:
    """Fail the file: the title, then each problem on a line (file, row, column, rule)."""
    lines = [_problem_line(case) for case in cases.iter_rows(named=True)]
    raise ExtractError(_report(title, lines))


def to_typed(frame: pl.DataFrame, spec: ExtractSpec) -> pl.DataFrame:
    """Parse the validated text columns into the warehouse's types."""
    return frame.with_columns(
        *[parse_timestamp(pl.col(c)).alias(c) for c in spec.timestamps],
        *[parse_date(pl.col(c)).alias(c) for c in spec.dates],
        *[parse_bool(pl.col(c)).alias(c) for c in spec.booleans],
        *[parse_decimal(pl.col(c)).alias(c) for c in spec.decimals],
        *[_addresses_masked(pl.col(c)).alias(c) for c in spec.free_text],
    )


def _addresses_masked(text: pl.Expr) -> pl.Expr:
    """`?email=jane%40example.com` -> `?email=j***%40example.com`, as mask_emails_in does."""
    return text.str.replace_all(LOCAL_PART, "${1}***${2}")


def load_extract(
    folders: list[LandingFolder],
    spec: ExtractSpec,
    base_currency: str,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    crm_snapshot: bool = False,
) -> Checked:
    """All folders' files of one extract, validated together and typed, with business_date;
    and the quarantine, each row with its business_date and extract."""
    frames = []
    for folder in folders:
        path = folder.extract_file(spec.name)
        if path is None:
            raise ExtractError(
                f"{folder.path}: no {spec.name}.csv (or .parquet) although the folder is "
                "marked complete; the exporter must write all three files before _SUCCESS."
            )
        frame = read_extract_file(path, spec)
        _check_file_level(folder, path, frame, spec, crm_snapshot)
        frames.append(frame.with_columns(pl.lit(folder.business_date).alias("business_date")))
    if not frames:
        return Checked(pl.DataFrame(), pl.DataFrame(schema=QUARANTINE_SCHEMA))
    checked = validate(pl.concat(frames, how="vertical"), spec, base_currency, max_bad_share)
    dates = {str(f.extract_file(spec.name)): f.business_date for f in folders}
    quarantine = checked.quarantine.select(
        pl.col("source_file").replace_strict(dates, return_dtype=pl.Date).alias("business_date"),
        pl.lit(spec.name).alias("extract"),
        pl.all(),
    )
    return Checked(to_typed(checked.frame, spec), quarantine)


def _check_file_level(
    folder: LandingFolder, path: Path, frame: pl.DataFrame, spec, crm_snapshot: bool
) -> None:
    """Faults of a whole file: nothing in it can be trusted, so the night stops here."""
    expected = folder.expected_rows().get(path.name)
    if expected is not None and frame.height != expected:
        fewer = "fewer" if frame.height < expected else "more"
        raise ExtractError(
            f"{path}: {frame.height:,} rows, {fewer} than the {expected:,} the exporter "
            f"recorded in {folder.path / '_SUCCESS'}: the file is "
            f"{'truncated' if fewer == 'fewer' else 'not the one exported'}. Export the folder "
            "again and run the date again."
        )
    if spec.name == "crm_contacts" and frame.height == 0 and crm_snapshot:
        raise ExtractError(
            f"{path}: a header and no rows, but the CRM exports full snapshots "
            "(NIGHTJAR_CRM_EXPORT=snapshot): an empty snapshot is a failed export. Export it "
            "again and run the date again."
        )
