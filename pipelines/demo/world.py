"""The sample shop's world (pipelines/demo/sample_data.py): who buys and browses how much
and until when, the products and their prices, and the anonymous visitors; what the orders
and web events of each day are drawn from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from pipelines.demo.contacts import Contacts, make_contacts
from pipelines.demo.timeline import DAY, Window

N_SKUS = 2_000


ORDERS_PER_CONTACT_730D = 10.0
EVENTS_PER_CONTACT_730D = 50.0
MEAN_SESSION_EVENTS = 5.0
ANONYMOUS_EVENT_SHARE = 0.3
SIGNUP_SESSION_SHARE = 0.6


@dataclass
class _Sampler:
    """Draws contacts for a day, proportional to weight, among those active that day."""

    cum: np.ndarray
    n_before: np.ndarray
    stop_day: np.ndarray
    rate: float

    def draw(self, rng: np.random.Generator, d: int, season: float) -> np.ndarray:
        eligible = int(self.n_before[d])
        total = self.cum[eligible - 1] if eligible else 0.0
        k = rng.poisson(self.rate * season * total)
        idx = np.searchsorted(self.cum, rng.random(k) * total, side="right")
        idx = np.minimum(idx, max(eligible - 1, 0))
        return idx[self.stop_day[idx] > d]


def _sampler(weights: np.ndarray, w: World, stop_day: np.ndarray, target_total: float) -> _Sampler:
    days = w.win.days
    start = np.clip(w.contacts.create_day + 1, 0, days)
    stop = np.clip(stop_day, 0, days)
    live = start < stop
    delta = np.bincount(start[live], weights[live], minlength=days + 1)
    delta -= np.bincount(stop[live], weights[live], minlength=days + 1)
    # Expected draws = rate * sum(season * active weight); solve the rate for the target.
    exposure = float((w.win.season * np.cumsum(delta)[:days]).sum())
    rate = target_total / exposure if exposure > 0 else 0.0
    return _Sampler(np.cumsum(weights), w.n_before, stop_day, rate)


@dataclass
class World:
    win: Window
    contacts: Contacts
    n_before: np.ndarray
    erase_order: np.ndarray
    erase_sorted: np.ndarray
    basket: np.ndarray
    n_devices: np.ndarray
    sku_cum: np.ndarray
    sku_cents: np.ndarray
    anon_cum: np.ndarray
    anon_first_seen: np.ndarray
    anon_rate: float
    orders: _Sampler = field(init=False)
    visits: _Sampler = field(init=False)
    next_order: int = 1
    next_event: int = 1
    pending_orders: pl.DataFrame | None = None
    late_events: pl.DataFrame | None = None

    def erasures_on(self, d: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.erase_sorted, [d, d + 1])
        return np.sort(self.erase_order[lo:hi])


def build_world(rng: np.random.Generator, n: int, win: Window) -> World:
    c = make_contacts(rng, n, win)
    scale = n * win.days / 730
    popularity = 1.0 / np.arange(1, N_SKUS + 1) ** 1.1
    anon_weight = rng.lognormal(0.0, 1.2, size=n)
    w = World(
        win=win,
        contacts=c,
        n_before=np.searchsorted(c.create_day, np.arange(win.days + 1), side="left"),
        erase_order=(erase_order := np.argsort(c.erase_day, kind="stable")),
        erase_sorted=c.erase_day[erase_order],
        basket=rng.lognormal(0.0, 0.35, size=n),
        n_devices=1 + (rng.random(n) < 0.35) + (rng.random(n) < 0.1),
        sku_cum=np.cumsum(rng.permutation(popularity)),
        sku_cents=_prices(rng),
        anon_cum=np.cumsum(anon_weight),
        anon_first_seen=win.start_s - rng.integers(0, 400 * DAY, size=n),
        anon_rate=ANONYMOUS_EVENT_SHARE * EVENTS_PER_CONTACT_730D * scale / MEAN_SESSION_EVENTS,
    )
    w.anon_rate /= win.season.sum()
    propensity, stop_day = _purchase_propensity(rng, c, win.days)
    w.orders = _sampler(propensity, w, stop_day, ORDERS_PER_CONTACT_730D * scale)
    browse = (0.3 + propensity / max(propensity.mean(), 1e-9)) * rng.lognormal(0.0, 0.7, n)
    per_contact = (1 - ANONYMOUS_EVENT_SHARE) * EVENTS_PER_CONTACT_730D / MEAN_SESSION_EVENTS
    # Sign-up sessions of new contacts come on top of sampled visits: take them out of the
    # budget, but not all of it, or a short window would have no returning visitors at all.
    budget = per_contact * scale
    signups = SIGNUP_SESSION_SHARE * (n - w.n_before[0])
    w.visits = _sampler(browse, w, stop_day, max(budget - signups, budget / 2))
    return w


def _prices(rng: np.random.Generator) -> np.ndarray:
    dollars = np.maximum(np.round(rng.lognormal(np.log(35), 0.7, size=N_SKUS)), 1)
    return dollars.astype(np.int64) * 100 - 1  # charm pricing: 34.99


def _purchase_propensity(
    rng: np.random.Generator, c: Contacts, days: int
) -> tuple[np.ndarray, np.ndarray]:
    # Heavy tail: ~38% never buy, most buyers buy a few times, a few buy very often.
    buyer = rng.random(c.n) < 0.62
    propensity = np.where(buyer, np.minimum(rng.lognormal(0.0, 1.3, size=c.n), 20.0), 0.0)
    # Some buyers lapse for good (reactivation material); erased contacts stop too.
    first_day = np.maximum(c.create_day + 1, 0)
    churn = first_day + (rng.random(c.n) * (1.3 * days - first_day)).astype(np.int64)
    churn = np.where(rng.random(c.n) < 0.35, churn, days)
    return propensity, np.minimum(churn, c.erase_day)
