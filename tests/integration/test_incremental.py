"""Incremental nights: night after night, the warehouse says exactly what a build of all the
history says, and Nightjar rebuilds whole whenever it cannot vouch for the tables."""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from models.manifest import dbt_executable
from models.settings import DBT_PROJECT_DIR
from pipelines.demo.sample_data import generate_landing
from tests.support.landing import contact, line, order, write_folder

END = dt.date(2026, 3, 2)  # the run crosses 29 February (2026 has none: 1 March follows 28)
DAYS = 9
NIGHTS = 3  # the last three dates run one by one, incrementally

# What readers and the next nights see; each must equal the full build's.
TABLES = {
    "main.customer_360": "contact_id",
    "main.audience": "contact_id",
    "main.cohort_loyalty": "contact_id",
    "main.journey_winback": "contact_id",
    "main.cohort_birthday": "contact_id",
    "build.int_orders_resolved": "order_id",
    "build.int_orders_attributed": "order_id",
    "build.int_web_visitors_summarized": "anonymous_id",
    "build.int_contacts_web_activity_summarized": "contact_id",
    "build.int_contacts_purchases_summarized": "contact_id",
    "build.int_contacts_resolved": "contact_id",
    "build.int_order_lines_resolved": "order_id, line_id",
    "build.int_order_lines": "order_id, line_id",
    "build.int_order_baskets_daily": "ordered_on, sku, related_sku",
    "main.products_bought_together": "sku, related_sku",
    "main.product_recommendations": "contact_id, recommendation_rank",
    "main.order_lines_mismatched": "order_id",
    "main.contact_category_affinity": "contact_id, category_rank",
}
# Bookkeeping of the incremental nights, which a full build cannot know: left out
BOOKKEEPING = {
    "build.int_orders_resolved": "exclude (written_on)",
    "build.int_orders_attributed": "exclude (changed_on, contact_id_before)",
    "build.int_order_lines": "exclude (changed_on, contact_id_before)",
    "build.int_order_lines_resolved": "exclude (written_on)",
}


def _state(ws) -> tuple:
    return ws.query(
        "select unpublished, built_through, attempted_through from nightjar_build.dbt_build_state"
    )[0]


def _snapshot(ws) -> dict[str, list[tuple]]:
    return {
        table: ws.query(f"select * {BOOKKEEPING.get(table, '')} from {table} order by {key}")
        for table, key in TABLES.items()
    }


def _lines_passed_on(ws, day: dt.date) -> int:
    """Order lines a night passed from one contact to another or to no one (a guest order
    whose address changed hands): the contacts recomputed on both sides."""
    return ws.query(
        "select count(*) from build.int_order_lines where changed_on = ? "
        "and contact_id_before is not null and contact_id is distinct from contact_id_before",
        [day],
    )[0][0]


# Thresholds a few days of sample data can meet, so that every cohort has members; a spend
# window of 4 days, so that each night's orders of 4 days before leave it (the contacts
# whose spend_730d falls are recomputed).
SMALL_THRESHOLDS = (
    "{holdout_share: 0, loyalty_min_spend_730d: 150, reactivation_min_days_since_purchase: 3,"
    " spend_window_days: 4}"
)


@pytest.fixture(scope="module")
def nights(module_workspace):
    ws = module_workspace
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NIGHTJAR_DBT_VARS", SMALL_THRESHOLDS)
        yield from _run_nights(ws)


def _append(folder: Path, extract: str, rows: list[dict]) -> None:
    """Rows added to a generated extract, in its own column order."""
    path = folder / extract
    with path.open(encoding="utf-8") as handle:
        columns = next(csv.reader(handle))
    with path.open("a", newline="", encoding="utf-8") as handle:
        csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore").writerows(rows)


def _plant_a_guest_order_changing_hands(landing: Path, first: dt.date, moved: dt.date) -> None:
    """A guest order bought with mover's address on the first day; on `moved` mover takes
    another address and taker registers with the old one: the order passes from mover to
    taker, and both contacts' affinity must follow."""
    at = f"{first}T10:00:00Z"
    _append(
        landing / str(first),
        "crm_contacts.csv",
        [contact("mover", email="old@example.org", updated_at=at)],
    )
    _append(
        landing / str(first),
        "orders.csv",
        [order("guest-passed-on", "", at, "30.00", email="old@example.org")],
    )
    _append(
        landing / str(first),
        "order_lines.csv",
        [line("guest-passed-on", "1", "SKU-PASSED", "1", "30.00", category="Toys")],
    )
    # an order without lines passes on too: the purchase summary follows the orders
    _append(
        landing / str(first),
        "orders.csv",
        [order("guest-without-lines", "", at, "12.50", email="old@example.org")],
    )
    later = f"{moved}T08:00:00Z"
    _append(landing / str(moved), "crm_contacts.csv", [
        contact("mover", email="new@example.org", updated_at=later),
        contact("taker", email="old@example.org", created_at=later, updated_at=later),
    ])  # fmt: skip


