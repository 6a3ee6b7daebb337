"""Property: whatever lands, loading either refuses the file with an ExtractError or loads
some rows and quarantines the rest, and never loses one: loaded + quarantined = rows read."""

from __future__ import annotations

import csv
import datetime as dt
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.extract_files import load_extract
from models.extracts import EXTRACTS, ExtractError
from models.landing import LandingFolder
from tests.support.landing import (
    CONTACT_COLUMNS,
    EVENT_COLUMNS,
    LINE_COLUMNS,
    ORDER_COLUMNS,
    contact,
    event,
    line,
    order,
)

GOOD = {
    "crm_contacts": (CONTACT_COLUMNS, lambda i: contact(f"c{i}")),
    "orders": (ORDER_COLUMNS, lambda i: order(f"o{i}", f"c{i}", "2025-11-20T10:00:00Z", "12.5")),
    "web_events": (EVENT_COLUMNS, lambda i: event(f"e{i}", f"a{i}", "2025-11-20T10:00:00Z")),
    "order_lines": (LINE_COLUMNS, lambda i: line(f"o{i}", "1", f"SKU-{i}", "2", "6.25")),
}
# Values an export gets wrong: wrong types, odd text, quotes, separators, line breaks.
NASTY = st.one_of(
    st.sampled_from(["", " ", "null", "-1", "1e309", "2025-02-30", "2025-11-20T25:00:00Z",
                     "TRUE", "maybe", "€", "a,b", 'say "hi"', "line\nbreak", "0x10", "NaN"]),
    st.text(max_size=12),
)  # fmt: skip


@st.composite
def extracts(draw):
    extract = draw(st.sampled_from(sorted(GOOD)))
    columns, good = GOOD[extract]
    rows = [dict(good(i)) for i in range(draw(st.integers(0, 25)))]
    for row in rows:
        for column in draw(st.lists(st.sampled_from(columns), max_size=3)):
            row[column] = draw(NASTY)
    return extract, rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extracts(), st.sampled_from([0.005, 1.0]))
def test_loading_never_crashes_and_never_loses_a_row(case, max_bad_share):
    extract, rows = case
    with tempfile.TemporaryDirectory() as root:
        _land(Path(root), extract, rows)
        landing_folder = LandingFolder(dt.date(2025, 11, 20), Path(root) / "landing" / "2025-11-20")
        try:
            checked = load_extract([landing_folder], EXTRACTS[extract], "USD", max_bad_share)
        except ExtractError as error:
            assert str(error)  # a refusal with its reason, never a crash
            return
    quarantine = checked.quarantine
    set_aside = quarantine.filter(quarantine["action"] == "row_quarantined")
    assert checked.frame.height + set_aside["source_row"].n_unique() == len(rows)


def _land(root: Path, extract: str, rows: list[dict]) -> None:
    folder = root / "landing" / "2025-11-20"
    folder.mkdir(parents=True)
    for name, (cols, _) in GOOD.items():
        with (folder / f"{name}.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=cols)
            writer.writeheader()
            writer.writerows(rows if name == extract else [])
    (folder / "_SUCCESS").touch()


@pytest.mark.slow  # 40 Dagster runs: make test-slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extracts())
def test_a_dagster_run_on_malformed_extracts_fails_cleanly_or_loads_every_row(case):
    """The same property through the ingest assets as Dagster runs them: a step fails only
    with Nightjar's own message (a Failure naming the file), never an unhandled exception."""
    import duckdb
    from dagster import DagsterInstance, materialize

    from assets.ingest.extracts import ingest_assets
    from assets.shared.resources import NightjarResource

    extract, rows = case
    with tempfile.TemporaryDirectory() as root:
        _land(Path(root), extract, rows)
        warehouse = Path(root) / "warehouse.duckdb"
        result = materialize(
            ingest_assets,
            partition_key="2025-11-20",
            instance=DagsterInstance.ephemeral(),
            resources={
                "nightjar": NightjarResource(
                    landing=str(Path(root) / "landing"),
                    warehouse=str(warehouse),
                    outbox=str(Path(root) / "outbox"),
                )
            },
            raise_on_error=False,
        )
        failures = [e.step_failure_data for e in result.all_events if e.is_step_failure]
        for failure in failures:
            assert failure.user_failure_data is not None, failure.error.to_string()
            assert f"{extract}" in failure.user_failure_data.description
        with duckdb.connect(str(warehouse), read_only=True) as con:
            loaded = con.execute(f"select count(*) from raw.{extract}").fetchall()[0][0]
            set_aside = con.execute(
                "select count(distinct source_row) from raw.quarantine "
                "where extract = ? and action = 'row_quarantined'",
                [extract],
            ).fetchall()[0][0]
    if failures:
        assert (loaded, set_aside) == (0, 0)  # a refused file loads nothing
    else:
        assert loaded + set_aside == len(rows)
