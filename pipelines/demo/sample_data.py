"""Deterministic, vectorized generator of a realistic sample landing of nightly retail extracts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

DAY = 86_400
EPOCH = date(1970, 1, 1)
TS_FORMAT = "%Y-%m-%dT%H:%M:%S"
SHOP = "https://shop.example.com"

CONTACT_COLUMNS = (
    "contact_id",
    "email",
    "first_name",
    "last_name",
    "birth_date",
    "country",
    "timezone",
    "email_opt_in",
    "created_at",
    "updated_at",
    "is_deleted",
)
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
EXTRACTS = (
    ("crm_contacts.csv", CONTACT_COLUMNS),
    ("orders.csv", ORDER_COLUMNS),
    ("web_events.csv", WEB_COLUMNS),
)

# (display, ascii slug used to build e-mail addresses)
FIRST_NAMES = (
    ("James", "james"), ("Mary", "mary"), ("John", "john"), ("Patricia", "patricia"),
    ("Robert", "robert"), ("Jennifer", "jennifer"), ("Michael", "michael"), ("Linda", "linda"),
    ("David", "david"), ("Sarah", "sarah"), ("Emma", "emma"), ("Oliver", "oliver"),
    ("Sophie", "sophie"), ("Lucas", "lucas"), ("Hannah", "hannah"), ("Liam", "liam"),
    ("Olivia", "olivia"), ("Noah", "noah"), ("Mia", "mia"), ("José", "jose"), ("María", "maria"),
    ("Zoë", "zoe"), ("Łukasz", "lukasz"), ("Søren", "soren"), ("Björn", "bjorn"),
    ("Chloé", "chloe"), ("François", "francois"), ("Jürgen", "jurgen"), ("Ngọc", "ngoc"),
    ("Minh", "minh"), ("李", "li"), ("芳", "fang"), ("Yuki", "yuki"), ("Haruto", "haruto"),
    ("さくら", "sakura"), ("Aoife", "aoife"), ("Siobhán", "siobhan"), ("Priya", "priya"),
    ("Aarav", "aarav"), ("João", "joao"), ("Ana", "ana"), ("Lars", "lars"), ("Ingrid", "ingrid"),
    ("Zofia", "zofia"), ("Małgorzata", "malgorzata"), ("Anaïs", "anais"), ("Renée", "renee"),
    ("Mohammed", "mohammed"), ("Fatima", "fatima"), ("Kenji", "kenji"), ("Matteo", "matteo"),
    ("Giulia", "giulia"), ("Daan", "daan"), ("Sanne", "sanne"), ("Lucía", "lucia"),
)  # fmt: skip
RARE_FIRST_NAMES = (
    ('Robert "Bob"', "bob"), ('Elizabeth "Liz"', "liz"), ("Mary, Kate", "marykate"),
    (" Tom ", "tom"), ("J.R.", "jr"),
)  # fmt: skip
LAST_NAMES = (
    ("Smith", "smith"), ("Johnson", "johnson"), ("Williams", "williams"), ("Brown", "brown"),
    ("Jones", "jones"), ("Miller", "miller"), ("Davis", "davis"), ("Müller", "muller"),
    ("Schmidt", "schmidt"), ("Schröder", "schroder"), ("O'Brien", "obrien"),
    ("O'Connor", "oconnor"), ("Nguyễn", "nguyen"), ("Trần", "tran"), ("Kowalski", "kowalski"),
    ("Wiśniewska", "wisniewska"), ("Søndergaard", "sondergaard"), ("Jørgensen", "jorgensen"),
    ("Andersson", "andersson"), ("Öberg", "oberg"), ("García", "garcia"),
    ("Martínez", "martinez"), ("Pérez", "perez"), ("Dubois", "dubois"), ("Lefèvre", "lefevre"),
    ("Moreau", "moreau"), ("van der Berg", "vanderberg"), ("de Vries", "devries"),
    ("Janssen", "janssen"), ("Rossi", "rossi"), ("Bianchi", "bianchi"), ("Tanaka", "tanaka"),
    ("Suzuki", "suzuki"), ("佐藤", "sato"), ("李", "li"), ("王", "wang"), ("张", "zhang"),
    ("Patel", "patel"), ("Singh", "singh"), ("Silva", "silva"), ("Gonçalves", "goncalves"),
    ("Murphy", "murphy"), ("Kelly", "kelly"), ("Taylor", "taylor"), ("Wilson", "wilson"),
    ("Lee", "lee"), ("Kim", "kim"), ("Cohen", "cohen"), ("Al-Sayed", "alsayed"),
    ("Smith-Jones", "smithjones"),
)  # fmt: skip
RARE_LAST_NAMES = (
    ("Smith, Jr.", "smith"), ("Brown, III", "brown"), ('O"Neil', "oneil"), ("Doe ", "doe"),
)  # fmt: skip
# (country, IANA timezone, share of contacts)
PLACES = (
    ("US", "America/New_York", 12), ("US", "America/Chicago", 7), ("US", "America/Denver", 3),
    ("US", "America/Los_Angeles", 8), ("GB", "Europe/London", 10), ("DE", "Europe/Berlin", 9),
    ("FR", "Europe/Paris", 7), ("ES", "Europe/Madrid", 5), ("NL", "Europe/Amsterdam", 4),
    ("SE", "Europe/Stockholm", 3), ("DK", "Europe/Copenhagen", 2), ("PL", "Europe/Warsaw", 3),
    ("IT", "Europe/Rome", 4), ("IE", "Europe/Dublin", 2), ("JP", "Asia/Tokyo", 5),
    ("AU", "Australia/Sydney", 3), ("AU", "Australia/Perth", 1), ("BR", "America/Sao_Paulo", 3),
    ("CA", "America/Toronto", 3), ("CA", "America/Vancouver", 1),
    ("MX", "America/Mexico_City", 2), ("IN", "Asia/Kolkata", 2), ("VN", "Asia/Ho_Chi_Minh", 1),
    ("CN", "Asia/Shanghai", 1), ("NZ", "Pacific/Auckland", 1),
)  # fmt: skip
DOMAINS = ("example.com", "example.org", "example.net")
# E-mail formats by code: 0 first.last, 1 firstlast, 2 flast, 3 first_last (all valid), then
# 4 no @ at all, 5 no dot in the domain (a@b), 6 double @, 7 a space inside; -1 = empty.
VALID_FORMATS_P = (0.55, 0.2, 0.15, 0.1)
N_FORMATS = 8
EMAIL_SEPARATORS = pl.Series((".", "", "_", " ", "@", "@@"))
EMAIL_SEPARATOR = np.array([0, 1, 1, 2, 0, 4, 0, 3])  # between first and last name
EMAIL_AT = np.array([4, 4, 4, 4, 0, 1, 5, 4])  # between number and domain
EMAIL_INITIAL = np.array([0, 0, 1, 0, 0, 0, 0, 0])
EMAIL_HAS_DOMAIN = np.array([1, 1, 1, 1, 1, 0, 1, 1], dtype=bool)
OFFSETS = ("+01:00", "+02:00", "-05:00", "-08:00", "+09:00", "+05:30", "-03:00", "+00:00")
OFFSET_SECONDS = np.array([3600, 7200, -18000, -28800, 32400, 19800, -10800, 0], dtype=np.int64)
TS_SUFFIXES = pl.Series(("Z", "", *OFFSETS))
BOOLEANS = pl.Series(("true", "false", "TRUE", "1", "True", "FALSE", "0", "False"))
# Online retail traffic by UTC hour: quiet nights, evening peak.
HOURLY = np.array(
    [2, 1.5, 1, 1, 1, 1.5, 2.5, 3.5, 4.5, 5, 5.5, 6, 6.5, 6, 5.5, 5.5, 6, 6.5, 7.5, 8, 8, 7, 5, 3]
)
HOURLY_P = HOURLY / HOURLY.sum()
WEEKDAY = (1.0, 0.97, 0.95, 0.97, 1.02, 1.08, 1.12)
MONTH = (0.85, 0.85, 0.95, 0.95, 1.0, 0.95, 0.95, 1.0, 1.0, 1.05, 1.35, 1.55)

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
N_SKUS = 2_000

ORDERS_PER_CONTACT_730D = 10.0
EVENTS_PER_CONTACT_730D = 50.0
MEAN_SESSION_EVENTS = 5.0
ANONYMOUS_EVENT_SHARE = 0.3
SIGNUP_SESSION_SHARE = 0.6


def generate_landing(
    out_dir: Path, *, contacts: int, days: int, end: date, seed: int
) -> dict[str, int]:
    """Writes out_dir/YYYY-MM-DD/ folders for the `days` dates ending at `end` (inclusive).

    Returns row counts {"contacts": ..., "orders": ..., "web_events": ..., "folders": ...}:
    rows written over all folders (re-sent web events and later order rows included).
    """
    if contacts < 1 or days < 1:
        raise ValueError("contacts and days must be at least 1")
    rng = np.random.default_rng(seed)
    world = _build_world(rng, contacts, _Window.ending(end, days))
    counts = {"contacts": 0, "orders": 0, "web_events": 0, "folders": 0}
    for d in range(days):
        frames = (
            _contacts_for_day(rng, world, d),
            _orders_for_day(rng, world, d),
            _web_for_day(rng, world, d),
        )
        _write_folder(Path(out_dir) / world.win.date(d).isoformat(), frames)
        for key, frame in zip(("contacts", "orders", "web_events"), frames, strict=True):
            counts[key] += frame.height
        counts["folders"] += 1
    return counts


# --- calendar -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    start: date
    end: date
    days: int
    season: np.ndarray

    @classmethod
    def ending(cls, end: date, days: int) -> _Window:
        start = end - timedelta(days=days - 1)
        return cls(start, end, days, _season(start, days))

    @property
    def start_s(self) -> int:
        return (self.start - EPOCH).days * DAY

    def day_start(self, d: int) -> int:
        return self.start_s + d * DAY

    def date(self, d: int) -> date:
        return self.start + timedelta(days=d)


def _season(start: date, days: int) -> np.ndarray:
    out = np.empty(days)
    for d in range(days):
        day = start + timedelta(days=d)
        out[d] = WEEKDAY[day.weekday()] * MONTH[day.month - 1] * _holiday_factor(day)
    return out


def _holiday_factor(day: date) -> float:
    if day.month == 12:
        return 0.7 if day.day >= 25 else 1.0
    if day.month != 11:
        return 1.0
    first_thursday = 1 + (3 - date(day.year, 11, 1).weekday()) % 7
    after_black_friday = day.day - (first_thursday + 22)
    return {0: 2.5, 1: 1.6, 2: 1.6, 3: 2.0}.get(after_black_friday, 1.0)


def _time_of_day(rng: np.random.Generator, k: int) -> np.ndarray:
    return rng.choice(24, size=k, p=HOURLY_P) * 3600 + rng.integers(0, 3600, size=k)


def _shift_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a common year
        return day.replace(year=day.year + years, day=28)


def _ymd_days(y: np.ndarray, m: np.ndarray | int, d: np.ndarray | int) -> np.ndarray:
    years = (np.asarray(y) - 1970).astype("datetime64[Y]")
    months = years.astype("datetime64[M]") + (np.asarray(m) - 1)
    return (months.astype("datetime64[D]") + (np.asarray(d) - 1)).astype(np.int64)


def _leap_years(rng: np.random.Generator, k: int, end_year: int) -> np.ndarray:
    y = end_year - rng.integers(20, 80, size=k)
    y -= y % 4
    return y - np.where((y % 100 == 0) & (y % 400 != 0), 4, 0)


def _stratified(rng: np.random.Generator, k: int) -> np.ndarray:
    # Uniforms with exact quantiles, so "1% of contacts" is 1% even in a 300-contact test.
    return (rng.permutation(k) + 0.5) / max(k, 1)


def _next_prime(m: int) -> int:
    while any(m % p == 0 for p in range(2, int(m**0.5) + 1)):
        m += 1
    return m


# --- contacts -------------------------------------------------------------------------------


@dataclass
class _Contacts:
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
    # Parameters that render the current e-mail address (see _emails).
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


class _Pool:
    """A weighted list of (display, slug) names; rare entries exercise CSV quoting."""

    def __init__(self, common: tuple, rare: tuple, rare_share: float) -> None:
        entries = common + rare
        self.display = pl.Series([e[0] for e in entries])
        self.slug = pl.Series([e[1] for e in entries])
        common_p = [(1 - rare_share) / len(common)] * len(common)
        self.p = np.array(common_p + [rare_share / len(rare)] * len(rare))

    def draw(self, rng: np.random.Generator, k: int) -> np.ndarray:
        return rng.choice(len(self.p), size=k, p=self.p).astype(np.int16)


FIRST = _Pool(FIRST_NAMES, RARE_FIRST_NAMES, 0.012)
LAST = _Pool(LAST_NAMES, RARE_LAST_NAMES, 0.012)
PLACE_P = np.array([p[2] for p in PLACES], dtype=float) / sum(p[2] for p in PLACES)
EMAIL_FIRSTS = pl.concat([FIRST.slug, FIRST.slug.str.slice(0, 1)])
EMAIL_DOMAINS = pl.Series((*DOMAINS, ""))
COUNTRIES = pl.Series([p[0] for p in PLACES])
TIMEZONES = pl.Series([p[1] for p in PLACES])


def _make_contacts(rng: np.random.Generator, n: int, win: _Window) -> _Contacts:
    created = _creation_times(rng, n, win)
    birth, birth_present = _birth_dates(rng, n, win.end)
    prime = _next_prime(max(n + 2, 999_983))
    c = _Contacts(
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


def _creation_times(rng: np.random.Generator, n: int, win: _Window) -> np.ndarray:
    n_pre = round(0.4 * n)
    # Skewed towards the recent past: the list grew over the three years before the window.
    back = (3 * 365 * DAY * rng.random(n_pre) ** 1.5).astype(np.int64)
    pre = win.start_s - 1 - back
    weights = win.season * np.linspace(0.8, 1.2, win.days)
    day = np.repeat(np.arange(win.days), rng.multinomial(n - n_pre, weights / weights.sum()))
    new = win.start_s + day * DAY + _time_of_day(rng, day.size)
    return np.sort(np.concatenate([pre, new]))


def _initial_updates(rng: np.random.Generator, created: np.ndarray, win: _Window) -> np.ndarray:
    touched = np.where(rng.random(created.size) < 0.5, rng.random(created.size), 0.0)
    day_end = win.start_s + (np.maximum(created - win.start_s, 0) // DAY + 1) * DAY - 1
    horizon = np.where(created < win.start_s, win.start_s - 1, day_end)
    later = created + rng.integers(0, 600, size=created.size)
    stretched = created + (touched * (horizon - created)).astype(np.int64)
    return np.minimum(np.maximum(later, stretched), horizon)


def _birth_dates(rng: np.random.Generator, n: int, end: date) -> tuple[np.ndarray, np.ndarray]:
    youngest = (_shift_years(end, -18) - EPOCH).days
    oldest = (_shift_years(end, -90) - EPOCH).days + 1
    birth = youngest - (rng.beta(1.8, 3.0, size=n) * (youngest - oldest)).astype(np.int64)
    present = rng.random(n) < 0.85
    r = _stratified(rng, n)
    cohort, leap = np.flatnonzero(r < 0.01), np.flatnonzero((r >= 0.01) & (r < 0.014))
    present[cohort] = present[leap] = True
    birth[leap] = _ymd_days(_leap_years(rng, leap.size, end.year), 2, 29)
    if (end.month, end.day) in ((2, 28), (2, 29)):
        # 29 February birthdays are celebrated on 28 February in common years: plant both.
        birth[cohort[::2]] = _ymd_days(end.year - rng.integers(19, 90, cohort[::2].size), 2, 28)
        birth[cohort[1::2]] = _ymd_days(_leap_years(rng, cohort[1::2].size, end.year), 2, 29)
    else:
        birth[cohort] = _ymd_days(end.year - rng.integers(19, 90, cohort.size), end.month, end.day)
    return birth, present


def _initial_emails(rng: np.random.Generator, c: _Contacts) -> None:
    c.e_first, c.e_last = c.first.copy(), c.last.copy()
    c.e_num, c.e_ver = c.own_num.copy(), np.zeros(c.n, dtype=np.int32)
    c.e_dom = rng.choice(len(DOMAINS), size=c.n, p=(0.6, 0.25, 0.15)).astype(np.int8)
    c.e_fmt = _email_formats(rng, c.n, _stratified(rng, c.n))
    c.e_case, c.e_pad = _email_styles(rng, c.n)
    _share_emails(rng, c)


def _email_formats(rng: np.random.Generator, k: int, r: np.ndarray) -> np.ndarray:
    fmt = rng.choice(len(VALID_FORMATS_P), size=k, p=VALID_FORMATS_P).astype(np.int8)
    fmt[r < 0.02] = -1
    bad = (r >= 0.02) & (r < 0.03)
    fmt[bad] = rng.integers(len(VALID_FORMATS_P), N_FORMATS, size=int(bad.sum()))
    return fmt


def _email_styles(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
    r = rng.random(k)
    case = np.where(r < 0.04, 1, np.where(r < 0.055, 2, 0)).astype(np.int8)
    return case, rng.random(k) < 0.02


def _share_emails(rng: np.random.Generator, c: _Contacts) -> None:
    k = max(1, round(0.003 * c.n)) if c.n >= 4 else 0
    pick = rng.choice(c.n, size=2 * k, replace=False)
    sharer, owner = pick[:k], pick[k:]
    c.e_fmt[owner] = np.maximum(c.e_fmt[owner], 0) % len(VALID_FORMATS_P)
    for name in ("e_first", "e_last", "e_num", "e_ver", "e_dom", "e_fmt"):
        getattr(c, name)[sharer] = getattr(c, name)[owner]


def _plan_erasures(rng: np.random.Generator, c: _Contacts, days: int) -> None:
    first_day = np.maximum(c.create_day + 1, 1)
    eligible = np.flatnonzero(first_day < days)
    k = min(eligible.size, max(1, round(0.002 * c.n)))
    chosen = rng.choice(eligible, size=k, replace=False)
    span = days - first_day[chosen]
    c.erase_day[chosen] = first_day[chosen] + (rng.random(k) * span).astype(np.int64)


def _contacts_for_day(rng: np.random.Generator, w: _World, d: int) -> pl.DataFrame:
    c = w.contacts
    lo, hi = (0 if d == 0 else w.n_before[d]), w.n_before[d + 1]
    erased = w.erasures_on(d)
    changed = _pick_changes(rng, w, d)
    day0 = w.win.day_start(d)
    touched = np.concatenate([changed, erased])
    c.updated_at[touched] = day0 + _time_of_day(rng, touched.size)
    idx = np.concatenate([np.arange(lo, hi), touched])
    deleted = np.concatenate([np.zeros(idx.size - erased.size, bool), np.ones(erased.size, bool)])
    order = np.argsort(idx, kind="stable")
    return _contact_frame(rng, c, idx[order], deleted[order])


def _pick_changes(rng: np.random.Generator, w: _World, d: int) -> np.ndarray:
    existing = w.n_before[d]
    if d == 0 or existing == 0:
        return np.empty(0, dtype=np.int64)
    k = rng.binomial(existing, 0.003)
    idx = np.sort(rng.choice(existing, size=k, replace=False))
    idx = idx[w.contacts.erase_day[idx] > d]  # erased today or before: no plain update
    _apply_changes(rng, w.contacts, idx)
    return idx


def _apply_changes(rng: np.random.Generator, c: _Contacts, idx: np.ndarray) -> None:
    kind = rng.choice(4, size=idx.size, p=(0.45, 0.25, 0.2, 0.1))
    consent = idx[kind == 0]
    # Opt-ins flip back four times as often as opt-outs, so the ~80% opt-in share holds;
    # the rest of these rows touch a field outside the extract (only updated_at moves).
    flip = consent[~c.opt_in[consent] | (rng.random(consent.size) < 0.25)]
    c.opt_in[flip] = ~c.opt_in[flip]
    _new_emails(rng, c, idx[kind == 1])
    renamed = idx[kind == 2]
    c.last[renamed] = LAST.draw(rng, renamed.size)
    c.last_missing[renamed] = False
    moved = idx[kind == 3]
    c.place[moved] = rng.choice(len(PLACES), size=moved.size, p=PLACE_P)
    c.tz_missing[moved] = rng.random(moved.size) < 0.05


def _new_emails(rng: np.random.Generator, c: _Contacts, idx: np.ndarray) -> None:
    c.email_changes[idx] += 1
    c.e_first[idx], c.e_last[idx] = c.first[idx], c.last[idx]
    # Own number plus own change count keeps a new address unique, even for former sharers.
    c.e_num[idx], c.e_ver[idx] = c.own_num[idx], c.email_changes[idx]
    c.e_dom[idx] = rng.integers(0, len(DOMAINS), size=idx.size)
    c.e_fmt[idx] = _email_formats(rng, idx.size, rng.random(idx.size))
    c.e_case[idx], c.e_pad[idx] = _email_styles(rng, idx.size)


def _contact_frame(
    rng: np.random.Generator, c: _Contacts, idx: np.ndarray, deleted: np.ndarray
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "contact_id": _ids("C", idx + 1, c.id_width),
            "email": _emails(c, idx),
            "first_name": _pick(FIRST.display, c.first[idx], c.first_missing[idx]),
            "last_name": _pick(LAST.display, c.last[idx], c.last_missing[idx]),
            "birth_date": _dates(c.birth[idx], c.birth_present[idx]),
            "country": _pick(COUNTRIES, c.place[idx], c.country_missing[idx]),
            "timezone": _pick(TIMEZONES, c.place[idx], c.tz_missing[idx]),
            "email_opt_in": _booleans(rng, c.opt_in[idx], 0.04),
            "created_at": _timestamps(rng, c.created_at[idx]),
            "updated_at": _timestamps(rng, c.updated_at[idx]),
            "is_deleted": _booleans(rng, deleted, 0.0),
        }
    )


# --- rendering ------------------------------------------------------------------------------


def _ids(prefix: str, nums: np.ndarray, width: int) -> pl.Series:
    return prefix + pl.Series(nums, dtype=pl.Int64).cast(pl.String).str.zfill(width)


def _pick(pool: pl.Series, idx: np.ndarray, missing: np.ndarray) -> pl.Series:
    return pool.gather(pl.Series(idx, dtype=pl.Int64).scatter(np.flatnonzero(missing), None))


def _dates(days: np.ndarray, present: np.ndarray) -> pl.Series:
    s = pl.Series(days, dtype=pl.Int32).scatter(np.flatnonzero(~present), None)
    return s.cast(pl.Date).cast(pl.String)


def _booleans(rng: np.random.Generator, values: np.ndarray, variant_share: float) -> pl.Series:
    variant = rng.integers(0, 3, size=values.size)
    code = np.where(values, 2 + variant, 5 + variant)
    code = np.where(rng.random(values.size) < variant_share, code, np.where(values, 0, 1))
    return BOOLEANS.gather(code)


def _timestamps(rng: np.random.Generator, secs: np.ndarray) -> pl.Series:
    # Same instant, three spellings: UTC with Z, local time with its offset, and bare UTC.
    style = rng.choice(3, size=secs.size, p=(0.72, 0.1, 0.18))
    offset = rng.integers(0, len(OFFSETS), size=secs.size)
    local = secs + np.where(style == 2, OFFSET_SECONDS[offset], 0)
    text = pl.from_epoch(pl.Series(local, dtype=pl.Int64), time_unit="s").dt.strftime(TS_FORMAT)
    return text + TS_SUFFIXES.gather(np.where(style == 2, 2 + offset, style))


def _money(cents: np.ndarray) -> pl.Series:
    s = pl.Series(cents, dtype=pl.Int64)
    return (s // 100).cast(pl.String) + "." + (s % 100).cast(pl.String).str.zfill(2)


def _emails(c: _Contacts, idx: np.ndarray) -> pl.Series:
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
    return _styled(emails, c.e_case[idx], c.e_pad[idx])


def _styled(emails: pl.Series, case: np.ndarray, pad: np.ndarray) -> pl.Series:
    titled, upper, padded = (np.flatnonzero(m) for m in (case == 1, case == 2, pad))
    emails = emails.scatter(titled, emails.gather(titled).str.to_titlecase())
    emails = emails.scatter(upper, emails.gather(upper).str.to_uppercase())
    return emails.scatter(padded, " " + emails.gather(padded) + " ")


# --- world: who buys and browses how much ---------------------------------------------------


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


def _sampler(weights: np.ndarray, w: _World, stop_day: np.ndarray, target_total: float) -> _Sampler:
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
class _World:
    win: _Window
    contacts: _Contacts
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


def _build_world(rng: np.random.Generator, n: int, win: _Window) -> _World:
    c = _make_contacts(rng, n, win)
    scale = n * win.days / 730
    popularity = 1.0 / np.arange(1, N_SKUS + 1) ** 1.1
    anon_weight = rng.lognormal(0.0, 1.2, size=n)
    w = _World(
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
    rng: np.random.Generator, c: _Contacts, days: int
) -> tuple[np.ndarray, np.ndarray]:
    # Heavy tail: ~38% never buy, most buyers buy a few times, a few buy very often.
    buyer = rng.random(c.n) < 0.62
    propensity = np.where(buyer, np.minimum(rng.lognormal(0.0, 1.3, size=c.n), 20.0), 0.0)
    # Some buyers lapse for good (reactivation material); erased contacts stop too.
    first_day = np.maximum(c.create_day + 1, 0)
    churn = first_day + (rng.random(c.n) * (1.3 * days - first_day)).astype(np.int64)
    churn = np.where(rng.random(c.n) < 0.35, churn, days)
    return propensity, np.minimum(churn, c.erase_day)


# --- orders ---------------------------------------------------------------------------------


def _orders_for_day(rng: np.random.Generator, w: _World, d: int) -> pl.DataFrame:
    new = _new_orders(rng, w, d)
    _schedule_status_changes(rng, w, d, new)
    due = pl.DataFrame(schema={**new.schema, "_day": pl.Int64})
    if w.pending_orders is not None:
        due = w.pending_orders.filter(pl.col("_day") == d)
        w.pending_orders = w.pending_orders.filter(pl.col("_day") != d)
    return pl.concat([new, due.drop("_day")])


def _new_orders(rng: np.random.Generator, w: _World, d: int) -> pl.DataFrame:
    idx = w.orders.draw(rng, d, w.win.season[d])
    k, day0 = idx.size, w.win.day_start(d)
    at = day0 + _time_of_day(rng, k)
    order = np.argsort(at, kind="stable")
    idx, at = idx[order], at[order]
    updated = np.minimum(at + rng.integers(5, 1800, size=k), day0 + DAY - 1)
    guest = rng.random(k) < 0.08
    cents = np.round(rng.lognormal(np.log(5200), 0.8, size=k) * w.basket[idx]).astype(np.int64)
    cents[rng.random(k) < 0.015] = 0  # fully discounted / replacement orders
    w.next_order += k
    return pl.DataFrame(
        {
            "order_id": _ids("O", np.arange(w.next_order - k, w.next_order), 10),
            "contact_id": _ids("C", idx + 1, w.contacts.id_width).scatter(
                np.flatnonzero(guest), None
            ),
            "email": _order_emails(rng, w.contacts, idx, guest),
            "ordered_at": _timestamps(rng, at),
            "updated_at": _timestamps(rng, updated),
            "status": pl.Series(["completed"] * k, dtype=pl.String),
            "currency": pl.Series(["USD"] * k, dtype=pl.String),
            "total_amount": _money(cents),
        }
    )


def _order_emails(
    rng: np.random.Generator, c: _Contacts, idx: np.ndarray, guest: np.ndarray
) -> pl.Series:
    # Guests type their own address (sometimes re-cased or padded) or one the CRM never saw.
    r = rng.random(idx.size)
    unknown, retyped = np.flatnonzero(guest & (r < 0.35)), np.flatnonzero(guest & (r >= 0.75))
    numbers = pl.Series(rng.integers(10**6, 10**7, size=unknown.size), dtype=pl.Int64)
    emails = _emails(c, idx).scatter(unknown, "guest" + numbers.cast(pl.String) + "@example.net")
    case = rng.choice(3, size=retyped.size, p=(0.2, 0.4, 0.4))
    again = _styled(emails.gather(retyped).str.strip_chars(), case, rng.random(case.size) < 0.3)
    return emails.scatter(retyped, again)


def _schedule_status_changes(
    rng: np.random.Generator, w: _World, d: int, new: pl.DataFrame
) -> None:
    # A later row with the same order_id: cancellations come fast, refunds up to a month later.
    later = np.flatnonzero(rng.random(new.height) < 0.05)
    refunded = rng.random(later.size) < 0.6
    lag = np.where(refunded, rng.integers(1, 31, size=later.size), rng.integers(1, 4, later.size))
    keep = d + lag < w.win.days
    later, refunded, target = later[keep], refunded[keep], d + lag[keep]
    when = w.win.day_start(0) + target * DAY + _time_of_day(rng, target.size)
    rows = new[later].with_columns(
        updated_at=_timestamps(rng, when),
        status=pl.Series(np.where(refunded, "refunded", "cancelled"), dtype=pl.String),
        _day=pl.Series(target, dtype=pl.Int64),
    )
    if w.pending_orders is None:
        w.pending_orders = rows
    else:
        w.pending_orders = pl.concat([w.pending_orders, rows])


# --- web events -----------------------------------------------------------------------------


def _web_for_day(rng: np.random.Generator, w: _World, d: int) -> pl.DataFrame:
    events = _expand_sessions(rng, _sessions(rng, w, d), w.win.day_start(d) + DAY - 1)
    frame = _event_frame(rng, w, events)
    late = frame.filter(rng.random(frame.height) < 0.005)
    if w.late_events is not None:
        frame = pl.concat([frame, w.late_events])
    w.late_events = late  # exporters re-send a few events with the next day's file
    return frame


def _sessions(rng: np.random.Generator, w: _World, d: int) -> dict[str, np.ndarray]:
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
                day0 + _time_of_day(rng, known.size),
                np.maximum(c.created_at[signups] - rng.integers(30, 900, signups.size), day0),
                day0 + _time_of_day(rng, anon.size),
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


def _draw_skus(rng: np.random.Generator, w: _World, k: int) -> np.ndarray:
    idx = np.searchsorted(w.sku_cum, rng.random(k) * w.sku_cum[-1], side="right")
    return np.minimum(idx, N_SKUS - 1)


def _event_frame(rng: np.random.Generator, w: _World, ev: dict[str, np.ndarray]) -> pl.DataFrame:
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
            "event_id": _ids("E", np.arange(w.next_event - k, w.next_event), 12),
            "event_timestamp": _timestamps(rng, ev["ts"]),
            "event_name": EVENT_NAMES.gather(name),
            "anonymous_id": _cookie_ids(ev["cookie"], ev["first_seen"]),
            "contact_id": _contact_ids(w.contacts, ev["contact"]),
            "url_sku": _sku_codes(url_sku),
            "path": pl.Series(STATIC_PATHS).gather(path),
            "sku": _sku_codes(sku),
            "value": _money(cents).scatter(np.flatnonzero((name != 2) & (name != 4)), None),
        }
    )
    url = pl.when(pl.col("url_sku").is_not_null()).then(SHOP + "/p/" + pl.col("url_sku"))
    return frame.with_columns(page_url=url.otherwise(SHOP + pl.col("path"))).select(WEB_COLUMNS)


def _sku_codes(sku: np.ndarray) -> pl.Series:
    codes = _ids("SKU-", np.maximum(sku, 0) + 1, 5)
    return codes.scatter(np.flatnonzero(sku < 0), None)


def _contact_ids(c: _Contacts, idx: np.ndarray) -> pl.Series:
    return _ids("C", np.maximum(idx, 0) + 1, c.id_width).scatter(np.flatnonzero(idx < 0), None)


def _cookie_ids(cookie: np.ndarray, first_seen: np.ndarray) -> pl.Series:
    # GA4 user_pseudo_id shape: a scrambled number (a bijection mod a prime, so cookies
    # never collide) and the first-visit epoch second.
    scrambled = pl.Series((cookie + 1) * 1_583_458_089 % 2_147_483_647, dtype=pl.Int64)
    return scrambled.cast(pl.String) + "." + pl.Series(first_seen, dtype=pl.Int64).cast(pl.String)


# --- output ---------------------------------------------------------------------------------


def _write_folder(folder: Path, frames: tuple[pl.DataFrame, ...]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    success = folder / "_SUCCESS"
    success.unlink(missing_ok=True)  # a rewrite in progress must not look complete
    for (name, columns), frame in zip(EXTRACTS, frames, strict=True):
        frame.select(columns).write_csv(folder / name)
    success.touch()
