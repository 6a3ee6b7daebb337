"""Erasure: a contact with `is_deleted` true loses its personal data everywhere Nightjar
keeps it, and keeps only what the ledger needs to stay exactly-once (ids, never addresses).

Run after every load, so an erasure takes effect the night it lands: raw contact versions
lose their personal fields, orders and SendGrid events lose the erased address (unless a live
contact still holds it: a guest order may still be theirs), the published and built tables
lose the contact's personal fields (so even a night whose dbt build fails holds none), and
the outbox's record of past messages keeps its send_ids but loses address, name and data.
Order lines (raw.order_lines) stay: they hold products and prices, nothing personal, and hang
on their order by order_id, which erasure keeps (the order loses only its address).

The files Nightjar writes itself are scrubbed too: the SendGrid event files `nightjar webhook`
lands (an erased contact's or address's events keep their ids and lose the rest, see
EVENT_KEYS_KEPT), and the temporary files a write killed half-way left behind (removed).

`nightjar.erasures` remembers each erased address only as a SHA-256 hash: enough to scrub an
order or event with that address landing on a later night, and to keep suppressing an
address that had unsubscribed or bounced if its owner registers again.

This module scrubs the warehouse (raw tables, dbt's tables). Beside it: erasure_events.py
scrubs the event files (EVENT_KEYS_KEPT), erasure_outbox.py the outbox, and erasure_record.py
is what `nightjar.erasures` remembers, written before an address is emptied anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from assets.ingest.erasure_record import (
    record_erasures,
    remember_event_addresses,
    remember_suppressions,
)

PERSONAL_FIELDS = ("email", "first_name", "last_name", "birth_date", "country", "timezone")
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
    erased, addresses = record_erasures(con, newly)
    if erased:
        _empty_personal_fields(con, "raw.crm_contacts", PERSONAL_FIELDS, erased)
        _scrub_models_by_contact(con, erased)
    event_files = list(event_files)
    addresses += _erased_addresses_landed_again(con, list(dates), event_files)
    orphaned = _held_by_no_live_contact(con, sorted(set(addresses)))
    if orphaned or erased:
        remember_suppressions(con, orphaned)
        _scrub_addresses(con, orphaned, erased, list(dates))
        _no_valid_address_left(con)
    if erased or event_files:
        _scrub_events_of_erased_contacts(con, erased, event_files)
    return len(newly)


def _no_valid_address_left(con: duckdb.DuckDBPyConnection) -> None:
    """An emptied address is no valid address, as a rebuild would say (incremental tables
    keep a row until its key is touched again)."""
    for schema, table in _model_tables(con, "is_email_valid"):
        con.execute(
            f'update {schema}."{table}" set is_email_valid = false '
            "where email is null and is_email_valid"
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
        # a bounce's reason quotes the address it bounced
        "update raw.sendgrid_events set email = null, reason = null "
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


def _scrub_events_of_erased_contacts(
    con: duckdb.DuckDBPyConnection, erased: list[str], event_files: list[str]
) -> None:
    """Events of an erased contact (by the contact_id Nightjar's custom_args echo) of the
    contacts just erased, or in the files just loaded, lose their bounce reason and their
    address unless a live contact holds it too: what the rewritten event file will hold."""
    con.execute(
        """
        create or replace temp table erased_events as
        with found as (
            select rowid as row_id, contact_id, lower(trim(email)) as email, event
            from raw.sendgrid_events
            where (contact_id in (select unnest($erased::varchar[]))
                   or (source_file in (select unnest($files::varchar[]))
                       and contact_id in (select contact_id from nightjar.erasures)))
              and (email is not null or reason is not null)
        )
        select found.*, found.email in (
            select lower(trim(email)) from raw.crm_contacts
            where lower(trim(email)) in (select email from found)
              and contact_id not in (select contact_id from nightjar.erasures)
        ) as email_kept
        from found
        """,
        {"erased": erased, "files": event_files},
    )
    remember_event_addresses(con, "erased_events")
    con.execute(
        """
        update raw.sendgrid_events set
            reason = null,
            email = case when erased_events.email_kept then raw.sendgrid_events.email end
        from erased_events where raw.sendgrid_events.rowid = erased_events.row_id
        """
    )
    con.execute("drop table erased_events")


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