def _plant_a_guest_order_changing_hands_twice(
    landing: Path, first: dt.date, failed: dt.date, last: dt.date
) -> None:
    at = f"{first}T10:00:00Z"
    _append(landing / str(first), "crm_contacts.csv", [
        contact("first", email="twice@example.org", updated_at=at),
    ])  # fmt: skip
    _append(landing / str(first), "orders.csv", [
        order("guest-twice", "", at, "21.00", email="twice@example.org"),
    ])  # fmt: skip
    _append(landing / str(first), "order_lines.csv", [
        line("guest-twice", "1", "SKU-TWICE", "1", "21.00", category="Garden"),
    ])  # fmt: skip
    for day, old_owner, new_owner in ((failed, "first", "second"), (last, "second", "third")):
        later = f"{day}T08:00:00Z"
        _append(landing / str(day), "crm_contacts.csv", [
            contact(old_owner, email=f"{old_owner}@example.org", updated_at=later),
            contact(new_owner, email="twice@example.org", created_at=later, updated_at=later),
        ])  # fmt: skip


def _run_nights(ws):
    generate_landing(ws.landing, contacts=400, days=DAYS, end=END, seed=5)
    # END itself is left for the last test
    dates = [END - dt.timedelta(days=n) for n in range(NIGHTS + 1, 0, -1)]
    _plant_a_guest_order_changing_hands(ws.landing, END - dt.timedelta(days=DAYS - 1), dates[2])
    states, passed_on = [], 0
    for day in dates:  # the history up to the first date at once, then night by night
        assert ws.run(day.isoformat()) == 0
        states.append(_state(ws))
        passed_on += _lines_passed_on(ws, day)
    incremental = _snapshot(ws)
    yield ws, dates, states, incremental, passed_on


@pytest.mark.slow  # several nights: make test-slow keeps make test within ten minutes
def test_each_night_builds_on_the_last_one(nights):
    _, dates, states, _, _ = nights
    # the first build reads everything; each later night only what is new since the last
    assert states == [(False, day, day) for day in dates]


@pytest.mark.slow  # several nights and a full build: make test-slow
def test_incremental_nights_equal_a_full_build_of_the_history(nights):
    ws, dates, _, incremental, passed_on = nights
    assert sum(len(rows) for rows in incremental.values()) > 1000  # the comparison has data
    assert incremental["main.cohort_loyalty"] and incremental["main.journey_winback"]
    assert passed_on > 0  # the nights moved guest orders' lines between contacts
    affinity = {row[0]: row[1] for row in incremental["main.contact_category_affinity"]}
    assert affinity.get("taker") == "Toys" and "mover" not in affinity
    # (contact_id, total_spend, spend_730d, order_count, ...): both guest orders are taker's
    purchases = {row[0]: row for row in incremental["build.int_contacts_purchases_summarized"]}
    assert purchases["taker"][1] == Decimal("42.50") and purchases["taker"][3] == 2
    assert "mover" not in purchases
    # a re-run of the last date: Nightjar rebuilds the incremental models whole
    assert ws.run(dates[-1].isoformat()) == 0
    full = _snapshot(ws)
    for table in TABLES:
        assert incremental[table] == full[table], table


@pytest.mark.slow  # three more nights: make test-slow
def test_a_past_date_rebuilds_whole_and_the_next_night_goes_on_from_it(nights):
    ws, dates, _, _, _ = nights
    assert ws.run(dates[0].isoformat()) == 0  # a past date: as of that date, whole
    past = ws.query("select max(ordered_on) from build.int_orders_resolved")[0][0]
    assert past <= dates[0]
    assert _state(ws) == (False, dates[0], dates[0])
    assert ws.run(dates[-1].isoformat()) == 0  # then reads everything new since that date
    assert _state(ws) == (False, dates[-1], dates[-1])
    assert ws.query("select max(ordered_on) from build.int_orders_resolved")[0][0] > past


