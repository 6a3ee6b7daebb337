"""Read one landed extract file as its exporter meant it, or refuse it with a one-line reason.

A file is never half understood: every line-ending convention is read or refused, header
names are matched to the contract by one rule, and a file that parses to fewer rows than it
has lines is refused. Reasons name the file, line or column and rule, never a value: a
broken row's name or birth date must not reach a terminal, a log or an alert.

The header rule (README, "The extracts"): names are trimmed and compared with the contract's
columns case-insensitively (` Email `, `EMAIL` are `email`). Refused: two names equal under
that rule; and a name that is not a contract column but looks like a missing one (another
style such as `isDeleted` or `is-deleted`, one letter off, one containing the other such as
`deleted`, or for `is_deleted` any name speaking of deletion or erasure, `deleted_at`,
`gdpr_erasure`), since its values would otherwise be ignored: an erasure read as "no".
A header's names are shown in errors only when they are contract columns or look like them:
a file without its header line would otherwise print its first customer.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

from models.extracts import ExtractError

SIGNS = {";": "semicolons", "\t": "tabs", "|": "pipes"}
_UTF8_BOM = b"\xef\xbb\xbf"
MAX_COLUMNS = 1000  # a header of a million names takes gigabytes to parse
# Words that make a name an erasure flag, whatever else it says: refused while `is_deleted`
# is missing, as its values (erasure requests) would be ignored.
_ERASURE_WORDS = {"is_deleted": ("delet", "eras", "gdpr", "forget")}


def checked_csv_bytes(path: Path) -> tuple[bytes, list[str]]:
    """A CSV extract's bytes (one line ending) and its header's names, once every check
    of the file as text passed; ExtractError otherwise."""
    data = path.read_bytes()
    _require_utf8(path, data)
    data = _one_line_ending(path, data)
    if _last_line_cut_short(data):
        raise ExtractError(
            f"{path}: the last line is cut short (fewer fields than the header, or a quoted "
            "value left open, and no line break after it): the file is truncated. Export the "
            "folder again and run the date again."
        )
    names = _header_names(data)
    if len(names) > MAX_COLUMNS:
        raise ExtractError(
            f"{path}: the header has {len(names):,} names, more than {MAX_COLUMNS:,}: not "
            "an extract of this contract. Fix the export."
        )
    _require_whole_rows(path, data, len(names))
    return data, names


def parsed_csv(path: Path, data: bytes, names: list[str]) -> pl.DataFrame:
    """checked_csv_bytes' result read by polars as text columns; ExtractError if it does
    not read as the checks promised."""
    try:
        frame = pl.read_csv(data, infer_schema=False, raise_if_empty=False)
    except Exception:  # polars quotes the raw rows in its messages: never pass them on
        raise ExtractError(
            f"{path}: cannot be read as CSV (UTF-8, comma-separated, RFC 4180 quoting): "
            f"{_quoting_problem(data)}. Fix the export and run the date again."
        ) from None
    if len(frame.columns) != len(names):
        raise ExtractError(
            f"{path}: the header line could not be read consistently ({len(names)} names, "
            f"{len(frame.columns)} columns): check its quoting. Fix the export."
        )
    _require_a_row_per_line(path, data, frame)
    return frame


def data_rows(data: bytes) -> int:
    """The rows a checked file holds: a row for every line but the header."""
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1) - 1


def contract_names(path: Path, names: list[str], columns: list[str]) -> list[str]:
    """The header's names with each contract column's spelling (trimmed, any case), or
    ExtractError for a name that is twice or near-misses a missing contract column."""
    by_folded = {column.lower(): column for column in columns}
    resolved = [by_folded.get(name.strip().lower(), name) for name in names]
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        folded = name.strip().lower()
        if folded in seen and folded:  # empty names are extra columns, ignored
            which = resolved[position - 1]
            named = f"names {which!r} twice" if which in columns else "repeats a name"
            raise ExtractError(
                f"{path}: the header {named} (columns {seen[folded]} and {position}; names "
                "are compared trimmed and case-insensitively): remove or rename one of them "
                "in the export."
            )
        seen[folded] = position
    present = set(resolved)
    for position, name in enumerate(names, start=1):
        if resolved[position - 1] in columns:
            continue
        for column in columns:
            if _looks_like(name, column, missing=column not in present):
                shown = name.strip() if "@" not in name and len(name) <= 64 else "(a name)"
                raise ExtractError(
                    f"{path}: header {shown!r} (column {position}) looks like the "
                    f"contract's column {column} but is spelled differently, so its values "
                    f"would be ignored. Rename it {column} (names are compared trimmed and "
                    "case-insensitively), or remove it."
                )
    return resolved


def _looks_like(name: str, column: str, missing: bool) -> bool:
    """A near miss: the same words in another style; when the column is missing, also one
    letter off or one name inside the other (`deleted` for `is_deleted`)."""
    a, b = _letters(name), _letters(column)
    if a == b:
        return True
    if not missing:
        return False
    if any(word in a for word in _ERASURE_WORDS.get(column, ())):
        return True
    if min(len(a), len(b)) < 5:
        return False
    return a in b or b in a or _one_edit_apart(a, b)


def _letters(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _one_edit_apart(a: str, b: str) -> bool:
    """One letter added, removed, changed, or two neighbours swapped."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    start = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))
    if len(a) < len(b):
        return a[start:] == b[start + 1 :]
    swapped = start + 1 < len(a) and a[start] == b[start + 1] and a[start + 1] == b[start]
    return a[start + 1 :] == b[start + 1 :] or (swapped and a[start + 2 :] == b[start + 2 :])


