"""Erasure: a contact with `is_deleted` true loses its personal data everywhere Nightjar
keeps it, and keeps only what the ledger needs to stay exactly-once (ids, never addresses).

Run after every load, so an erasure takes effect the night it lands: raw contact versions
lose their personal fields, orders and SendGrid events lose the erased address (unless a live
contact still holds it: a guest order may still be theirs), the published and built tables
lose the contact's personal fields (so even a night whose dbt build fails holds none), and
the outbox's record of past messages keeps its send_ids but loses address, name and data.

`nightjar.erasures` remembers each erased address only as a SHA-256 hash: enough to scrub an
order or event with that address landing on a later night, and to keep suppressing an
address that had unsubscribed or bounced if its owner registers again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import duckdb

from senders.outbox import write_atomically

PERSONAL_FIELDS = ("email", "first_name", "last_name", "birth_date", "country", "timezone")
# SendGrid events that suppress an address for good (as the suppression_list model).
_SUPPRESSING_EVENTS = ("bounce", "spamreport", "unsubscribe", "group_unsubscribe")
# Where dbt's tables live: scrubbed in place, since a failed build publishes nothing.
_MODEL_SCHEMAS = ("main", "build")


def erase_in_warehouse(
    con: duckdb.DuckDBPyConnection, dates: Iterable[str] = (), event_files: Iterable[str] = ()
) -> int:
    """Scrub the warehouse of every erased contact's personal data still in raw contact rows
    (a new erasure, or an erased contact's version landing again: a re-run, a snapshot), and
    of erased addresses in orders landed on `dates` and in the SendGrid event files just
    loaded. Returns contacts newly erased."""
    newly = [
        row[0]
        for row in con.execute(
            """
            select distinct contact_id from raw.crm_contacts where is_deleted
            except select contact_id from nightjar.erasures
            """
        ).fetchall()
    ]
    erased, addresses = _record(con, newly)
    if erased:
        _empty_personal_fields(con, "raw.crm_contacts", PERSONAL_FIELDS, erased)
        _scrub_models_by_contact(con, erased)
    addresses += _erased_addresses_landed_again(con, list(dates), list(event_files))
    orphaned = _held_by_no_live_contact(con, sorted(set(addresses)))
    if orphaned or erased:
        _remember_suppressions(con, orphaned)
        _scrub_addresses(con, orphaned, erased, list(dates))
        _no_valid_address_left(con)
    return len(newly)


def _no_valid_address_left(con: duckdb.DuckDBPyConnection) -> None:
    """An emptied address is no valid address, as a rebuild would say (incremental tables
    keep a row until its key is touched again)."""
    for schema, table in _model_tables(con, "is_email_valid"):
        con.execute(
            f'update {schema}."{table}" set is_email_valid = false '
            "where email is null and is_email_valid"
        )


def _record(con: duckdb.DuckDBPyConnection, newly: list[str]) -> tuple[list[str], list[str]]:
    """Remember newly erased contacts, and the hash of every address still on an erased
    contact's raw rows. Returns (contacts with rows to scrub, those addresses)."""
    con.execute(
        """
        create or replace temp table unscrubbed as
        select distinct contact_id, lower(trim(email)) as email from raw.crm_contacts
        where (contact_id in (select contact_id from nightjar.erasures)
               or contact_id in (select unnest($newly::varchar[])))
          and (email is not null or first_name is not null or last_name is not null
               or birth_date is not null or country is not null or timezone is not null)
        """,
        {"newly": newly},
    )
    con.execute(
        """
        insert into nightjar.erasures (contact_id, email_sha256, was_suppressed, erased_at)
        select contact_id, sha256(email), false, now()
        from (
            select contact_id, email from unscrubbed where email is not null
            union
            -- every erased contact is remembered, with an address or without one
            select unnest($newly::varchar[]), null
        ) as found
        where not exists (
            select 1 from nightjar.erasures as known
            where known.contact_id = found.contact_id
              and known.email_sha256 is not distinct from sha256(found.email)
        )
        """,
        {"newly": newly},
    )
    rows = con.execute("select contact_id, email from unscrubbed").fetchall()
    con.execute("drop table unscrubbed")
    erased = sorted({contact for contact, _ in rows} | set(newly))
    return erased, sorted({email for _, email in rows if email})


def _remember_suppressions(con: duckdb.DuckDBPyConnection, addresses: list[str]) -> None:
    """An erased address that bounced, unsubscribed or was refused (whenever the event
    lands) stays suppressed by its hash, before the address itself is scrubbed."""
    con.execute(
        """
        update nightjar.erasures set was_suppressed = true
        where not was_suppressed and email_sha256 in (
            select sha256(lower(trim(email))) from raw.sendgrid_events
            where lower(trim(email)) in (select unnest($addresses::varchar[]))
              and event in (select unnest($suppressing::varchar[]))
            union
            select sha256(lower(trim(email))) from nightjar.suppressions
            where lower(trim(email)) in (select unnest($addresses::varchar[]))
        )
        """,
        {"addresses": addresses, "suppressing": list(_SUPPRESSING_EVENTS)},
    )


def _erased_addresses_landed_again(
    con: duckdb.DuckDBPyConnection, dates: list[str], event_files: list[str]
) -> list[str]:
    """Addresses of erased contacts in orders of `dates` whose CRM extract is loaded (a
    late guest order; before that, a contact registering again that night is not known yet)
    and in the event files just loaded."""
    return [
        row[0]
        for row in con.execute(
            """
            with landed as (
                select distinct lower(trim(email)) as email from raw.orders
                where business_date in (select unnest($dates::date[]))
                  and business_date in (
                      select business_date from raw.loaded_files where extract = 'crm_contacts')
                  and email is not null
                union
                select distinct lower(trim(email)) from raw.sendgrid_events
                where source_file in (select unnest($files::varchar[])) and email is not null
            )
            select email from landed
            where sha256(email) in (
                select email_sha256 from nightjar.erasures where email_sha256 is not null)
            """,
            {"dates": dates, "files": event_files},
        ).fetchall()
    ]


def _held_by_no_live_contact(con: duckdb.DuckDBPyConnection, addresses: list[str]) -> list[str]:
    if not addresses:
        return []
    held = {
        row[0]
        for row in con.execute(
            """
            select distinct lower(trim(email)) from raw.crm_contacts
            where lower(trim(email)) in (select unnest($addresses::varchar[]))
              and contact_id not in (select contact_id from nightjar.erasures)
            """,
            {"addresses": addresses},
        ).fetchall()
    }
    return [address for address in addresses if address not in held]


def _scrub_addresses(
    con: duckdb.DuckDBPyConnection, addresses: list[str], erased: list[str], dates: list[str]
) -> None:
    con.execute(
        """
        update raw.orders set email = null
        where email is not null and (
            contact_id in (select unnest($erased::varchar[]))
            -- a later order of an erased contact, by its id
            or (business_date in (select unnest($dates::date[]))
                and contact_id in (select contact_id from nightjar.erasures))
            or lower(trim(email)) in (select unnest($addresses::varchar[])))
        """,
        {"addresses": addresses, "erased": erased, "dates": dates},
    )
    # Events and suppressions by address only: an unsubscribe from an address a live contact
    # still holds must keep suppressing it. An erased address's suppression lives on as its
    # hash in nightjar.erasures.
    by_address = {"addresses": addresses}
    con.execute(
        "update raw.sendgrid_events set email = null "
        "where lower(trim(email)) in (select unnest($addresses::varchar[]))",
        by_address,
    )
    con.execute(
        "delete from nightjar.suppressions "
        "where lower(trim(email)) in (select unnest($addresses::varchar[]))",
        by_address,
    )
    for schema, table in _model_tables(con, "email"):
        # dbt's addresses are normalized in staging: an exact match, no function over
        # millions of rows
        con.execute(
            f'update {schema}."{table}" set email = null '
            "where email in (select unnest($addresses::varchar[]))",
            by_address,
        )


def _scrub_models_by_contact(con: duckdb.DuckDBPyConnection, erased: list[str]) -> None:
    for (schema, table), columns in _model_tables(con, "contact_id").items():
        personal = sorted(columns & set(PERSONAL_FIELDS))
        if personal:
            _empty_personal_fields(con, f'{schema}."{table}"', personal, erased)


def _empty_personal_fields(con, relation: str, fields, erased: list[str]) -> None:
    # Only rows still holding something: DuckDB rewrites every row group an update touches
    # when it next checkpoints, seconds for a table of millions.
    nulls = ", ".join(f'"{field}" = null' for field in fields)
    holding = " or ".join(f'"{field}" is not null' for field in fields)
    con.execute(
        f"update {relation} set {nulls} "
        f"where contact_id in (select unnest($erased::varchar[])) and ({holding})",
        {"erased": erased},
    )


def _model_tables(con: duckdb.DuckDBPyConnection, key: str) -> dict[tuple[str, str], set[str]]:
    """dbt's tables (not views) that have the column `key`, with all their columns."""
    rows = con.execute(
        """
        select columns.schema_name, columns.table_name, list(columns.column_name)
        from duckdb_columns() as columns
        inner join duckdb_tables() as tables using (database_name, schema_name, table_name)
        where columns.database_name = current_database()
          and columns.schema_name in (select unnest($schemas::varchar[]))
        group by all
        having list_contains(list(columns.column_name), $key)
        order by all
        """,
        {"schemas": list(_MODEL_SCHEMAS), "key": key},
    ).fetchall()
    return {(schema, table): set(columns) for schema, table, columns in rows}


def outbox_erasures_pending(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        row[0]
        for row in con.execute(
            "select distinct contact_id from nightjar.erasures where not outbox_scrubbed "
            "order by contact_id"
        ).fetchall()
    ]


def mark_outbox_scrubbed(con: duckdb.DuckDBPyConnection, erased: list[str]) -> None:
    con.execute(
        "update nightjar.erasures set outbox_scrubbed = true "
        "where contact_id in (select unnest($erased::varchar[]))",
        {"erased": erased},
    )


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
