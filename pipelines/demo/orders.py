"""The sample orders extract (orders.csv) of each day (pipelines/demo/sample_data.py): new
orders of contacts and guests, and later rows of earlier orders cancelled or refunded."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.demo.contacts import Contacts, render_emails, styled
from pipelines.demo.spelling import ids, money, timestamps
from pipelines.demo.timeline import DAY, time_of_day
from pipelines.demo.world import World

ORDER_COLUMNS = (
    "order_id",
    "contact_id",
    "email",
    "ordered_at",
    "updated_at",
    "status",
    "currency",
    "total_amount",
)


def orders_for_day(rng: np.random.Generator, w: World, d: int) -> pl.DataFrame:
    new = _new_orders(rng, w, d)
    _schedule_status_changes(rng, w, d, new)
    due = pl.DataFrame(schema={**new.schema, "_day": pl.Int64})
    if w.pending_orders is not None:
        due = w.pending_orders.filter(pl.col("_day") == d)
        w.pending_orders = w.pending_orders.filter(pl.col("_day") != d)
    return pl.concat([new, due.drop("_day")])


def _new_orders(rng: np.random.Generator, w: World, d: int) -> pl.DataFrame:
    idx = w.orders.draw(rng, d, w.win.season[d])
    k, day0 = idx.size, w.win.day_start(d)
    at = day0 + time_of_day(rng, k)
    order = np.argsort(at, kind="stable")
    idx, at = idx[order], at[order]
    updated = np.minimum(at + rng.integers(5, 1800, size=k), day0 + DAY - 1)
    guest = rng.random(k) < 0.08
    cents = np.round(rng.lognormal(np.log(5200), 0.8, size=k) * w.basket[idx]).astype(np.int64)
    cents[rng.random(k) < 0.015] = 0  # fully discounted / replacement orders
    w.next_order += k
    return pl.DataFrame(
        {
            "order_id": ids("O", np.arange(w.next_order - k, w.next_order), 10),
            "contact_id": ids("C", idx + 1, w.contacts.id_width).scatter(
                np.flatnonzero(guest), None
            ),
            "email": _order_emails(rng, w.contacts, idx, guest),
            "ordered_at": timestamps(rng, at),
            "updated_at": timestamps(rng, updated),
            "status": pl.Series(["completed"] * k, dtype=pl.String),
            "currency": pl.Series(["USD"] * k, dtype=pl.String),
            "total_amount": money(cents),
        }
    )


def _order_emails(
    rng: np.random.Generator, c: Contacts, idx: np.ndarray, guest: np.ndarray
) -> pl.Series:
    # Guests type their own address (sometimes re-cased or padded) or one the CRM never saw.
    r = rng.random(idx.size)
    unknown, retyped = np.flatnonzero(guest & (r < 0.35)), np.flatnonzero(guest & (r >= 0.75))
    numbers = pl.Series(rng.integers(10**6, 10**7, size=unknown.size), dtype=pl.Int64)
    emails = render_emails(c, idx).scatter(
        unknown, "guest" + numbers.cast(pl.String) + "@example.net"
    )
    case = rng.choice(3, size=retyped.size, p=(0.2, 0.4, 0.4))
    again = styled(emails.gather(retyped).str.strip_chars(), case, rng.random(case.size) < 0.3)
    return emails.scatter(retyped, again)


def _schedule_status_changes(rng: np.random.Generator, w: World, d: int, new: pl.DataFrame) -> None:
    # A later row with the same order_id: cancellations come fast, refunds up to a month later.
    later = np.flatnonzero(rng.random(new.height) < 0.05)
    refunded = rng.random(later.size) < 0.6
    lag = np.where(refunded, rng.integers(1, 31, size=later.size), rng.integers(1, 4, later.size))
    keep = d + lag < w.win.days
    later, refunded, target = later[keep], refunded[keep], d + lag[keep]
    when = w.win.day_start(0) + target * DAY + time_of_day(rng, target.size)
    rows = new[later].with_columns(
        updated_at=timestamps(rng, when),
        status=pl.Series(np.where(refunded, "refunded", "cancelled"), dtype=pl.String),
        _day=pl.Series(target, dtype=pl.Int64),
    )
    if w.pending_orders is None:
        w.pending_orders = rows
    else:
        w.pending_orders = pl.concat([w.pending_orders, rows])
