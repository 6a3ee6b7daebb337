"""Check an extract's rows against their contract: what may load, what is set aside in the
quarantine, and the report that refuses a file.

A bad value in an optional column is emptied, a row with a bad required value is left out,
both recorded for `raw.quarantine`; a fault of the whole file (a key twice, an erasure flag
that cannot be read, too many bad rows) refuses it with every problem on a line (file, row,
column, rule). Values are shown as `shown` masks them, here and for SendGrid's events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData
from pandera.backends.polars.checks import PolarsCheckBackend
from pandera.constants import CHECK_OUTPUT_KEY

from models.extracts import (
    NO_CONTROL_CHARACTERS,
    NO_INVISIBLE_CHARACTERS,
    ExtractError,
    ExtractSpec,
    currency_check,
)
from models.parsing import instants_parsed, parse_bool, parsed_column
from models.privacy import mask_emails_in

MAX_REPORTED_PROBLEMS = 50
DEFAULT_MAX_BAD_SHARE = 0.005  # of a file's rows, quarantined before the night fails

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
SHOWN_CHARACTERS = 80  # of a value in errors and the quarantine: a 10 MB field is not shown


@dataclass(frozen=True)
class Checked:
    """An extract's rows that may be loaded, and what was set aside on the way."""

    frame: pl.DataFrame
    quarantine: pl.DataFrame


def shown(column: str, value: str | None) -> str | None:
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


def contract_schema(spec: ExtractSpec, base_currency: str) -> pa.DataFrameSchema:
    """The pandera schema an extract's rows are checked against."""
    schema = spec.model.to_schema()
    if spec.name == "orders":
        schema = schema.update_column("currency", checks=[currency_check(base_currency)])
    return schema


def validate(
    frame: pl.DataFrame, spec: ExtractSpec, base_currency: str, max_bad_share: float
) -> Checked:
    """Check every row against the extract's contract. A bad value in an optional column is
    emptied, a row with a bad required value is set aside, both recorded for the quarantine
    table; a file with more than `max_bad_share` of its rows in trouble fails the night."""
    _duplicate_keys(frame, spec)
    schema = contract_schema(spec, base_currency)
    beside = [c for c in spec.timestamps if parsed_column(c) in frame.columns]
    known = {c: frame[parsed_column(c)] for c in beside}
    try:
        with instants_parsed(known):
            if not _every_check_passes(frame, schema):
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
    return Checked(_kept(frame, cases), _quarantine_rows(cases))


def _every_check_passes(frame: pl.DataFrame, schema: pa.DataFrameSchema) -> bool:
    """Whether every row passes the schema, asked of polars at once: each column's checks as
    pandera builds them, collected together on every core. pandera's own validation runs
    them one at a time and collects each twice (its output, then whether it passed): 3.7 s
    against 2.4 s over the M landing's 73 days. It is what names the failures, so False
    (or a schema or check this does not read) leaves the frame to it."""
    if schema.checks or schema.unique or any(c.regex or c.unique for c in schema.columns.values()):
        return False
    lazy, verdicts = frame.lazy(), []
    for name, column in schema.columns.items():
        typed = column.dtype is None or frame.schema.get(name) == column.dtype.type
        if name not in frame.columns or not typed:
            return False  # missing, or of another type: pandera says which
        if not column.nullable:
            verdicts.append(lazy.select(pl.col(name).is_not_null().all()))
        for check in column.checks:
            output = _check_output(check, lazy, name)
            if output is None or output is False:
                return False
            if output is not True:
                # as pandera's postprocessing reads a check's output: a null passes when
                # the check ignores them, fails otherwise
                passed = pl.col(CHECK_OUTPUT_KEY).fill_null(check.ignore_na)
                verdicts.append(output.select(passed.all()))
    try:
        return all(verdict.item() for verdict in pl.collect_all(verdicts))
    except pl.exceptions.PolarsError:
        return False  # a check that fails to run is a failure pandera reports


def _check_output(check: pa.Check, lazy: pl.LazyFrame, column: str) -> pl.LazyFrame | bool | None:
    """A column check's output (a column of booleans, or one), not collected, as pandera's
    polars backend makes it; None when this cannot tell (another backend, a check that
    warns, one that raises). Like pandera's Check.__call__, a built-in check's function is
    looked up again first: the one the schema was built with may predate the registration
    of its polars version."""
    builtin = getattr(check._check_fn, "__name__", None)
    if builtin is not None and check.is_builtin_check(builtin):
        check._check_fn = check.get_builtin_check_fn(builtin)
    backend = check.get_backend(lazy)
    if not issubclass(backend, PolarsCheckBackend) or check.element_wise or check.raise_warning:
        return None
    try:
        return backend(check).apply(PolarsData(lazy, column))
    except Exception:  # pandera reports a check that raises as its failure
        return None


def _kept(frame: pl.DataFrame, cases: pl.DataFrame) -> pl.DataFrame:
    """The rows that load: those quarantined left out, the values removed emptied."""
    dropped = cases.filter(pl.col("action") == "row_quarantined")["index"].unique()
    emptied = cases.filter(pl.col("action") == "value_removed")
    repaired = frame.with_row_index("index").with_columns(
        pl.when(pl.col("index").is_in(emptied.filter(pl.col("column") == c)["index"].implode()))
        .then(pl.lit(None, pl.String))
        .otherwise(pl.col(c))
        .alias(c)
        for c in emptied["column"].unique().to_list()
    )
    return repaired.filter(~pl.col("index").is_in(dropped.implode())).drop("index")


def _quarantine_rows(cases: pl.DataFrame) -> pl.DataFrame:
    """Each problem as a row of the quarantine table, its rule in words, its value masked."""
    return pl.DataFrame(
        [
            (
                case["source_file"],
                case["source_row"],
                case["column"],
                _rule(case["check"]),
                shown(case["column"], case["failure_case"]),
                case["action"],
            )
            for case in cases.iter_rows(named=True)
        ],
        schema=QUARANTINE_SCHEMA,
        orient="row",
    )


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
    value = shown(case["column"], case["failure_case"])
    told = "" if value is None else f" (value {value!r})"
    return f"{where}, column {case['column']}: must be {_rule(case['check'])}{told}"


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
    listed = "\n  ".join(lines[:MAX_REPORTED_PROBLEMS])
    more = len(lines) - MAX_REPORTED_PROBLEMS
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return f"{title}\n  {listed}{tail}"


def _duplicate_keys(frame: pl.DataFrame, spec: ExtractSpec) -> None:
    """A key twice in one file is an export fault, not a bad row: which version is right?
    A key of several columns (an order's line) repeats when all of them do."""
    key = list(spec.key)
    if not key:
        return
    named = ", ".join(key)
    present = pl.all_horizontal(pl.col(key).is_not_null())
    repeated = (
        frame.filter(present & pl.struct(key).is_duplicated().over("source_file"))
        .group_by("source_file", *key, maintain_order=True)
        .agg(pl.col("source_row"))
    )
    if repeated.height:
        lines = [
            f"{row['source_file']}: {named} "
            # shown as the quarantine shows values: a 10 MB id is not printed whole
            + ", ".join(repr(shown(column, row[column])) for column in key)
            + " on rows "
            + ", ".join(str(r) for r in row["source_row"])
            for row in repeated.iter_rows(named=True)
        ]
        raise ExtractError(
            _report(
                f"{spec.name}: {repeated.height} {named}(s) appear more than once in one file; "
                "nothing was loaded. A file holds one version of each; fix the export and run "
                "the date again.",
                lines,
            )
        )


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
