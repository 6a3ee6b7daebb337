"""What `nightjar.erasures` remembers of an erasure (assets/ingest/erasure.py): each erased
contact, each address it held as a SHA-256 hash, never the address, and whether that address
was suppressed (bounced, unsubscribed or refused), so that the suppression outlives it.

The warehouse's scrub and the event files' call these before they empty an address.
"""

from __future__ import annotations

import duckdb

from senders.late_suppressions import SUPPRESSING_EVENTS


def record_erasures(
    con: duckdb.DuckDBPyConnection, newly: list[str]
) -> tuple[list[str], list[str]]:
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


def remember_suppressions(con: duckdb.DuckDBPyConnection, addresses: list[str]) -> None:
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
        {"addresses": addresses, "suppressing": sorted(SUPPRESSING_EVENTS)},
    )


def remember_event_addresses(con: duckdb.DuckDBPyConnection, relation: str) -> None:
    """Before events of erased contacts or addresses lose their address (`relation`: their
    contact_id, normalized email, event and whether the address stays), remember by hash the
    addresses they showed unsubscribed or bounced, so the suppression outlives the address.
    An address an erased contact's events show that its CRM rows never had is remembered as
    one of its addresses (its events elsewhere are then scrubbed too)."""
    con.execute(
        f"""
        insert into nightjar.erasures (contact_id, email_sha256, was_suppressed, erased_at,
                                       outbox_scrubbed)
        select distinct contact_id, sha256(email), false, now(), true
        from {relation} as seen
        where not email_kept and email <> ''
          and contact_id in (select contact_id from nightjar.erasures)
          and sha256(email) not in (
              select email_sha256 from nightjar.erasures where email_sha256 is not null)
        """
    )
    con.execute(
        f"""
        update nightjar.erasures set was_suppressed = true
        where not was_suppressed and email_sha256 in (
            select sha256(email) from {relation}
            where not email_kept and event in (select unnest($suppressing::varchar[])))
        """,
        {"suppressing": sorted(SUPPRESSING_EVENTS)},
    )
