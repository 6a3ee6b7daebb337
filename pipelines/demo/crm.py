"""The sample CRM extract (crm_contacts.csv) of each day (pipelines/demo/sample_data.py):
the contacts created that day, those changed (consent, address, name, place), and those
erased (is_deleted), each as its whole current version."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.demo.contacts import Contacts, email_formats, email_styles, render_emails
from pipelines.demo.names import COUNTRIES, DOMAINS, FIRST, LAST, PLACE_P, PLACES, TIMEZONES
from pipelines.demo.spelling import booleans, dates, ids, pick, timestamps
from pipelines.demo.timeline import time_of_day
from pipelines.demo.world import World

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


def contacts_for_day(rng: np.random.Generator, w: World, d: int) -> pl.DataFrame:
    c = w.contacts
    lo, hi = (0 if d == 0 else w.n_before[d]), w.n_before[d + 1]
    erased = w.erasures_on(d)
    changed = _pick_changes(rng, w, d)
    day0 = w.win.day_start(d)
    touched = np.concatenate([changed, erased])
    c.updated_at[touched] = day0 + time_of_day(rng, touched.size)
    idx = np.concatenate([np.arange(lo, hi), touched])
    deleted = np.concatenate([np.zeros(idx.size - erased.size, bool), np.ones(erased.size, bool)])
    order = np.argsort(idx, kind="stable")
    return _contact_frame(rng, c, idx[order], deleted[order])


def _pick_changes(rng: np.random.Generator, w: World, d: int) -> np.ndarray:
    existing = w.n_before[d]
    if d == 0 or existing == 0:
        return np.empty(0, dtype=np.int64)
    k = rng.binomial(existing, 0.003)
    idx = np.sort(rng.choice(existing, size=k, replace=False))
    idx = idx[w.contacts.erase_day[idx] > d]  # erased today or before: no plain update
    _apply_changes(rng, w.contacts, idx)
    return idx


def _apply_changes(rng: np.random.Generator, c: Contacts, idx: np.ndarray) -> None:
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


def _new_emails(rng: np.random.Generator, c: Contacts, idx: np.ndarray) -> None:
    c.email_changes[idx] += 1
    c.e_first[idx], c.e_last[idx] = c.first[idx], c.last[idx]
    # Own number plus own change count keeps a new address unique, even for former sharers.
    c.e_num[idx], c.e_ver[idx] = c.own_num[idx], c.email_changes[idx]
    c.e_dom[idx] = rng.integers(0, len(DOMAINS), size=idx.size)
    c.e_fmt[idx] = email_formats(rng, idx.size, rng.random(idx.size))
    c.e_case[idx], c.e_pad[idx] = email_styles(rng, idx.size)


def _contact_frame(
    rng: np.random.Generator, c: Contacts, idx: np.ndarray, deleted: np.ndarray
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "contact_id": ids("C", idx + 1, c.id_width),
            "email": render_emails(c, idx),
            "first_name": pick(FIRST.display, c.first[idx], c.first_missing[idx]),
            "last_name": pick(LAST.display, c.last[idx], c.last_missing[idx]),
            "birth_date": dates(c.birth[idx], c.birth_present[idx]),
            "country": pick(COUNTRIES, c.place[idx], c.country_missing[idx]),
            "timezone": pick(TIMEZONES, c.place[idx], c.tz_missing[idx]),
            "email_opt_in": booleans(rng, c.opt_in[idx], 0.04),
            "created_at": timestamps(rng, c.created_at[idx]),
            "updated_at": timestamps(rng, c.updated_at[idx]),
            "is_deleted": booleans(rng, deleted, 0.0),
        }
    )
