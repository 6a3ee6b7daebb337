"""Issue 13, class 1: a file is read as the exporter meant it, or refused.

An erasure request in a CRM file with old Mac line endings, or under a header spelled in
capitals, is honoured; under a header that only looks like `is_deleted`, the night fails and
loads nothing, so the erasure waits for the fixed file instead of being read as "no".
"""

from __future__ import annotations

import pytest

from tests.support.landing import CONTACT_COLUMNS, contact, write_folder
from tests.support.scenario import HISTORY, NEXT_DAY, D, write_history


def land_crm(workspace, day: str, rows: list[dict], header: list[str], ending: bytes) -> None:
    """`day`'s folder with a CRM file written by hand: its header names and line ending."""
    folder = write_folder(workspace.landing, day)
    lines = [",".join(header)] + [",".join(row[c] for c in CONTACT_COLUMNS) for row in rows]
    (folder / "crm_contacts.csv").write_bytes(ending.join(line.encode() for line in lines))


def in_customer_360(workspace, contact_id: str) -> bool:
    return bool(workspace.query("select 1 from customer_360 where contact_id = ?", [contact_id]))


@pytest.mark.slow  # nights and waits: make test-slow keeps make test within ten minutes
def test_erasures_in_old_mac_line_endings_and_a_capitalised_header_are_honoured(workspace):
    write_history(workspace.landing)
    assert workspace.run(HISTORY) == 0
    assert in_customer_360(workspace, "erased") and in_customer_360(workspace, "loyal")

    # Lines ending in a lone CR: read before as one header line and no rows, "0 rows".
    erasure = contact("erased", is_deleted="true", updated_at=f"{D}T07:00:00Z")
    newcomer = contact("newcomer", updated_at=f"{D}T07:00:00Z")
    land_crm(workspace, D, [erasure, newcomer], CONTACT_COLUMNS, b"\r")
    assert workspace.run(D) == 0
    assert workspace.query(
        "select row_count from raw.loaded_files where extract = 'crm_contacts' "
        "and business_date = ?",
        [D],
    ) == [(2,)]
    assert not in_customer_360(workspace, "erased")
    assert in_customer_360(workspace, "newcomer")

    # `IS_DELETED`: read before as an unknown column, so every row "not deleted".
    header = [name.upper() for name in CONTACT_COLUMNS]
    erasure = contact("loyal", is_deleted="TRUE", updated_at=f"{NEXT_DAY}T07:00:00Z")
    land_crm(workspace, NEXT_DAY, [erasure], header, b"\r\n")
    assert workspace.run(NEXT_DAY) == 0
    assert not in_customer_360(workspace, "loyal")
    assert "loyal" not in {m["contact_id"] for m in workspace.outbox_lines(NEXT_DAY, "loyalty")}


def test_a_header_that_only_looks_like_is_deleted_fails_the_night_until_it_is_fixed(
    workspace, capsys
):
    write_history(workspace.landing)
    assert workspace.run(HISTORY) == 0
    erasure = contact("erased", is_deleted="true", updated_at=f"{D}T07:00:00Z")
    header = ["isDeleted" if name == "is_deleted" else name for name in CONTACT_COLUMNS]
    land_crm(workspace, D, [erasure], header, b"\n")

    assert workspace.run(D) == 1
    err = capsys.readouterr().err
    assert "crm_contacts.csv: header 'isDeleted' (column 11) looks like the contract's " in err
    assert "Rename it is_deleted" in err
    # Nothing of the night was loaded, built or sent; the contact is still there, unmailed.
    loaded = workspace.query("select extract from raw.loaded_files where business_date = ?", [D])
    assert ("crm_contacts",) not in loaded
    assert not (workspace.outbox / D).exists()

    land_crm(workspace, D, [erasure], CONTACT_COLUMNS, b"\n")  # the exporter fixes its header
    assert workspace.run(D) == 0
    assert not in_customer_360(workspace, "erased")