def _require_utf8(path: Path, data: bytes) -> None:
    if data.isascii():  # most extracts, and checked without decoding a copy of the file
        return
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ExtractError(
            f"{path}: cannot be read as CSV (UTF-8, comma-separated, RFC 4180 quoting): line "
            f"{line} is not UTF-8 (byte 0x{data[error.start]:02X}). Export the file as UTF-8."
        ) from None


def _one_line_ending(path: Path, data: bytes) -> bytes:
    """LF and CRLF are read as they are; a file whose lines all end in a lone CR (old Mac
    style) is read as such. A lone CR among LFs is refused: it is either a line end the
    parser would not see (a header merged with its first row) or a line break in a value."""
    if b"\r" not in data:  # LF alone: one scan for a byte, not two counts of the file
        return data
    crlf = data.count(b"\r\n")
    lone_cr = data.count(b"\r") - crlf
    if not lone_cr:
        return data
    if b"\n" not in data:
        return data.replace(b"\r", b"\n")
    first = re.search(rb"\r(?!\n)", data)
    line = data.count(b"\n", 0, first.start()) + 1 if first else 0
    raise ExtractError(
        f"{path}: mixed line endings: {lone_cr} line break(s) are a lone CR (old Mac style), "
        f"the first on line {line}, the others LF or CRLF. Export the file with one line "
        "ending (LF or CRLF) and run the date again."
    )


def _last_line_cut_short(data: bytes) -> bool:
    """A last line with fewer fields than the header, or inside a quoted value (an odd
    number of quotes: a closed quoted value has two, and a quote within it is doubled), and
    no line break after it: the file was cut while being written (a complete last record
    may lack the break, RFC 4180). Cut in its last value, `...,USD,"12` would load as 12."""
    if data.endswith(b"\n") or b"\n" not in data:
        return False
    last = data.rsplit(b"\n", 1)[-1]
    return last.count(b'"') % 2 == 1 or len(_fields(last)) < len(_header_names(data))


def _header_names(data: bytes) -> list[str]:
    end = data.find(b"\n")  # a slice: split() would copy the rest of the file
    return _fields(data[: None if end < 0 else end].removeprefix(_UTF8_BOM).rstrip(b"\r"))


def _fields(line: bytes) -> list[str]:
    # A field over the csv module's limit (128 KiB) is polars' to read; it counts as one.
    try:
        return next(csv.reader([line.decode("utf-8", "replace")]), [])
    except csv.Error:
        return [""] * (line.count(b",") + 1)


_QUOTED_FIELD = re.compile(r'(^|,)"(?:[^"]|"")*"')


