"""Tests for the sample landing generator (small scales, contract section 1)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.demo.catalogue import CATEGORIES, build_catalogue
from pipelines.demo.sample_data import (
    CONTACT_COLUMNS,
    LINE_COLUMNS,
    ORDER_COLUMNS,
    WEB_COLUMNS,
    generate_landing,
)
from tests.support.reference_rules import VALID_EMAIL

END = date(2026, 11, 21)
DAYS = 40
FILES = {
    "crm_contacts.csv": CONTACT_COLUMNS,
    "orders.csv": ORDER_COLUMNS,
    "web_events.csv": WEB_COLUMNS,
    "order_lines.csv": LINE_COLUMNS,
}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)?$")
BOOLEANS = {"true", "false", "1", "0"}
GA4_NAMES = {
    "page_view",
    "view_item",
    "add_to_cart",
    "begin_checkout",
    "purchase",
    "login",
    "sign_up",
}


def _generate(
    root: Path, seed: int = 11, end: date = END, days: int = DAYS, **options
) -> dict[str, int]:
    return generate_landing(root, contacts=300, days=days, end=end, seed=seed, **options)


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("landing")
    return root, _generate(root)


def _read(root: Path, name: str) -> pl.DataFrame:
    frames = [
        pl.read_csv(folder / name, infer_schema=False).with_columns(
            folder=pl.lit(date.fromisoformat(folder.name))
        )
        for folder in sorted(root.iterdir())
    ]
    return pl.concat(frames)


def _utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _files(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    _generate(tmp_path / "a")
    _generate(tmp_path / "b")
    _generate(tmp_path / "c", seed=12)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a") != _files(tmp_path / "c")


def test_the_other_extracts_are_the_same_bytes_with_or_without_lines(tmp_path: Path) -> None:
    _generate(tmp_path / "with")
    counts = _generate(tmp_path / "without", order_lines=False)
    assert counts["order_lines"] == 0
    with_lines = _files(tmp_path / "with")
    assert {name for name in with_lines if name.endswith("order_lines.csv")}
    others = {name: data for name, data in with_lines.items() if "order_lines" not in name}
    assert _files(tmp_path / "without") == others


def test_every_folder_is_complete_with_exact_headers(landing) -> None:
    root, counts = landing
    folders = sorted(p.name for p in root.iterdir())
    expected = [(END - timedelta(days=DAYS - 1 - i)).isoformat() for i in range(DAYS)]
    assert folders == expected
    assert counts["folders"] == DAYS
    for folder in root.iterdir():
        assert sorted(p.name for p in folder.iterdir()) == sorted([*FILES, "_SUCCESS"])
        assert (folder / "_SUCCESS").stat().st_size == 0
        for name, columns in FILES.items():
            header = (folder / name).read_text(encoding="utf-8").splitlines()[0]
            assert header == ",".join(columns)


def test_counts_match_rows_written(landing) -> None:
    root, counts = landing
    assert counts["contacts"] == _read(root, "crm_contacts.csv").height
    assert counts["orders"] == _read(root, "orders.csv").height
    assert counts["web_events"] == _read(root, "web_events.csv").height
    assert counts["order_lines"] == _read(root, "order_lines.csv").height
    assert min(counts["contacts"], counts["orders"], counts["web_events"]) > 0


def test_identifiers_unique_per_file(landing) -> None:
    root, _ = landing
    for name, key in (("crm_contacts.csv", "contact_id"), ("orders.csv", "order_id")):
        frame = _read(root, name)
        assert frame[key].null_count() == 0
        assert frame.group_by("folder", key).len()["len"].max() == 1
    events = _read(root, "web_events.csv")
    assert events.select("event_id", "anonymous_id").null_count().row(0) == (0, 0)


def test_timestamps_parse_and_respect_folder_dates(landing) -> None:
    root, _ = landing
    spellings = set()
    checks = {
        "crm_contacts.csv": ("created_at", "updated_at"),
        "orders.csv": ("ordered_at", "updated_at"),
        "web_events.csv": ("event_timestamp",),
    }
    for name, columns in checks.items():
        frame = _read(root, name)
        for column in columns:
            values = frame[column].to_list()
            assert all(TIMESTAMP.match(v) for v in values), column
            spellings |= {"Z" if v.endswith("Z") else "offset" if len(v) > 19 else "bare"
                          for v in values}  # fmt: skip
            for value, folder in zip(values, frame["folder"], strict=True):
                assert _utc(value).date() <= folder, (name, column, value)
    contacts = _read(root, "crm_contacts.csv")
    for created, updated in contacts.select("created_at", "updated_at").iter_rows():
        assert _utc(updated) >= _utc(created)
    assert spellings == {"Z", "offset", "bare"}


def test_new_orders_are_dated_on_their_folder(landing) -> None:
    root, _ = landing
    orders = _read(root, "orders.csv").filter(pl.col("status") == "completed")
    for ordered_at, folder in orders.select("ordered_at", "folder").iter_rows():
        assert _utc(ordered_at).date() == folder


def test_values_follow_the_contract(landing) -> None:
    root, _ = landing
    contacts = _read(root, "crm_contacts.csv")
    assert set(contacts["email_opt_in"].str.to_lowercase()) <= BOOLEANS
    assert set(contacts["is_deleted"]) == {"true", "false"}
    assert contacts["country"].drop_nulls().str.contains(r"^[A-Z]{2}$").all()
    assert contacts["timezone"].drop_nulls().str.contains(r"^[A-Za-z_]+/[A-Za-z_]+$").all()
    births = contacts["birth_date"].drop_nulls().str.to_date("%Y-%m-%d")
    assert births.min() >= date(1900, 1, 1)
    assert births.max() <= date(END.year - 18, END.month, END.day)
    orders = _read(root, "orders.csv")
    assert set(orders["status"]) <= {"completed", "cancelled", "refunded"}
    assert set(orders["currency"]) == {"USD"}
    assert orders["total_amount"].str.contains(r"^\d+\.\d\d$").all()
    events = _read(root, "web_events.csv")
    assert set(events["event_name"]) == GA4_NAMES
    assert events["value"].drop_nulls().str.contains(r"^\d+\.\d\d$").all()


def test_emails_include_invalid_empty_and_ambiguous(landing) -> None:
    root, _ = landing
    contacts = _read(root, "crm_contacts.csv")
    emails = contacts["email"]
    normalized = emails.drop_nulls().str.strip_chars().str.to_lowercase()
    assert emails.null_count() > 0
    assert sum(not VALID_EMAIL.match(e) for e in normalized) > 0
    assert (emails.drop_nulls() != normalized).sum() > 0  # upper case or spaces
    owners = contacts.with_columns(e=pl.col("email").str.strip_chars().str.to_lowercase())
    owners = owners.drop_nulls("e").group_by("e").agg(pl.col("contact_id").n_unique())
    assert owners["contact_id"].max() > 1
    assert all(e.split("@")[-1] in {"example.com", "example.org", "example.net"}
               for e in normalized if VALID_EMAIL.match(e))  # fmt: skip


def test_names_exercise_unicode_and_csv_quoting(landing) -> None:
    root, _ = landing
    contacts = _read(root, "crm_contacts.csv")
    names = pl.concat([contacts["first_name"], contacts["last_name"]])
    assert names.null_count() > 0
    assert any(not n.isascii() for n in names.drop_nulls())
    assert any("," in n or '"' in n for n in names.drop_nulls())  # survived CSV quoting


def test_birthday_cohorts_are_planted(landing) -> None:
    root, _ = landing
    births = _read(root, "crm_contacts.csv")["birth_date"].drop_nulls().str.to_date("%Y-%m-%d")
    month_day = set(zip(births.dt.month(), births.dt.day(), strict=True))
    assert (2, 29) in month_day
    assert (END.month, END.day) in month_day


def test_end_on_28_february_plants_both_february_birthdays(tmp_path: Path) -> None:
    _generate(tmp_path, end=date(2027, 2, 28), days=2)
    births = _read(tmp_path, "crm_contacts.csv")["birth_date"].drop_nulls()
    assert births.str.ends_with("-02-28").sum() >= 1
    assert births.str.ends_with("-02-29").sum() >= 2


def test_guest_orders_and_later_status_rows(landing) -> None:
    root, _ = landing
    orders = _read(root, "orders.csv")
    guests = orders.filter(pl.col("contact_id").is_null())
    assert guests.height > 0 and guests["email"].null_count() < guests.height
    later = orders.filter(pl.col("status") != "completed")
    assert later.height > 0
    first = orders.filter(pl.col("status") == "completed")
    joined = later.join(first, on="order_id", suffix="_first")
    assert joined.height == later.height
    for row in joined.iter_rows(named=True):
        assert row["folder"] > row["folder_first"]
        assert _utc(row["updated_at"]) > _utc(row["updated_at_first"])
        assert row["ordered_at"] == row["ordered_at_first"]


def test_web_events_resent_and_identity_stitching(landing) -> None:
    root, _ = landing
    events = _read(root, "web_events.csv")
    repeats = events.filter(pl.col("event_id").is_duplicated())
    assert repeats.height > 0
    content = repeats.drop("folder").unique()
    assert content.height == repeats["event_id"].n_unique()  # same content when re-sent
    cookies = events.group_by("anonymous_id").agg(
        known=pl.col("contact_id").is_not_null().any(),
        anonymous=pl.col("contact_id").is_null().any(),
    )
    assert cookies.filter(pl.col("known") & pl.col("anonymous")).height > 0
    assert cookies.filter(~pl.col("known")).height > 0
    items = events.filter(pl.col("event_name").is_in(["view_item", "add_to_cart"]))
    assert items["sku"].null_count() == 0
    assert (items["page_url"] == "https://shop.example.com/p/" + items["sku"]).all()


def test_rejects_empty_window(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_landing(tmp_path, contacts=10, days=0, end=END, seed=1)


def test_lines_belong_to_the_days_new_orders_and_add_up_to_their_total(landing) -> None:
    root, _ = landing
    lines = _read(root, "order_lines.csv")
    orders = _read(root, "orders.csv")
    assert lines.select("order_id", "line_id").is_unique().all()
    assert lines["quantity"].cast(pl.Int64).min() >= 1
    assert (lines["unit_price"].cast(pl.Float64) >= 0).all()
    new = orders.filter(pl.col("status") == "completed").select(
        "order_id", "folder", "total_amount"
    )
    sums = lines.group_by("order_id", "folder").agg(
        (
            pl.col("quantity").cast(pl.Int64)
            * pl.col("unit_price").str.replace(".", "", literal=True).cast(pl.Int64)
        )
        .sum()
        .alias("cents")
    )
    # every new order has its lines in its own folder; status changes land none
    joined = new.join(sums, on=["order_id", "folder"], how="full", coalesce=True)
    assert joined["cents"].null_count() == 0 and joined["total_amount"].null_count() == 0
    total = joined["total_amount"].str.replace(".", "", literal=True).cast(pl.Int64)
    off = (joined["cents"] - total).abs()
    # all add up to the cent, but a planted few (0.2%: mismatched orders to report)
    assert (off == 0).mean() > 0.98
    assert off.filter(off > 0).min() is None or off.filter(off > 0).min() >= 100


def test_the_catalogue_has_a_dozen_categories_skewed_sales_and_bundles(landing) -> None:
    import numpy as np

    catalogue = build_catalogue(np.random.default_rng(1))
    assert catalogue.category.size >= 200
    assert len(CATEGORIES) == 12 == len(set(catalogue.category_name))
    assert catalogue.product_name.null_count() == 0
    assert (catalogue.companion >= 0).mean() > 0.1  # some products are bought together
    root, _ = landing
    lines = _read(root, "order_lines.csv")
    assert lines["category"].n_unique() >= 10
    # popularity is skewed: the 5% most sold SKUs make a good share of the lines
    sold = lines["sku"].value_counts(sort=True)["count"]
    top = sold.head(max(len(sold) // 20, 1)).sum()
    assert top / sold.sum() > 0.2


@pytest.mark.parametrize("command", ["generate", "demo"])
def test_the_demo_and_generate_commands_write_a_landing_with_lines(tmp_path, command):
    """`nightjar demo` generates as `nightjar generate` does, though it has no
    --no-order-lines of its own."""
    from pipelines.cli import parser
    from pipelines.demo_commands import generate

    args = parser().parse_args([command, "--contacts", "5", "--days", "2", "--end", "2025-01-02"])
    args.out = str(tmp_path)
    assert generate(args, None) == 0
    assert (tmp_path / "2025-01-02" / "order_lines.csv").is_file()
