"""Erasure: a contact with `is_deleted` true loses its personal data everywhere Nightjar
keeps it, and keeps only what the ledger needs to stay exactly-once (ids, never addresses).

Run after every load of the CRM extract, so an erasure takes effect the night it lands:
raw contact versions lose their personal fields, orders and SendGrid events lose the erased
address (unless a live contact still holds it: a guest order may still be theirs), and the
outbox's record of past messages keeps its send_ids but loses address, name and data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb

from senders.outbox import write_atomically

PERSONAL_FIELDS = ("email", "first_name", "last_name", "birth_date", "country", "timezone")


@dataclass(frozen=True)
class Erased:
    contacts: int
    outbox_messages: int


def erase_in_warehouse(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[str]]:
    """Scrub the raw tables; returns (erased contact ids, their addresses no one else holds)."""
    erased = [
        row[0]
        for row in con.execute(
            "select distinct contact_id from raw.crm_contacts where is_deleted"
        ).fetchall()
    ]
    if not erased:
        return [], []
    params = {"erased": erased}
    addresses = [
        row[0]
        for row in con.execute(
            """
            select distinct lower(trim(email)) from raw.crm_contacts
            where contact_id in (select unnest($erased::varchar[])) and email is not null
            except
            select lower(trim(email)) from raw.crm_contacts
            where contact_id not in (select unnest($erased::varchar[])) and email is not null
            """,
            params,
        ).fetchall()
    ]
    nulls = ", ".join(f"{field} = null" for field in PERSONAL_FIELDS)
    con.execute(
        f"update raw.crm_contacts set {nulls} "
        "where contact_id in (select unnest($erased::varchar[]))",
        params,
    )
    both = {**params, "addresses": addresses}
    con.execute(
        """
        update raw.orders set email = null
        where contact_id in (select unnest($erased::varchar[]))
           or lower(trim(email)) in (select unnest($addresses::varchar[]))
        """,
        both,
    )
    # Events by address only: an unsubscribe from an address a live contact still holds
    # must keep suppressing it.
    con.execute(
        "update raw.sendgrid_events set email = null "
        "where email in (select unnest($addresses::varchar[]))",
        {"addresses": addresses},
    )
    return erased, addresses


def erase_in_outbox(outbox: Path, erased: list[str]) -> int:
    """Past outbox messages to erased contacts keep send_id, campaign, contact and occasion
    (what exactly-once needs) and lose address, name and data. Returns messages scrubbed."""
    targets = set(erased)
    scrubbed = 0
    for path in sorted(outbox.glob("*/*.jsonl")) if outbox.is_dir() else []:
        lines = path.read_text(encoding="utf-8").splitlines()
        changed = False
        for index, line in enumerate(lines):
            if not line.strip():
                continue
            record = json.loads(line)
            if record.get("contact_id") in targets and record.get("to") is not None:
                record.update(to=None, to_name=None, data={}, erased=True)
                lines[index] = json.dumps(record, ensure_ascii=False)
                changed = True
                scrubbed += 1
        if changed:
            write_atomically(path, "".join(line + "\n" for line in lines))
    return scrubbed
