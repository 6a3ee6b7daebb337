"""Read the landed extract files of one extract, have them checked, and type them.

Nothing here touches the warehouse: it turns files into typed polars frames, or refuses a
file with a one-line reason (models/extract_reader.py reads a CSV, models/quarantine.py
checks the rows and reports each problem: file, row, column, rule), so a bad night is
refused before loading.
"""

from __future__ import annotations

from datetime import date
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl

from models.extract_reader import (
    SIGNS,
    checked_csv_bytes,
    contract_names,
    data_rows,
    parsed_csv,
)
from models.extracts import ExtractError, ExtractSpec
from models.landing import LandingFolder
from models.parsing import (
    clean_text,
    parse_bool,
    parse_date,
    parse_decimal,
    parse_instants,
    parse_integer,
    parsed_column,
)
from models.privacy import LOCAL_PART
from models.quarantine import DEFAULT_MAX_BAD_SHARE, QUARANTINE_SCHEMA, Checked, validate


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    # Parquet arrives typed; render it as the CSV text the contract describes, so one set
    # of rules checks both.
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype.is_nested():
            # lists or records have no text: the name stays, for the header's rules (a
            # contract column holding them is refused once names are matched)
            exprs.append(pl.lit(None, pl.String).alias(name))
        elif isinstance(dtype, pl.Datetime):
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
    _require_bytes(path)
    nested: dict[str, pl.DataType] = {}
    if path.suffix == ".parquet":
        try:
            typed = pl.read_parquet(path)
            frame = _as_text(typed)
        except Exception as exc:  # the kind of fault, never a message that may quote values
            raise ExtractError(
                f"{path}: cannot be read as Parquet ({type(exc).__name__}). Export it again."
            ) from None
        names = frame.columns
        nested = {name: dtype for name, dtype in typed.schema.items() if dtype.is_nested()}
    else:
        data, names = checked_csv_bytes(path)
        return _read_alone(path, data, names, spec)
    return _contract_frame(path, frame, names, spec, _origin(path, frame), nested)


def read_extract_chunk(paths: list[Path], spec: ExtractSpec) -> tuple[pl.DataFrame, list[int]]:
    """The rows of read_extract_file of each path, one file after the other, as one frame,
    and each file's number of rows. The CSV files that share a header line are read by one
    polars call and cleaned by one set of expressions (a history's thousands of small files
    one by one cost polars' overhead thousands of times); if that reading does not go
    exactly as the checks promised, each file is read alone, which names the fault."""
    groups = _read_groups(paths, spec)
    if len(groups) == 1:  # every file read together (or only one): its frame as it is
        # (the files' slices joined again were a copy of the chunk: 0.42 s of S's checks)
        _, frame, rows = groups[0]
        return frame, rows
    # The files' frames joined into one piece: the steps after would work through a piece
    # a file (2,948 of them in the XS history).
    frames = read_extract_files(paths, spec, groups)
    return pl.concat(frames, how="vertical").rechunk(), [frame.height for frame in frames]


def read_extract_files(
    paths: list[Path], spec: ExtractSpec, groups: list[_Group] | None = None
) -> list[pl.DataFrame]:
    """read_extract_file of each path, in order, read as read_extract_chunk reads them."""
    frames = {}
    for group, frame, rows in groups if groups is not None else _read_groups(paths, spec):
        start = 0
        for path, height in zip(group, rows, strict=True):
            frames[path] = frame.slice(start, height)  # a view of the group's rows, no copy
            start += height
    return [frames[path] for path in paths]


# Files read as one frame: their paths, in order, the frame and each file's rows in it.
_Group = tuple[list[Path], pl.DataFrame, list[int]]


def _read_groups(paths: list[Path], spec: ExtractSpec) -> list[_Group]:
    """The paths' files in groups, each read as one frame: those sharing a header line
    together where polars reads them as one, every other file alone; a group's files in
    the order of `paths`."""
    together: dict[bytes, list[tuple[Path, bytes, list[str]]]] = {}
    for path in paths:
        if path.suffix == ".csv":
            _require_bytes(path)
            data, names = checked_csv_bytes(path)
            together.setdefault(_header_line(data), []).append((path, data, names))
    groups = []
    for header, files in together.items():
        read = _read_together(header, files, spec) if len(files) > 1 else None
        if read is not None:
            groups.append(([path for path, _, _ in files], *read))
            continue
        for path, data, names in files:  # alone, or the group did not read as one
            frame = _read_alone(path, data, names, spec)
            groups.append(([path], frame, [frame.height]))
    for path in paths:
        if path.suffix != ".csv":
            frame = read_extract_file(path, spec)
            groups.append(([path], frame, [frame.height]))
    return groups


def _read_alone(path: Path, data: bytes, names: list[str], spec: ExtractSpec) -> pl.DataFrame:
    frame = parsed_csv(path, data, names)
    return _contract_frame(path, frame, names, spec, _origin(path, frame), {})


def _origin(path: Path, frame: pl.DataFrame) -> tuple[pl.Expr, pl.Expr]:
    """source_file and source_row of one file's rows."""
    return (
        pl.lit(str(path)).alias("source_file"),
        pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("source_row"),
    )


