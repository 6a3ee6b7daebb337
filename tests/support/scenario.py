"""A small landing with planted customers whose fate every rule decides.

Business date D = 2025-11-20 (history in 2025-11-19), next day D+1 = 2025-11-21.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.landing import contact, event, line, order, write_folder

D = "2025-11-20"
NEXT_DAY = "2025-11-21"
HISTORY = "2025-11-19"


def write_history(landing: Path) -> None:
    """Folder 2025-11-19: the contacts and their purchase history."""
    stamp = "2025-11-19T08:00:00Z"
    contacts = [
        contact("loyal", updated_at=stamp),
        contact("loyal_opted_out", email_opt_in="FALSE", updated_at=stamp),
        contact("loyal_bad_email", email="not-an-email", updated_at=stamp),
        contact("loyal_suppressed", email="Suppressed@Example.com", updated_at=stamp),
        contact("spent_exactly_1000", updated_at=stamp),
        contact("lapsed", updated_at=stamp),
        contact("lapsed_after_refund", updated_at=stamp),
        contact("guest_buyer", email=" Guest.Buyer@Example.COM ", updated_at=stamp),
        contact("twin_a", email="twins@example.com", updated_at=stamp),
        contact("twin_b", email="twins@example.com", updated_at=stamp),
        contact("erased", updated_at=stamp),
        contact("00017", birth_date="1990-11-20", updated_at=stamp),
        contact("17", birth_date="1990-11-19", updated_at=stamp),
        contact("bday", birth_date="1985-11-20", updated_at=stamp),
        contact("bday_tomorrow", birth_date="1985-11-21", updated_at=stamp),
        contact("bday_2091", birth_date="2091-11-20", updated_at=stamp),
        contact(
            "zoe", first_name="Zoë", last_name="O'Brien, Jr.", birth_date="2000-11-20",
            timezone="", updated_at="2025-11-19T09:00:00+01:00",
        ),
    ]  # fmt: skip
    recent = [
        order("o-loyal-1", "loyal", "2025-10-01T10:00:00Z", "800.00"),
        order("o-loyal-2", "loyal", "2025-11-10T23:30:00-05:00", "300.00"),  # 11-11 UTC
        order("o-optout", "loyal_opted_out", "2025-11-10T10:00:00Z", "5000"),
        order("o-bad", "loyal_bad_email", "2025-11-10T10:00:00Z", "5000"),
        order("o-supp", "loyal_suppressed", "2025-11-10T10:00:00Z", "5000"),
        order("o-1000", "spent_exactly_1000", "2025-11-01T10:00:00Z", "1000.00"),
        order("o-lapsed", "lapsed", "2025-05-01T10:00:00Z", "50"),
        order("o-old", "lapsed_after_refund", "2025-04-01T10:00:00Z", "40"),
        order("o-refunded-later", "lapsed_after_refund", "2025-11-01T10:00:00Z", "70"),
        order("o-guest", "", "2025-11-15T10:00:00Z", "1200", email="guest.buyer@example.com"),
        order("o-twins", "", "2025-11-15T10:00:00Z", "2000", email="TWINS@example.com"),
        order("o-erased", "erased", "2025-11-15T10:00:00Z", "3000"),
        order("o-unknown-contact", "ghost", "2025-11-15T10:00:00Z", "3000"),
    ]
    events = [
        event("e1", "cookie-1", "2025-11-18T10:00:00Z"),
        event("e2", "cookie-1", "2025-11-19T10:00:00Z", name="login", contact_id="loyal"),
        event("e3", "cookie-1", "2025-11-19T10:05:00Z", name="add_to_cart", value="19.90"),
    ]
    # The optional order lines, for some orders only; the twins' do not add up (1,990 of 2,000)
    lines = [
        line("o-loyal-1", "1", "SKU-00001", "2", "300.00", category="Outdoor"),
        line("o-loyal-1", "2", "SKU-00002", "1", "200.00", category="Outdoor"),
        line("o-refunded-later", "1", "SKU-00003", "1", "70"),
        line("o-guest", "1", "SKU-00004", "4", "300"),
        line("o-twins", "1", "SKU-00005", "1", "1990.00"),
    ]
    write_folder(landing, HISTORY, contacts, recent, events, lines=lines)


def write_business_date(landing: Path) -> None:
    """Folder D: a refund, an erasure, a repeated event, a line corrected without its order."""
    write_folder(
        landing,
        D,
        contacts=[contact("erased", is_deleted="true", updated_at="2025-11-20T07:00:00Z")],
        orders=[
            order(
                "o-refunded-later",
                "lapsed_after_refund",
                "2025-11-01T10:00:00Z",
                "70",
                status="refunded",
                updated_at="2025-11-20T06:00:00Z",
            )
        ],
        events=[
            event("e3", "cookie-1", "2025-11-19T10:05:00Z", name="add_to_cart", value="19.90"),
            event("e4", "cookie-1", "2025-11-20T11:00:00Z"),
        ],
        lines=[line("o-loyal-1", "2", "SKU-00009", "1", "200.00", category="Outdoor")],
    )


def write_next_day(landing: Path) -> None:
    """Folder D+1: `lapsed` buys big and so enters loyalty; a new contact arrives (no order
    lines: the file is optional)."""
    write_folder(
        landing,
        NEXT_DAY,
        contacts=[contact("newbie", updated_at="2025-11-21T10:00:00Z")],
        orders=[order("o-comeback", "lapsed", "2025-11-21T09:00:00Z", "1500")],
    )


def write_all(landing: Path) -> None:
    write_history(landing)
    write_business_date(landing)


def suppress(warehouse: Path, email: str) -> None:
    from assets.shared.warehouse import connect, ensure_schema

    with connect(warehouse) as con:
        ensure_schema(con)
        con.execute("insert into nightjar.suppressions values (?, 'unsubscribe', now())", [email])
