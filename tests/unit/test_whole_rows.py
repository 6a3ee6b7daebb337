"""The fields-per-line check counts commas over a file's bytes at once and reads only the
lines it cannot settle: it must refuse exactly the lines, and name exactly the line, that a
plain reading line by line would."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import extract_reader
from models.extract_reader import _QUOTED_FIELD, _blank, _require_whole_rows
from models.extracts import ExtractError

PATH = Path("orders.csv")


def line_by_line(data: bytes, width: int) -> int | None:
    """The first line (from 1) whose fields are not `width`, read one line at a time."""
    for number, line in enumerate(data.decode("utf-8").split("\n"), start=1):
        line = line.rstrip("\r")
        if number == 1 or (not line.strip() and _blank(line)):
            continue
        plain = _QUOTED_FIELD.sub(r"\1", line) if '"' in line else line
        if plain.count(",") + 1 != width:
            return number
    return None


def refused_line(data: bytes, width: int) -> int | None:
    try:
        _require_whole_rows(PATH, data, width)
    except ExtractError as error:
        return int(str(error).split("line ")[1].split(" ")[0])
    return None


TEXT = st.text(alphabet=st.sampled_from(["a", "é", ",", '"', " ", "\r", "\x1c", "\t", "\u2028"]))
# a field as an export writes it (quoted, its quotes doubled) or as a broken one does
FIELD = st.one_of(TEXT, TEXT.map(lambda t: '"' + t.replace('"', '""') + '"'))
LINES = st.lists(st.one_of(TEXT, st.lists(FIELD, max_size=5).map(",".join)), max_size=8)


@given(
    LINES,
    st.integers(min_value=1, max_value=4),
    st.booleans(),
    st.sampled_from([1, 2, 5, 64, extract_reader._BLOCK_BYTES]),
    st.sampled_from([0, extract_reader._FEW_LINES]),
)
def test_the_refused_line_is_the_one_a_line_by_line_reading_finds(
    lines, width, last_feed, block, few
):
    data = ("h," * (width - 1) + "h\n" + "\n".join(lines) + ("\n" if last_feed else "")).encode()
    kept = extract_reader._BLOCK_BYTES, extract_reader._FEW_LINES
    # blocks of a few bytes, and lines counted by arrays however few, as well as by default
    extract_reader._BLOCK_BYTES, extract_reader._FEW_LINES = block, few
    try:
        assert refused_line(data, width) == line_by_line(data, width)
    finally:
        extract_reader._BLOCK_BYTES, extract_reader._FEW_LINES = kept


def test_a_line_short_of_a_field_is_named_among_quoted_commas_and_blank_lines():
    data = b'a,b,c\n1,"x,y",3\n\n  \n4,5,6\r\n7,"""q"",",9\n8,9\n'
    assert refused_line(data, 3) == 7
    assert refused_line(data.replace(b"8,9\n", b"8,9,0\n"), 3) is None
    assert refused_line(b'a,b,c\n"x,y",3\n', 3) == 2  # two commas, one of them quoted


@pytest.mark.parametrize("width", [1, 2, 3])
def test_every_short_line_of_quotes_and_commas_among_many_is_refused_as_line_by_line(width):
    """Among many lines the commas inside quotes are counted by arrays, where the quotes
    are as an export writes them; any line of up to six of `a`, `,` and `"` (open quotes,
    quotes inside values, doubled ones) must still be refused, or not, as line by line."""
    plain = ",".join(["p"] * width)
    for length in range(7):
        for chars in itertools.product('a,"', repeat=length):
            line = "".join(chars)
            text = "\n".join(["h" + ",h" * (width - 1), *[plain] * 70, line, *[plain] * 3])
            data = (text + "\r\n").encode()
            assert refused_line(data, width) == line_by_line(data, width), line
