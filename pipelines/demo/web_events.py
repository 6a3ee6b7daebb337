"""The sample web events extract (web_events.csv) of each day (pipelines/demo/sample_data.py):
GA4-like sessions of known, logging-in, signing-up and anonymous visitors through the shop's
funnel, and a few events of the day before sent again."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.demo.contacts import Contacts
from pipelines.demo.spelling import ids, money, timestamps
from pipelines.demo.timeline import DAY, time_of_day
from pipelines.demo.world import (
    MEAN_SESSION_EVENTS,
    N_SKUS,
    SIGNUP_SESSION_SHARE,
    World,
)

WEB_COLUMNS = (
    "event_id",
    "event_timestamp",
    "event_name",
    "anonymous_id",
    "contact_id",
    "page_url",
    "sku",
    "value",
)


SHOP = "https://shop.example.com"


EVENT_NAMES = pl.Series(
    ("page_view", "view_item", "add_to_cart", "begin_checkout", "purchase", "login", "sign_up")
)
FUNNEL_P = (0.52, 0.28, 0.11, 0.055, 0.035)  # after the landing page_view
LOGIN, SIGN_UP = 5, 6
CATEGORIES = ("new", "women", "men", "kids", "home", "sale", "outdoor", "accessories")
SEARCHES = ("rain+jacket", "running+shoes", "linen+shirt", "gift+card", "caf%C3%A9+mug")
CAMPAIGNS = ("spring_sale", "black_friday", "winback", "welcome")
STATIC_PATHS = (
    "/",
    *(f"/c/{c}" for c in CATEGORIES),
    "/c/sale?sort=price,asc",
    *(f"/search?q={s}" for s in SEARCHES),
    *(f"/?utm_source=newsletter&utm_medium=email&utm_campaign={c}" for c in CAMPAIGNS),
    "/checkout",
    "/checkout/complete",
    "/account/login",
    "/account/signup",
)
# First static path of each event that is not a product page (begin_checkout .. sign_up).
NAME_PATH = {3: len(STATIC_PATHS) - 4, 4: len(STATIC_PATHS) - 3, 5: len(STATIC_PATHS) - 2}
NAME_PATH[6] = len(STATIC_PATHS) - 1
N_BROWSE_PATHS = len(STATIC_PATHS) - 4


def web_for_day(rng: np.random.Generator, w: World, d: int) -> pl.DataFrame:
    events = _expand_sessions(rng, _sessions(rng, w, d), w.win.day_start(d) + DAY - 1)
    frame = _event_frame(rng, w, events)
    late = frame.filter(rng.random(frame.height) < 0.005)
    if w.late_events is not None:
        frame = pl.concat([frame, w.late_events])
    w.late_events = late  # exporters re-send a few events with the next day's file
    return frame


def _sessions(rng: np.random.Generator, w: World, d: int) -> dict[str, np.ndarray]:
    c, day0 = w.contacts, w.win.day_start(d)
    known = w.visits.draw(rng, d, w.win.season[d])
    # 0 anonymous on a known device, 1 logs in mid-session, 2 logged in throughout.
    kind = rng.choice(3, size=known.size, p=(0.2, 0.25, 0.55))
    device = (rng.random(known.size) * w.n_devices[known]).astype(np.int64)
    signups = np.arange(w.n_before[d], w.n_before[d + 1])
    signups = signups[rng.random(signups.size) < SIGNUP_SESSION_SHARE]
    anon = np.searchsorted(
        w.anon_cum, rng.random(rng.poisson(w.anon_rate * w.win.season[d])) * w.anon_cum[-1]
    )
    anon = np.minimum(anon, c.n - 1)
    cookie = np.concatenate([known * 3 + device, signups * 3, 3 * c.n + anon])
    # A contact's devices were first seen some (cookie-specific) time before sign-up.
    before_signup = 3600 + cookie * 2_654_435_761 % (45 * DAY)
    first_seen = np.concatenate(
        [c.created_at[known], c.created_at[signups], w.anon_first_seen[anon]]
    )
    return {
        "cookie": cookie,
        "first_seen": first_seen - np.where(cookie < 3 * c.n, before_signup, 0),
        "contact": np.concatenate([known, signups, np.full(anon.size, -1)]),
        "kind": np.concatenate([kind, np.full(signups.size, 3), np.full(anon.size, 4)]),
        "start": np.concatenate(
            [
                day0 + time_of_day(rng, known.size),
                np.maximum(c.created_at[signups] - rng.integers(30, 900, signups.size), day0),
                day0 + time_of_day(rng, anon.size),
            ]
        ),
    }


def _expand_sessions(
    rng: np.random.Generator, s: dict[str, np.ndarray], day_end: int
) -> dict[str, np.ndarray]:
    kind = s["kind"]
    logs_in = (kind == 1) | (kind == 3)
    length = rng.geometric(1 / MEAN_SESSION_EVENTS, size=kind.size)
    length = np.where(logs_in, np.maximum(length, 2), length)
    sess = np.repeat(np.arange(kind.size), length)
    first = np.cumsum(length) - length
    pos = np.arange(sess.size) - first[sess]
    gaps = np.where(pos == 0, 0, rng.exponential(40.0, size=sess.size).astype(np.int64) + 1)
    elapsed = np.cumsum(gaps)
    ts = np.minimum(s["start"][sess] + elapsed - elapsed[first][sess], day_end)
    login_at = 1 + (rng.random(kind.size) * (length - 1)).astype(np.int64)
    at_login = logs_in[sess] & (pos == login_at[sess])
    name = np.where(pos == 0, 0, rng.choice(len(FUNNEL_P), size=sess.size, p=FUNNEL_P))
    name = np.where(at_login, np.where(kind[sess] == 3, SIGN_UP, LOGIN), name)
    logged = (kind[sess] == 2) | (logs_in[sess] & (pos >= login_at[sess]))
    order = np.argsort(ts, kind="stable")
    return {
        "ts": ts[order],
        "name": name[order],
        "session": sess[order],
        "contact": np.where(logged, s["contact"][sess], -1)[order],
        "cookie": s["cookie"][sess][order],
        "first_seen": s["first_seen"][sess][order],
    }


def _draw_skus(rng: np.random.Generator, w: World, k: int) -> np.ndarray:
    idx = np.searchsorted(w.sku_cum, rng.random(k) * w.sku_cum[-1], side="right")
    return np.minimum(idx, N_SKUS - 1)


def _event_frame(rng: np.random.Generator, w: World, ev: dict[str, np.ndarray]) -> pl.DataFrame:
    k, name = ev["ts"].size, ev["name"]
    focus = _draw_skus(rng, w, int(ev["session"].max(initial=-1)) + 1)
    sku = np.where(rng.random(k) < 0.7, focus[ev["session"]], _draw_skus(rng, w, k))
    sku = np.where((name >= 1) & (name <= 4), sku, -1)
    product_page = rng.random(k) < 0.35
    url_sku = np.where(name == 0, np.where(product_page, _draw_skus(rng, w, k), -1), sku)
    url_sku = np.where(name >= 3, -1, url_sku)
    path = np.where(name == 0, rng.integers(0, N_BROWSE_PATHS, size=k), 0)
    for code, static in NAME_PATH.items():
        path = np.where(name == code, static, path)
    cents = w.sku_cents[np.maximum(sku, 0)] * rng.integers(1, 4, size=k)
    w.next_event += k
    frame = pl.DataFrame(
        {
            "event_id": ids("E", np.arange(w.next_event - k, w.next_event), 12),
            "event_timestamp": timestamps(rng, ev["ts"]),
            "event_name": EVENT_NAMES.gather(name),
            "anonymous_id": _cookie_ids(ev["cookie"], ev["first_seen"]),
            "contact_id": _contact_ids(w.contacts, ev["contact"]),
            "url_sku": _sku_codes(url_sku),
            "path": pl.Series(STATIC_PATHS).gather(path),
            "sku": _sku_codes(sku),
            "value": money(cents).scatter(np.flatnonzero((name != 2) & (name != 4)), None),
        }
    )
    url = pl.when(pl.col("url_sku").is_not_null()).then(SHOP + "/p/" + pl.col("url_sku"))
    return frame.with_columns(page_url=url.otherwise(SHOP + pl.col("path"))).select(WEB_COLUMNS)


def _sku_codes(sku: np.ndarray) -> pl.Series:
    codes = ids("SKU-", np.maximum(sku, 0) + 1, 5)
    return codes.scatter(np.flatnonzero(sku < 0), None)


def _contact_ids(c: Contacts, idx: np.ndarray) -> pl.Series:
    return ids("C", np.maximum(idx, 0) + 1, c.id_width).scatter(np.flatnonzero(idx < 0), None)


def _cookie_ids(cookie: np.ndarray, first_seen: np.ndarray) -> pl.Series:
    # GA4 user_pseudo_id shape: a scrambled number (a bijection mod a prime, so cookies
    # never collide) and the first-visit epoch second.
    scrambled = pl.Series((cookie + 1) * 1_583_458_089 % 2_147_483_647, dtype=pl.Int64)
    return scrambled.cast(pl.String) + "." + pl.Series(first_seen, dtype=pl.Int64).cast(pl.String)
