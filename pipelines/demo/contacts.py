"""The sample contacts (pipelines/demo/sample_data.py): who they are when the window
starts, each with a creation time, a birthday (some on the last day, some on 29 February), a
place, a consent, an e-mail address (a few empty, invalid or shared), and a planned erasure;
and their addresses rendered as the CRM spells them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import polars as pl

from pipelines.demo.names import DOMAINS, FIRST, LAST, PLACE_P, PLACES
from pipelines.demo.timeline import (
    DAY,
    EPOCH,
    Window,
    leap_years,
    shift_years,
    time_of_day,
    ymd_days,
)

# E-mail formats by code: 0 first.last, 1 firstlast, 2 flast, 3 first_last (all valid), then
# 4 no @ at all, 5 no dot in the domain (a@b), 6 double @, 7 a space inside; -1 = empty.
VALID_FORMATS_P = (0.55, 0.2, 0.15, 0.1)
N_FORMATS = 8
EMAIL_SEPARATORS = pl.Series((".", "", "_", " ", "@", "@@"))
EMAIL_SEPARATOR = np.array([0, 1, 1, 2, 0, 4, 0, 3])  # between first and last name
EMAIL_AT = np.array([4, 4, 4, 4, 0, 1, 5, 4])  # between number and domain
EMAIL_INITIAL = np.array([0, 0, 1, 0, 0, 0, 0, 0])
EMAIL_HAS_DOMAIN = np.array([1, 1, 1, 1, 1, 0, 1, 1], dtype=bool)


EMAIL_FIRSTS = pl.concat([FIRST.slug, FIRST.slug.str.slice(0, 1)])
EMAIL_DOMAINS = pl.Series((*DOMAINS, ""))


@dataclass
class Contacts:
    n: int
    created_at: np.ndarray
    create_day: np.ndarray
    updated_at: np.ndarray
    first: np.ndarray
    last: np.ndarray
    first_missing: np.ndarray
    last_missing: np.ndarray
    birth: np.ndarray
    birth_present: np.ndarray
    place: np.ndarray
    country_missing: np.ndarray
    tz_missing: np.ndarray
    opt_in: np.ndarray
    erase_day: np.ndarray
    own_num: np.ndarray
    email_changes: np.ndarray
    # Parameters that render the current e-mail address (see render_emails).
    e_first: np.ndarray = field(init=False)
    e_last: np.ndarray = field(init=False)
    e_num: np.ndarray = field(init=False)
    e_ver: np.ndarray = field(init=False)
    e_dom: np.ndarray = field(init=False)
    e_fmt: np.ndarray = field(init=False)
    e_case: np.ndarray = field(init=False)
    e_pad: np.ndarray = field(init=False)

    @property
    def id_width(self) -> int:
        return max(7, len(str(self.n)))


def make_contacts(rng: np.random.Generator, n: int, win: Window) -> Contacts:
    created = _creation_times(rng, n, win)
    birth, birth_present = _birth_dates(rng, n, win.end)
    prime = _next_prime(max(n + 2, 999_983))
    c = Contacts(
        n=n,
        created_at=created,
        create_day=np.maximum((created - win.start_s) // DAY, -1),
        updated_at=_initial_updates(rng, created, win),
        first=FIRST.draw(rng, n),
        last=LAST.draw(rng, n),
        first_missing=rng.random(n) < 0.015,
        last_missing=rng.random(n) < 0.015,
        birth=birth,
        birth_present=birth_present,
        place=rng.choice(len(PLACES), size=n, p=PLACE_P).astype(np.int16),
        country_missing=rng.random(n) < 0.01,
        tz_missing=rng.random(n) < 0.05,
        opt_in=rng.random(n) < 0.8,
        erase_day=np.full(n, win.days, dtype=np.int64),
        own_num=(np.arange(1, n + 1, dtype=np.int64) * 611_953) % prime,
        email_changes=np.zeros(n, dtype=np.int32),
    )
    _initial_emails(rng, c)
    _plan_erasures(rng, c, win.days)
    return c


def _creation_times(rng: np.random.Generator, n: int, win: Window) -> np.ndarray:
    n_pre = round(0.4 * n)
    # Skewed towards the recent past: the list grew over the three years before the window.
    back = (3 * 365 * DAY * rng.random(n_pre) ** 1.5).astype(np.int64)
    pre = win.start_s - 1 - back
    weights = win.season * np.linspace(0.8, 1.2, win.days)
    day = np.repeat(np.arange(win.days), rng.multinomial(n - n_pre, weights / weights.sum()))
    new = win.start_s + day * DAY + time_of_day(rng, day.size)
    return np.sort(np.concatenate([pre, new]))


def _initial_updates(rng: np.random.Generator, created: np.ndarray, win: Window) -> np.ndarray:
    touched = np.where(rng.random(created.size) < 0.5, rng.random(created.size), 0.0)
    day_end = win.start_s + (np.maximum(created - win.start_s, 0) // DAY + 1) * DAY - 1
    horizon = np.where(created < win.start_s, win.start_s - 1, day_end)
    later = created + rng.integers(0, 600, size=created.size)
    stretched = created + (touched * (horizon - created)).astype(np.int64)
    return np.minimum(np.maximum(later, stretched), horizon)


def _birth_dates(rng: np.random.Generator, n: int, end: date) -> tuple[np.ndarray, np.ndarray]:
    youngest = (shift_years(end, -18) - EPOCH).days
    oldest = (shift_years(end, -90) - EPOCH).days + 1
    birth = youngest - (rng.beta(1.8, 3.0, size=n) * (youngest - oldest)).astype(np.int64)
    present = rng.random(n) < 0.85
    r = _stratified(rng, n)
    cohort, leap = np.flatnonzero(r < 0.01), np.flatnonzero((r >= 0.01) & (r < 0.014))
    present[cohort] = present[leap] = True
    birth[leap] = ymd_days(leap_years(rng, leap.size, end.year), 2, 29)
    if (end.month, end.day) in ((2, 28), (2, 29)):
        # 29 February birthdays are celebrated on 28 February in common years: plant both.
        birth[cohort[::2]] = ymd_days(end.year - rng.integers(19, 90, cohort[::2].size), 2, 28)
        birth[cohort[1::2]] = ymd_days(leap_years(rng, cohort[1::2].size, end.year), 2, 29)
    else:
        birth[cohort] = ymd_days(end.year - rng.integers(19, 90, cohort.size), end.month, end.day)
    return birth, present


def _initial_emails(rng: np.random.Generator, c: Contacts) -> None:
    c.e_first, c.e_last = c.first.copy(), c.last.copy()
    c.e_num, c.e_ver = c.own_num.copy(), np.zeros(c.n, dtype=np.int32)
    c.e_dom = rng.choice(len(DOMAINS), size=c.n, p=(0.6, 0.25, 0.15)).astype(np.int8)
    c.e_fmt = email_formats(rng, c.n, _stratified(rng, c.n))
    c.e_case, c.e_pad = email_styles(rng, c.n)
    _share_emails(rng, c)


def email_formats(rng: np.random.Generator, k: int, r: np.ndarray) -> np.ndarray:
    fmt = rng.choice(len(VALID_FORMATS_P), size=k, p=VALID_FORMATS_P).astype(np.int8)
    fmt[r < 0.02] = -1
    bad = (r >= 0.02) & (r < 0.03)
    fmt[bad] = rng.integers(len(VALID_FORMATS_P), N_FORMATS, size=int(bad.sum()))
    return fmt


def email_styles(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
    r = rng.random(k)
    case = np.where(r < 0.04, 1, np.where(r < 0.055, 2, 0)).astype(np.int8)
    return case, rng.random(k) < 0.02


def _share_emails(rng: np.random.Generator, c: Contacts) -> None:
    k = max(1, round(0.003 * c.n)) if c.n >= 4 else 0
    pick = rng.choice(c.n, size=2 * k, replace=False)
    sharer, owner = pick[:k], pick[k:]
    c.e_fmt[owner] = np.maximum(c.e_fmt[owner], 0) % len(VALID_FORMATS_P)
    for name in ("e_first", "e_last", "e_num", "e_ver", "e_dom", "e_fmt"):
        getattr(c, name)[sharer] = getattr(c, name)[owner]


def _plan_erasures(rng: np.random.Generator, c: Contacts, days: int) -> None:
    first_day = np.maximum(c.create_day + 1, 1)
    eligible = np.flatnonzero(first_day < days)
    k = min(eligible.size, max(1, round(0.002 * c.n)))
    chosen = rng.choice(eligible, size=k, replace=False)
    span = days - first_day[chosen]
    c.erase_day[chosen] = first_day[chosen] + (rng.random(k) * span).astype(np.int64)


def _stratified(rng: np.random.Generator, k: int) -> np.ndarray:
    # Uniforms with exact quantiles, so "1% of contacts" is 1% even in a 300-contact test.
    return (rng.permutation(k) + 0.5) / max(k, 1)


def _next_prime(m: int) -> int:
    while any(m % p == 0 for p in range(2, int(m**0.5) + 1)):
        m += 1
    return m


def render_emails(c: Contacts, idx: np.ndarray) -> pl.Series:
    fmt = np.maximum(c.e_fmt[idx], 0)
    version = pl.Series(c.e_ver[idx], dtype=pl.Int64)
    pieces = pl.DataFrame(
        {
            "first": EMAIL_FIRSTS.gather(c.e_first[idx] + EMAIL_INITIAL[fmt] * len(FIRST.p)),
            "sep": EMAIL_SEPARATORS.gather(EMAIL_SEPARATOR[fmt]),
            "last": LAST.slug.gather(c.e_last[idx]),
            "num": pl.Series(c.e_num[idx], dtype=pl.Int64).cast(pl.String),
            "ver": ("." + version.cast(pl.String)).scatter(np.flatnonzero(c.e_ver[idx] == 0), ""),
            "at": EMAIL_SEPARATORS.gather(EMAIL_AT[fmt]),
            "dom": EMAIL_DOMAINS.gather(
                np.where(EMAIL_HAS_DOMAIN[fmt], c.e_dom[idx], len(DOMAINS))
            ),
        }
    )
    emails = pieces.select(pl.concat_str(pl.all())).to_series().alias("email")
    emails = emails.scatter(np.flatnonzero(c.e_fmt[idx] < 0), None)
    return styled(emails, c.e_case[idx], c.e_pad[idx])


def styled(emails: pl.Series, case: np.ndarray, pad: np.ndarray) -> pl.Series:
    titled, upper, padded = (np.flatnonzero(m) for m in (case == 1, case == 2, pad))
    emails = emails.scatter(titled, emails.gather(titled).str.to_titlecase())
    emails = emails.scatter(upper, emails.gather(upper).str.to_uppercase())
    return emails.scatter(padded, " " + emails.gather(padded) + " ")