def _require_whole_rows(path: Path, data: bytes, width: int) -> None:
    """Every line holds as many fields as the header: a field missing in the middle of a
    line would move the rest into the wrong columns, an erasure flag out of its own. (One
    line is one row here: values spanning lines are refused.) Quoted fields are counted
    whole, commas inside them not."""
    # Commas are counted per line over the bytes at once (UTF-8 never uses a byte below
    # 0x80 inside a character): over S's 2,924 files (911 MB) 1.6 s, where a Python loop
    # over every line took 2.9 s of a 41 s ingest. The commas inside quoted fields are
    # counted too, where the quotes are as an export writes them (_unsettled_quoted_lines).
    # Only the lines it cannot settle are read one by one: those with another number of
    # commas (a blank line is allowed; any other is refused), and those with quotes
    # written otherwise.
    for number, line in _lines_to_read(data, width):
        line = line.rstrip("\r")
        if not line.strip() and _blank(line):
            continue
        plain = _QUOTED_FIELD.sub(r"\1", line) if '"' in line else line
        fields = plain.count(",") + 1
        if fields != width:
            raise ExtractError(
                f"{path}: line {number} has {fields} field(s), the header {width}: a field "
                f"{'missing' if fields < width else 'too many'} would move the values after "
                "it into the wrong columns. Fix the export and run the date again."
            )


_BLOCK_BYTES = 1 << 20  # a file is counted a megabyte at a time: bounded memory, any lines
_FEW_LINES = 64  # lines of a block counted one by one (a 64 MB line: no offset per comma)


def _lines_to_read(data: bytes, width: int) -> Iterator[tuple[int, str]]:
    """(number from 1, text) of the lines after the header whose fields the counts do not
    settle, in order, without their line feed: other than `width - 1` commas, or quotes
    (but those _unsettled_quoted_lines settles); more of them when that is quicker (a
    block of lines most of which are unsettled is given whole)."""
    first_number, start = 1, 0
    while start < len(data):
        # a block ends after a line feed (or with the file): its lines are whole
        stop = data.find(b"\n", min(start + _BLOCK_BYTES, len(data)) - 1)
        stop = len(data) if stop < 0 else stop + 1
        text = np.frombuffer(data, dtype=np.uint8, count=stop - start, offset=start)
        feeds = np.flatnonzero(text == ord("\n"))
        # line i of the block lies between bounds i and i + 1 (a feed, or the file's end)
        last = [] if len(feeds) and feeds[-1] == len(text) - 1 else [len(text)]
        bounds = np.concatenate(([-1], feeds, last)).astype(np.int64)
        if len(bounds) <= _FEW_LINES:  # a few long lines: counted in place, no array
            ranges = list(zip(bounds[:-1] + start + 1, bounds[1:] + start, strict=True))
            odd = np.array([data.count(b",", a, b) for a, b in ranges]) != width - 1
            if data.find(b'"', start, stop) >= 0:
                odd |= np.array([data.count(b'"', a, b) for a, b in ranges]) > 0
        else:
            # each line's commas in one pass (a line's sum takes in its line feed, which is
            # no comma), as bytes summed into 32-bit counts where a line cannot overflow
            # them: 1.6 times quicker than finding each comma's offset
            hits = (text == ord(",")).view(np.uint8)
            sums = np.int32 if len(text) < 2**31 else np.int64
            commas = np.add.reduceat(hits, bounds[:-1] + 1, dtype=sums)
            odd = commas != width - 1
            if data.find(b'"', start, stop) >= 0:
                quoted, unsettled = _unsettled_quoted_lines(
                    text, feeds, bounds, hits, commas, width
                )
                odd = np.where(quoted, unsettled, odd)
        if first_number == 1:
            odd[0] = False  # the header
        odd_lines = np.flatnonzero(odd)
        if len(odd_lines) * 4 > len(odd):  # most of them: one split beats a slice each
            lines = data[start:stop].decode("utf-8").split("\n")[: len(odd)]
            skip = 1 if first_number == 1 else 0  # the header
            yield from enumerate(lines[skip:], first_number + skip)
        else:
            for i in odd_lines.tolist():
                line = data[start + int(bounds[i]) + 1 : start + int(bounds[i + 1])]
                yield first_number + i, line.decode("utf-8")
        first_number += len(odd)
        start = stop