@pytest.mark.slow  # several nights: make test-slow keeps make test within ten minutes
def test_a_failed_build_is_read_again_by_the_next_night(workspace, dbt_fails_half_way):
    generate_landing(workspace.landing, contacts=150, days=4, end=END, seed=6)
    first, failed, last = (END - dt.timedelta(days=n) for n in (2, 1, 0))
    # A guest order changing hands twice: to "second" on the failed night, after which the
    # per-contact models held it for "second", then to "third"; as of the last good build
    # it was "first"'s. "second" must be recomputed too.
    _plant_a_guest_order_changing_hands_twice(workspace.landing, first, failed, last)
    assert workspace.run(first.isoformat()) == 0
    dbt_fails_half_way(True)
    assert workspace.run(failed.isoformat()) != 0
    # the incremental models moved on to the failed date; the last good build stays the base
    assert _state(workspace) == (True, first, failed)
    dbt_fails_half_way(False)
    assert workspace.run(last.isoformat()) == 0
    assert _state(workspace) == (False, last, last)
    incremental = _snapshot(workspace)
    purchases = {row[0]: row for row in incremental["build.int_contacts_purchases_summarized"]}
    affinity = {row[0] for row in incremental["main.contact_category_affinity"]}
    assert purchases["third"][3] == 1 and "third" in affinity
    assert "second" not in purchases and "second" not in affinity
    assert workspace.run(last.isoformat()) == 0  # whole, for comparison
    assert _snapshot(workspace) == incremental


@pytest.mark.slow  # a dbt build by hand and a night: make test-slow
def test_a_build_by_hand_for_another_date_is_noticed(nights):
    ws, dates, _, _, _ = nights
    # an analyst builds the orders by hand as of an earlier date, into the build schema
    done = subprocess.run(
        [
            dbt_executable(), "run", "--profiles-dir", str(DBT_PROJECT_DIR),
            "--select", "int_orders_resolved", "--vars", f"{{as_of_date: '{dates[1]}'}}",
            "--target-path", f"target/hand-{os.getpid()}",
        ],
        cwd=DBT_PROJECT_DIR,
        env={**os.environ, "NIGHTJAR_WAREHOUSE": str(ws.warehouse),
             "NIGHTJAR_STATE": str(ws.state)},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]
    assert ws.run(END.isoformat()) == 0  # a new date, yet rebuilt whole: the table said so
    after = _snapshot(ws)
    assert ws.run(END.isoformat()) == 0  # whole, for comparison
    assert _snapshot(ws) == after


@pytest.mark.slow  # several nights: make test-slow keeps make test within ten minutes
def test_a_folder_completing_late_makes_the_next_night_rebuild_whole(nights):
    ws, _, _, _, _ = nights
    # a folder older than every date built completes only now, and a new day lands
    late_day = END - dt.timedelta(days=DAYS)
    late_order = order("late-order", "", f"{late_day}T10:00:00Z", "10.00")
    write_folder(ws.landing, late_day.isoformat(), orders=[late_order])
    write_folder(ws.landing, (END + dt.timedelta(days=1)).isoformat())
    assert ws.run((END + dt.timedelta(days=1)).isoformat()) == 0
    # its rows are older than any window: only a whole rebuild sees them
    assert ws.query(
        "select count(*) from build.int_orders_resolved where order_id = 'late-order'"
    ) == [(1,)]


@pytest.mark.slow  # a night on the module's nights: make test-slow
def test_an_upgrade_that_changed_the_models_rebuilds_them_whole(nights):
    """A warehouse built by an earlier release: its int_orders_resolved has no written_on
    (8d59fca added it) and the build state names that release's models. The first night of
    this one rebuilds the incremental models whole, the new column in them, rather than
    failing on a table whose columns changed."""
    from assets.shared.warehouse import connect

    ws, _, _, _, _ = nights
    day = END + dt.timedelta(days=2)  # a date no other test of the module runs
    for landed in (END + dt.timedelta(days=1), day):  # no gap, whichever tests ran before
        if not (ws.landing / landed.isoformat()).exists():
            write_folder(ws.landing, landed.isoformat())
    with connect(ws.warehouse) as con:
        con.execute("alter table build.int_orders_resolved drop column written_on")
        con.execute("update nightjar_build.dbt_build_state set models_fingerprint = 'earlier'")
    assert ws.run(day.isoformat()) == 0
    assert _state(ws) == (False, day, day)
    # every order written by this night's whole build, none kept from the earlier release's
    [(orders, written_tonight)] = ws.query(
        "select count(*), count(*) filter (where written_on = ?) from build.int_orders_resolved",
        [day],
    )
    assert orders > 0 and written_tonight == orders


def test_the_fingerprint_follows_the_macros_the_models_call():
    from assets.warehouse.publish import models_fingerprint
    from models.manifest import load_manifest

    manifest = load_manifest()
    before = models_fingerprint(manifest)
    manifest["macros"]["macro.nightjar.normalize_email"]["macro_sql"] += " "
    assert models_fingerprint(manifest) != before