def _read_together(
    header: bytes, files: list[tuple[Path, bytes, list[str]]], spec: ExtractSpec
) -> tuple[pl.DataFrame, list[int]] | None:
    """Files with the same header line as one frame, and each file's rows in it (a file
    of blank lines alone has none left); None when polars does not read them as one row
    for each line after each header."""
    rows = [data_rows(data) for _, data, _ in files]
    # One copy of the chunk's bytes (as many as the ingest puts in a chunk): each file's rows
    # are a view of its bytes, a line feed added after a last line without one.
    parts = [header, b"\n"]
    for _, data, _ in files:
        parts.append(memoryview(data)[len(header) + 1 :])
        if len(data) > len(header) + 1 and not data.endswith(b"\n"):
            parts.append(b"\n")
    joined = b"".join(parts)
    first, _, names = files[0]
    try:
        frame = pl.read_csv(joined, infer_schema=False, raise_if_empty=False)
    except Exception:  # each file alone then says what is wrong, without quoting values
        return None
    if len(frame.columns) != len(names) or frame.height != sum(rows):
        return None
    # Each row's file and its row number in that file: rows are the files' lines, in order.
    which = np.repeat(np.arange(len(files)), rows)
    starts = np.repeat(np.cumsum([0, *rows[:-1]]), rows)
    origin = (
        pl.Series("source_file", [str(path) for path, _, _ in files]).gather(which),
        pl.Series("source_row", np.arange(1, len(which) + 1) - starts, pl.Int64),
    )
    cleaned = _contract_frame(first, frame, names, spec, origin, {})
    runs = cleaned.select(pl.col("source_file").rle()).unnest("source_file")
    left = dict(zip(runs["value"], runs["len"], strict=True))
    return cleaned, [left.get(str(path), 0) for path, _, _ in files]


def _header_line(data: bytes) -> bytes:
    # a slice, not split(): split copies the rest of the file, megabytes a chunk
    end = data.find(b"\n")
    return data if end < 0 else data[:end]


def _require_bytes(path: Path) -> None:
    if path.stat().st_size == 0:
        raise ExtractError(
            f"{path}: the file is empty (0 bytes, not even a header): the export did not "
            "finish. Export the folder again and run the date again."
        )


def _contract_frame(
    path: Path,
    frame: pl.DataFrame,
    names: list[str],
    spec: ExtractSpec,
    origin: tuple,
    nested: dict[str, pl.DataType],
) -> pl.DataFrame:
    """A file's text columns under the contract's names, cleaned, with its origin
    (`origin`: the source_file and source_row columns); ExtractError for a header that
    breaks the contract."""
    for sign, name in SIGNS.items():
        if len(names) == 1 and sign in names[0]:
            raise ExtractError(
                f"{path}: the header is separated by {name}, not commas; the contract wants "
                "comma-separated values (README, The extracts). Fix the export's delimiter."
            )
    resolved = contract_names(path, names, spec.columns)
    for name, column in zip(names, resolved, strict=True):
        if name in nested and column in spec.columns:
            kind = "records" if isinstance(nested[name], pl.Struct) else "lists"
            raise ExtractError(
                f"{path}: column {column} holds {kind}, where the contract wants one value "
                "per row (text, a number or a timestamp). Fix the export."
            )
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
    columns = tuple(spec.columns)
    return (
        frame.select(*origin, *_cleaned(columns))
        .filter(_a_record(columns))
        .with_columns(_defaults(tuple(spec.optional.items())))
    )


# The expressions every file of an extract goes through, built once: building them for
# each of a history's thousands of small files took as long as reading the files.
@cache
def _cleaned(columns: tuple[str, ...]) -> tuple[pl.Expr, ...]:
    return tuple(clean_text(c).cast(pl.String) for c in columns)


@cache
def _a_record(columns: tuple[str, ...]) -> pl.Expr:
    """A blank line (or one of empty fields) is no record: nothing to load or set aside."""
    return ~pl.all_horizontal(pl.col(columns).is_null())


@cache
def _defaults(optional: tuple[tuple[str, str], ...]) -> tuple[pl.Expr, ...]:
    """An optional column's empty value means its default, as its absence does."""
    return tuple(pl.col(column).fill_null(default) for column, default in optional)


def _with_instants_parsed(frame: pl.DataFrame, spec: ExtractSpec) -> pl.DataFrame:
    """`frame` with each timestamp column's instants beside it (parsed_column), parsed once
    for both its check and its load."""
    return frame.with_columns(
        parse_instants(frame[c]).alias(parsed_column(c)) for c in spec.timestamps
    )


