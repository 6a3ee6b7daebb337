"""The sample order lines extract (order_lines.csv) of each day (pipelines/demo/sample_data.py):
the lines of the day's new orders, adding up exactly to each order's total, but for a few
planted ones that do not (for the report of mismatched orders). A later status change of an
order lands no lines: they follow their order.

Everything is drawn from a random generator of its own (never the landing's), vectorised
over the day's orders."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.demo.catalogue import Catalogue
from pipelines.demo.spelling import ids, money
from pipelines.demo.world import N_SKUS, World

LINE_COLUMNS = (
    "order_id",
    "line_id",
    "sku",
    "product_name",
    "category",
    "quantity",
    "unit_price",
)
MEAN_EXTRA_LINES = 1.5  # an order has 1 + Poisson(1.5) lines (at most MAX_LINES) ...
MAX_LINES = 8
COMPANION_TAKEN = 0.4  # ... and a line after another takes its companion this often
MISMATCHED_SHARE = 0.002  # orders whose lines deliberately do not add up


def lines_for_day(
    rng: np.random.Generator, w: World, catalogue: Catalogue, orders: pl.DataFrame
) -> pl.DataFrame:
    """The lines of the day's new orders (those `orders` holds as completed: a status change
    is never a new order)."""
    new = orders.filter(pl.col("status") == "completed")
    n = new.height
    total = _cents(new["total_amount"])
    count = 1 + np.minimum(rng.poisson(MEAN_EXTRA_LINES, size=n), MAX_LINES - 1)
    of = np.repeat(np.arange(n), count)
    first = np.cumsum(count) - count
    position = np.arange(of.size) - first[of]
    last = position == count[of] - 1
    sku = np.minimum(
        np.searchsorted(w.sku_cum, rng.random(of.size) * w.sku_cum[-1], side="right"), N_SKUS - 1
    )
    after = np.flatnonzero(position > 0)
    companion = catalogue.companion[sku[after - 1]]
    bundled = (companion >= 0) & (rng.random(after.size) < COMPANION_TAKEN)
    sku[after[bundled]] = companion[bundled]
    # The same product twice in a row is one line of two units, not two lines.
    twice = np.flatnonzero(sku[after] == sku[after - 1])
    sku[after[twice]] = (sku[after[twice]] + 1) % N_SKUS
    quantity = 1 + (rng.random(of.size) < 0.2) + (rng.random(of.size) < 0.05)
    quantity = np.where(last, 1, quantity)  # the last line takes the rest to the cent
    unit = _fitted_prices(w.sku_cents[sku], quantity, last, of, total)
    planted = np.flatnonzero(last & (rng.random(of.size) < MISMATCHED_SHARE))
    unit[planted] += rng.integers(100, 2_000, size=planted.size)
    return pl.DataFrame(
        {
            "order_id": new["order_id"].gather(of),
            "line_id": pl.Series(position + 1, dtype=pl.Int64).cast(pl.String),
            "sku": ids("SKU-", sku + 1, 5),
            "product_name": catalogue.product_name.gather(sku),
            "category": catalogue.category_name.gather(sku),
            "quantity": pl.Series(quantity, dtype=pl.Int64),
            "unit_price": money(unit),
        }
    )


def _fitted_prices(
    list_cents: np.ndarray, quantity: np.ndarray, last: np.ndarray, of: np.ndarray, total
) -> np.ndarray:
    """Unit prices in cents: the list prices scaled to the order's total (a discount or a
    surcharge), rounded down, and the last line (one unit) the rest, so that the lines add up
    exactly; a free order's lines are free."""
    listed = np.bincount(of, weights=quantity * list_cents, minlength=total.size).astype(np.int64)
    unit = list_cents * total[of] // np.maximum(listed[of], 1)
    paid = np.bincount(of, weights=np.where(last, 0, quantity * unit), minlength=total.size)
    return np.where(last, total[of] - paid.astype(np.int64)[of], unit)


def _cents(amounts: pl.Series) -> np.ndarray:
    """`52.00` -> 5200: the sample spells every amount with two decimals."""
    return amounts.str.replace(".", "", literal=True).cast(pl.Int64).to_numpy()