def _unsettled_quoted_lines(
    text: np.ndarray,
    feeds: np.ndarray,
    bounds: np.ndarray,
    hits: np.ndarray,
    commas: np.ndarray,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Of a block's lines (`text` the block's bytes, `hits` 1 at each comma, `commas` each
    line's count of them), those holding a quote, and of these those not settled to hold
    `width` fields by their commas outside quotes. A line is settled where every quote
    that opens a quoted field (the first, the third... of its line) opens the line, or
    follows a comma or a quote (the second of a doubled quote), and its quotes are even
    in number: there, the commas between the first and second quote, the third and
    fourth... are those _QUOTED_FIELD takes away, and the lines otherwise (a quote in the
    middle of a value, one left open) are read one by one. One web event in fifty of the
    bench's holds a URL quoted for its comma: read one by one, they made the count of a
    year of the S landing's web events 0.51 s, where it takes 0.35 s so."""
    quotes = np.flatnonzero(text == ord('"'))
    line = np.searchsorted(feeds, quotes)  # each quote's line in the block
    first = np.searchsorted(line, line)  # the first quote of each one's line
    opens = (np.arange(len(quotes)) - first) % 2 == 0
    before = text[quotes - 1]  # a quote at the block's start is at its line's start
    fits = (quotes == bounds[line] + 1) | (before == ord(",")) | (before == ord('"'))
    lines = len(bounds) - 1
    held = np.bincount(line, minlength=lines)
    doubtful = (held % 2 == 1) | (np.bincount(line[opens & ~fits], minlength=lines) > 0)
    # Each opening quote with the next quote of its line: the commas between the two.
    paired = np.flatnonzero(opens[:-1] & (line[:-1] == line[1:]))
    inside = np.zeros(lines, np.int64)
    if len(paired):
        spans = np.empty(2 * len(paired), np.int64)
        spans[0::2], spans[1::2] = quotes[paired] + 1, quotes[paired + 1]
        # an empty span's sum is the closing quote's own byte: no comma either
        within = np.add.reduceat(hits, spans, dtype=np.int64)[0::2]
        np.add.at(inside, line[paired], within)
    quoted = held > 0
    return quoted, quoted & (doubtful | (commas - inside != width - 1))


def _blank(line: str) -> bool:
    """Whitespace alone, as polars' strip_chars sees it (Unicode's White_Space; Python's
    str.isspace also counts the separators U+001C to U+001F, which are values here)."""
    return not line.strip() and not any(c in line for c in "\x1c\x1d\x1e\x1f")


def _require_a_row_per_line(path: Path, data: bytes, frame: pl.DataFrame) -> None:
    """Values hold no line breaks, so a file has a row for every line but the header; fewer
    rows mean a quote that closes lines later (or a line end the parser did not see)."""
    rows = data_rows(data)
    if frame.height >= rows:
        return
    spanning = (
        frame.with_row_index("row", offset=1)
        .filter(pl.any_horizontal(pl.col(pl.String).exclude("row").str.contains("\n")))
        .head(1)["row"]
    )
    where = ""
    if len(spanning):
        where = f"; row {spanning[0]} (line {spanning[0] + 1}) holds a line break"
    raise ExtractError(
        f"{path}: {frame.height:,} row(s) read from {rows:,} line(s) after the header"
        f"{where}: a quote that does not close where it should, or a value spanning lines, "
        "which the contract does not allow. Fix the export and run the date again."
    )


def _quoting_problem(data: bytes) -> str:
    """Where the CSV breaks, in words that quote no value."""
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), strict=True)
    try:
        width = len(next(reader, []))
        for row in reader:
            if len(row) > width:
                return f"line {reader.line_num} has more fields than the header"
    except csv.Error as error:
        return f"line {reader.line_num}: {error}"
    return "a quote that never closes, or fields the parser cannot split"