def to_typed(frame: pl.DataFrame, spec: ExtractSpec) -> pl.DataFrame:
    """Parse the validated text columns into the warehouse's types (the instants beside
    them taken as they are, but where the check emptied the text)."""
    beside = [parsed_column(c) for c in spec.timestamps if parsed_column(c) in frame.columns]
    return frame.with_columns(
        *[_instants(frame, c) for c in spec.timestamps],
        *[parse_date(pl.col(c)).alias(c) for c in spec.dates],
        *[parse_bool(pl.col(c)).alias(c) for c in spec.booleans],
        *[parse_decimal(pl.col(c)).alias(c) for c in spec.decimals],
        *[parse_integer(pl.col(c)).alias(c) for c in spec.integers],
        *[_addresses_masked(frame[c]) for c in spec.free_text],
    ).drop(beside)


def _instants(frame: pl.DataFrame, column: str) -> pl.Expr | pl.Series:
    if parsed_column(column) not in frame.columns:
        return parse_instants(frame[column])
    return pl.when(pl.col(column).is_not_null()).then(pl.col(parsed_column(column))).alias(column)


def _addresses_masked(text: pl.Series) -> pl.Series:
    """`?email=jane%40example.com` -> `?email=j***%40example.com`, as mask_emails_in does.
    Only a value holding "@" or "%40" can hold an address: the pattern runs on those alone
    (over every URL of a history's 5 M events, it took a third of a second)."""
    at = text.str.contains("@|%40").arg_true()
    if not len(at):
        return text
    return text.clone().scatter(at, text.gather(at).str.replace_all(LOCAL_PART, "${1}***${2}"))


def load_extract(
    folders: list[LandingFolder],
    spec: ExtractSpec,
    base_currency: str,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    crm_snapshot: bool = False,
) -> Checked:
    """All folders' files of one extract, validated together and typed, with business_date;
    and the quarantine, each row with its business_date and extract."""
    landed = []
    for folder in folders:
        path = folder.extract_file(spec.name)
        if path is None and not spec.required:
            _require_no_rows_promised(folder, spec)
            continue  # an optional extract that did not land: that night has none of it
        if path is None:
            raise ExtractError(
                f"{folder.path}: no {spec.name}.csv (or .parquet) although the folder is "
                "marked complete; the exporter must write all three files before _SUCCESS."
            )
        landed.append((folder, path))
    if not landed:  # no folder, or none holding an optional extract
        return Checked(
            pl.DataFrame(),
            pl.DataFrame(
                schema={"business_date": pl.Date, "extract": pl.String, **QUARANTINE_SCHEMA}
            ),
        )
    frame, rows = read_extract_chunk([path for _, path in landed], spec)
    for (folder, path), file_rows in zip(landed, rows, strict=True):
        _check_file_level(folder, path, file_rows, spec, crm_snapshot)
    dated = _with_business_dates(frame, rows, [folder.business_date for folder, _ in landed])
    checked = validate(_with_instants_parsed(dated, spec), spec, base_currency, max_bad_share)
    dates = {str(path): folder.business_date for folder, path in landed}
    quarantine = checked.quarantine.select(
        pl.col("source_file").replace_strict(dates, return_dtype=pl.Date).alias("business_date"),
        pl.lit(spec.name).alias("extract"),
        pl.all(),
    )
    return Checked(to_typed(checked.frame, spec), quarantine)


def _with_business_dates(frame: pl.DataFrame, rows: list[int], dates: list[date]) -> pl.DataFrame:
    """The files' rows (`rows` of each, one file after the other), each with its folder's
    business_date: one column for them all, where a column added to each file's frame took
    a fifth of the checks of a small retailer's history (730 folders, 2,920 files)."""
    which = np.repeat(np.arange(len(rows)), rows)
    return frame.with_columns(pl.Series("business_date", dates, pl.Date).gather(which))


def _require_no_rows_promised(folder: LandingFolder, spec: ExtractSpec) -> None:
    """An optional file the exporter counted rows of in _SUCCESS but did not write is lost,
    not absent."""
    promised = {
        name: rows
        for name, rows in folder.expected_rows().items()
        if name in (f"{spec.name}.csv", f"{spec.name}.parquet") and rows > 0
    }
    for name, rows in promised.items():
        raise ExtractError(
            f"{folder.path / name}: missing, though the exporter recorded {rows:,} rows of it "
            f"in {folder.path / '_SUCCESS'}. Export the folder again and run the date again."
        )


def _check_file_level(
    folder: LandingFolder, path: Path, rows: int, spec, crm_snapshot: bool
) -> None:
    """Faults of a whole file: nothing in it can be trusted, so the night stops here."""
    expected = folder.expected_rows().get(path.name)
    if expected is not None and rows != expected:
        fewer = "fewer" if rows < expected else "more"
        raise ExtractError(
            f"{path}: {rows:,} rows, {fewer} than the {expected:,} the exporter "
            f"recorded in {folder.path / '_SUCCESS'}: the file is "
            f"{'truncated' if fewer == 'fewer' else 'not the one exported'}. Export the folder "
            "again and run the date again."
        )
    if spec.name == "crm_contacts" and rows == 0 and crm_snapshot:
        raise ExtractError(
            f"{path}: a header and no rows, but the CRM exports full snapshots "
            "(NIGHTJAR_CRM_EXPORT=snapshot): an empty snapshot is a failed export. Export it "
            "again and run the date again."
        )
