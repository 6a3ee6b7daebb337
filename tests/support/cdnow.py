"""The CDNOW history (tests/fixtures/cdnow: the 1/10 sample, 2,357 customers' 6,919 purchase
days from January 1997 to June 1998) as a landing of daily folders with its own dates: each
customer a CRM contact on the day of their first purchase, each purchase day an order."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from tests.support.landing import contact, order, write_folder

SAMPLE = Path(__file__).parents[1] / "fixtures" / "cdnow" / "CDNOW_sample.txt"
FIRST, LAST = dt.date(1997, 1, 1), dt.date(1998, 6, 30)


@dataclass(frozen=True)
class Purchase:
    customer: str  # the id in CDNOW's master file, as the contact's: C00004
    day: dt.date
    amount: Decimal


def purchases() -> list[Purchase]:
    found = []
    for line in SAMPLE.read_text().splitlines():
        if line.strip():
            customer, _, day, _, amount = line.split()
            found.append(
                Purchase(
                    f"C{customer}", dt.datetime.strptime(day, "%Y%m%d").date(), Decimal(amount)
                )
            )
    return found


def write_cdnow_landing(landing: Path) -> list[Purchase]:
    """A folder for every date from FIRST to LAST, purchases or not; returns the purchases."""
    bought = purchases()
    first_seen: dict[str, dt.date] = {}
    by_day: dict[dt.date, list[Purchase]] = defaultdict(list)
    for purchase in bought:
        by_day[purchase.day].append(purchase)
        first_seen[purchase.customer] = min(first_seen.get(purchase.customer, LAST), purchase.day)
    newcomers: dict[dt.date, list[str]] = defaultdict(list)
    for customer, day in first_seen.items():
        newcomers[day].append(customer)
    day = FIRST
    while day <= LAST:
        at = f"{day.isoformat()}T09:00:00Z"
        contacts = [
            contact(c, email=f"{c.lower()}@cdnow.example.com", created_at=at, updated_at=at)
            for c in sorted(newcomers[day])
        ]
        orders = [
            order(
                f"O{p.customer[1:]}-{day:%Y%m%d}-{n}", p.customer, f"{day}T12:00:00Z", str(p.amount)
            )
            for n, p in enumerate(by_day[day])
        ]
        write_folder(landing, day.isoformat(), contacts, orders)
        day += dt.timedelta(days=1)
    return bought
