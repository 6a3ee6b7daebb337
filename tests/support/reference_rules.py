"""docs/contract.md §2-§3 written a second time, plainly and independently of the SQL, for tests.

Slow Python over small landings: it reads the files itself and parses with the standard
library, so a shared mistake in Nightjar's parsers or SQL cannot hide here.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

# A plain ASCII address (README, "The business rules"), judged trimmed of spaces, as landed.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
VALID_EMAIL = re.compile(
    rf"(?=.{{1,254}}\Z)(?=[^@]{{1,64}}@){_ATEXT}+(?:\.{_ATEXT}+)*@(?:{_LABEL}\.)+"
    r"(?:[A-Za-z]{2,63}|[Xx][Nn]--[A-Za-z0-9-]{0,58}[A-Za-z0-9])\Z",
    re.DOTALL,
)


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return None if value in ("", '""') else value


def _timestamp(text: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _bool(text: str | None) -> bool:
    return (text or "").lower() in ("true", "1")


def _rows(landing: Path, business_date: dt.date, name: str):
    for folder in sorted(landing.iterdir()):
        if not (folder / "_SUCCESS").exists():
            continue
        day = dt.date.fromisoformat(folder.name)
        if day > business_date:
            continue
        with (folder / f"{name}.csv").open(encoding="utf-8-sig", newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=1):
                yield day, number, {k.strip(): _clean(v) for k, v in row.items()}


def _latest(versions: dict, key: str, row: dict, rank: tuple) -> None:
    if key not in versions or rank > versions[key][0]:
        versions[key] = (rank, row)


@dataclass
class Expected:
    customers: dict[str, dict] = field(default_factory=dict)
    # cohorts: everyone who meets the rule, erased and unmailable contacts included
    loyalty: set[str] = field(default_factory=set)
    # the winback journey's entrants (§15): every lapse as of D, whose step 1 (winback_1) is
    # due the night it is seen, so every one of them on a first night
    reactivation: set[str] = field(default_factory=set)
    birthday: set[str] = field(default_factory=set)
    # each winback entrant's occasion: its lapse, named by its last purchase date
    reactivation_occasions: dict[str, str] = field(default_factory=dict)
    # why a contact may not be mailed (deleted, invalid_email, opted_out); absent: mailable
    unmailable: dict[str, str] = field(default_factory=dict)

    def first_night_decisions(
        self,
        holdout_share: float,
        salt: str = "nightjar",
        others: dict[tuple[str, str], int] | None = None,
    ) -> dict[tuple[str, str], str]:
        """send_decisions on a first night (empty ledger, no suppressions): unmailable
        reasons, then one message (or hold-out) per contact, the highest priority first
        (birthday 300 > loyalty 200 > winback 100, step winback_1). `others`: the messages
        of the other journeys due tonight, (journey, contact) -> priority, whose entry rules
        are not written here a second time; they are decided alike and compete by priority.
        A journey's control group is drawn by the same hash of its name, contact and salt."""
        programs = {"birthday": 300, "loyalty": 200, "winback": 100}
        rows = {
            (campaign, contact): programs[campaign]
            for campaign, members in (
                ("birthday", self.birthday),
                ("loyalty", self.loyalty),
                ("winback", self.reactivation),
            )
            for contact in members
        }
        rows.update(others or {})
        decisions, due = {}, set()
        # by priority, highest first (then by name, as send_decisions breaks ties)
        for (campaign, contact), _ in sorted(rows.items(), key=lambda r: (-r[1], r[0][0])):
            if contact in self.unmailable:
                decisions[campaign, contact] = self.unmailable[contact]
                continue
            # a control group member takes its day as if it had been messaged
            first = contact not in due
            due.add(contact)
            if not first:
                decisions[campaign, contact] = "lower_priority"
            elif stable_unit_hash(campaign, contact, salt) < holdout_share:
                decisions[campaign, contact] = "holdout"
            else:
                decisions[campaign, contact] = "send"
        return decisions


def stable_unit_hash(*parts: str) -> float:
    """The holdout and variant draw of send_decisions (macro stable_unit_hash)."""
    return int(hashlib.md5("|".join(parts).encode()).hexdigest()[:8], 16) / 2**32


def expected_as_of(landing: Path, business_date: dt.date, birthday_offset: int = 0) -> Expected:
    end = dt.datetime.combine(business_date + dt.timedelta(days=1), dt.time(), dt.UTC)

    contacts, erased = {}, set()
    for day, number, row in _rows(landing, business_date, "crm_contacts"):
        updated = _timestamp(row["updated_at"])
        if updated >= end:
            continue
        if _bool(row.get("is_deleted")):
            erased.add(row["contact_id"])
        _latest(contacts, row["contact_id"], row, (updated, day, number))
    live = {cid: row for cid, (_, row) in contacts.items() if cid not in erased}
    known = {cid: row for cid, (_, row) in contacts.items()}

    orders = {}
    for day, number, row in _rows(landing, business_date, "orders"):
        updated = _timestamp(row["updated_at"])
        if updated < end:
            _latest(orders, row["order_id"], row, (updated, day, number))

    owners: dict[str, list[str]] = {}
    for cid, row in live.items():
        if row["email"]:
            owners.setdefault(row["email"].lower(), []).append(cid)

    purchases: dict[str, list[tuple[dt.date, float]]] = {}
    for _, row in orders.values():
        ordered_on = _timestamp(row["ordered_at"]).astimezone(dt.UTC).date()
        if row["status"] != "completed" or ordered_on > business_date:
            continue
        owner = row["contact_id"]
        if owner is None and row["email"]:
            candidates = owners.get(row["email"].lower(), [])
            owner = candidates[0] if len(candidates) == 1 else None
        if owner is not None:
            purchases.setdefault(owner, []).append((ordered_on, float(row["total_amount"])))

    expected = Expected()
    target = business_date + dt.timedelta(days=birthday_offset)
    for cid, row in known.items():
        bought = purchases.get(cid, [])
        last = max((d for d, _ in bought), default=None)
        days_since = (business_date - last).days if last else None
        spend_730d = round(sum(a for d, a in bought if (business_date - d).days < 730), 2)
        birth = dt.date.fromisoformat(row["birth_date"]) if row["birth_date"] else None
        if birth and not dt.date(1900, 1, 1) <= birth <= business_date:
            birth = None
        if cid in erased:
            expected.unmailable[cid] = "deleted"
            birth = None  # erased with the rest of its personal data
        else:
            expected.customers[cid] = {
                "total_spend": round(sum(a for _, a in bought), 2),
                "spend_730d": spend_730d,
                "last_purchase_date": last,
            }
            if not VALID_EMAIL.match(row["email"] or ""):
                expected.unmailable[cid] = "invalid_email"
            elif not _bool(row["email_opt_in"]):
                expected.unmailable[cid] = "opted_out"
        if days_since is not None and days_since < 90 and spend_730d > 1000:
            expected.loyalty.add(cid)
        if days_since is not None and days_since >= 180:
            expected.reactivation.add(cid)
            expected.reactivation_occasions[cid] = last.isoformat()
        if birth and _celebrates(birth, target):
            expected.birthday.add(cid)
    return expected


def _celebrates(birth: dt.date, day: dt.date) -> bool:
    if (birth.month, birth.day) == (day.month, day.day):
        return True
    leap_year = day.year % 4 == 0 and (day.year % 100 != 0 or day.year % 400 == 0)
    return (birth.month, birth.day) == (2, 29) and (day.month, day.day) == (2, 28) and not leap_year
