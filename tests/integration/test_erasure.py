"""Erasure end to end: the night an erasure lands, the contact's address and name leave the
warehouse and the outbox; the ledger keeps only ids, and no message ever goes to it again."""

from __future__ import annotations

import json

import pytest

from tests.support.landing import contact, event, land_events, order, write_folder
from tests.support.scenario import HISTORY, NEXT_DAY, D, write_business_date, write_history

ADDRESS = "erased@example.com"


def occurrences(workspace, text: str) -> list[str]:
    """Every table column and outbox file holding `text`, anywhere in the value."""
    found = []
    # the warehouse and Nightjar's state beside it
    with workspace.reading() as con:
        columns = con.execute(
            "select database_name, schema_name, table_name, column_name from duckdb_columns() "
            "where data_type = 'VARCHAR' and database_name in (current_database(), 'nightjar')"
        ).fetchall()
        for database, schema, table, column in columns:
            (hits,) = con.execute(
                f'select count(*) from "{database}"."{schema}"."{table}" where "{column}" ilike ?',
                [f"%{text}%"],
            ).fetchone()
            if hits:
                where = "nightjar" if database == "nightjar" else schema  # the state, or its schema
                found.append(f"{where}.{table}.{column}")
    for path in workspace.outbox.glob("*/*.jsonl"):
        if text in path.read_text(encoding="utf-8").lower():
            found.append(str(path))
    return found


@pytest.mark.slow  # several nights: make test-slow keeps make test within ten minutes
def test_an_erased_contacts_address_is_nowhere_after_the_next_run(workspace):
    write_history(workspace.landing)
    land_events(
        workspace.landing, HISTORY,
        [{"event": "open", "email": ADDRESS, "sg_event_id": "x1", "timestamp": 1763546400,
          "contact_id": "erased"}],
    )  # fmt: skip
    assert workspace.run(HISTORY) == 0
    # The night before its erasure, the contact was a loyal customer and got a message.
    sent = workspace.outbox_lines(HISTORY, "loyalty")
    assert [m["to"] for m in sent if m["contact_id"] == "erased"] == [ADDRESS]
    assert occurrences(workspace, ADDRESS)

    write_business_date(workspace.landing)  # holds the erasure request
    assert workspace.run(D) == 0
    assert occurrences(workspace, ADDRESS) == []
    # Run again, the date's CRM file (with the erased contact's row) loads again: still none.
    assert workspace.run(D) == 0
    assert occurrences(workspace, ADDRESS) == []
    # every version the CRM sent keeps its id and dates, no personal field
    assert set(
        workspace.query(
            "select email, first_name, last_name, birth_date, country, timezone "
            "from raw.crm_contacts where contact_id = 'erased'"
        )
    ) == {(None,) * 6}

    # What exactly-once needs stays: the message's send_id, in the ledger and the outbox.
    (kept,) = [m for m in workspace.outbox_lines(HISTORY, "loyalty") if m["contact_id"] == "erased"]
    assert kept["to"] is None and kept["data"] == {} and kept["erased"] is True
    assert workspace.query(
        "select status from nightjar.send_ledger where send_id = ?", [kept["send_id"]]
    ) == [("accepted",)]
    # and it is never messaged again
    assert workspace.query("select decision from send_decisions where contact_id = 'erased'") == [
        ("deleted",)
    ]
    assert all(
        m["contact_id"] != "erased"
        for path in (workspace.outbox / D).glob("*.jsonl")  # every campaign and journey
        for m in workspace.outbox_lines(D, path.stem)
    )
    assert json.dumps(kept)  # the scrubbed line is still one valid JSON object


@pytest.mark.slow  # several nights: make test-slow keeps make test within ten minutes
def test_an_erased_address_landing_again_is_scrubbed_and_stays_suppressed(workspace):
    write_history(workspace.landing)
    unsubscribed = {"event": "unsubscribe", "email": ADDRESS, "sg_event_id": "u1",
                    "timestamp": 1763546400, "contact_id": "erased"}  # fmt: skip
    land_events(workspace.landing, HISTORY, [unsubscribed])
    write_business_date(workspace.landing)
    assert workspace.run(D) == 0
    assert occurrences(workspace, ADDRESS) == []

    # The next night a late guest order and a web visit carry the address.
    write_folder(
        workspace.landing, NEXT_DAY,
        orders=[order("o-late", "", "2025-11-20T22:00:00Z", "40", email=" Erased@Example.com")],
        events=[event("e-mail", "cookie-9", "2025-11-21T08:00:00Z",
                      page_url=f"https://shop.example.com/?email={ADDRESS}")],
    )  # fmt: skip
    assert workspace.run(NEXT_DAY) == 0
    assert occurrences(workspace, ADDRESS) == []
    assert workspace.query("select page_url from raw.web_events where event_id = 'e-mail'") == [
        ("https://shop.example.com/?email=e***@example.com",)
    ]
    assert workspace.query("select total_amount from raw.orders where order_id = 'o-late'") == [
        (40,)
    ]  # the order stays, without its address

    # The person registers again with the address, opted in and a big spender: the
    # unsubscribe they gave before their erasure still holds.
    again = "2025-11-22"
    write_folder(
        workspace.landing, again,
        contacts=[contact("reborn", email=ADDRESS, updated_at=f"{again}T07:00:00Z")],
        orders=[order("o-reborn", "reborn", f"{again}T08:00:00Z", "5000")],
    )  # fmt: skip
    assert workspace.run(again) == 0
    assert workspace.query(
        "select unmailable_reason from customer_360 where contact_id = 'reborn'"
    ) == [("suppressed",)]
    assert workspace.query("select decision from send_decisions where contact_id = 'reborn'") == [
        ("suppressed",)
    ]
    assert workspace.outbox_lines(again, "loyalty") == []


def test_an_erasure_on_a_night_whose_dbt_build_fails_still_leaves_no_address(
    workspace, dbt_fails_half_way
):
    write_history(workspace.landing)
    assert workspace.run(HISTORY) == 0
    assert "main.customer_360.email" in occurrences(workspace, ADDRESS)

    write_business_date(workspace.landing)
    dbt_fails_half_way(True)
    assert workspace.run(D) == 1
    # yesterday's tables stand, but without the erased person's personal data
    assert occurrences(workspace, ADDRESS) == []
    assert workspace.query(
        "select first_name, email from customer_360 where contact_id = 'erased'"
    ) == [(None, None)]
