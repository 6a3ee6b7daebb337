"""Build small landings by hand for tests: one call per folder, rows as dicts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

CONTACT_COLUMNS = [
    "contact_id", "email", "first_name", "last_name", "birth_date", "country", "timezone",
    "email_opt_in", "created_at", "updated_at", "is_deleted",
]  # fmt: skip
ORDER_COLUMNS = [
    "order_id", "contact_id", "email", "ordered_at", "updated_at", "status", "currency",
    "total_amount",
]  # fmt: skip
EVENT_COLUMNS = [
    "event_id", "event_timestamp", "event_name", "anonymous_id", "contact_id", "page_url", "sku",
    "value",
]  # fmt: skip
LINE_COLUMNS = [
    "order_id", "line_id", "sku", "product_name", "category", "quantity", "unit_price",
]  # fmt: skip


def contact(contact_id: str, **fields) -> dict:
    row = {
        "contact_id": contact_id,
        "email": f"{contact_id}@example.com",
        "first_name": contact_id.title(),
        "last_name": "Tester",
        "birth_date": "",
        "country": "US",
        "timezone": "America/New_York",
        "email_opt_in": "true",
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "is_deleted": "false",
    }
    row.update(fields)
    return row


def order(order_id: str, contact_id: str, ordered_at: str, amount: str, **fields) -> dict:
    row = {
        "order_id": order_id,
        "contact_id": contact_id,
        "email": "",
        "ordered_at": ordered_at,
        "updated_at": ordered_at,
        "status": "completed",
        "currency": "USD",
        "total_amount": amount,
    }
    row.update(fields)
    return row


def event(event_id: str, anonymous_id: str, timestamp: str, name="page_view", **fields) -> dict:
    row = {
        "event_id": event_id,
        "event_timestamp": timestamp,
        "event_name": name,
        "anonymous_id": anonymous_id,
        "contact_id": "",
        "page_url": "https://shop.example.com/",
        "sku": "",
        "value": "",
    }
    row.update(fields)
    return row


def line(order_id: str, line_id: str, sku: str, quantity: str, unit_price: str, **fields) -> dict:
    row = {
        "order_id": order_id,
        "line_id": line_id,
        "sku": sku,
        "product_name": f"Product {sku}",
        "category": "Home & Kitchen",
        "quantity": quantity,
        "unit_price": unit_price,
    }
    row.update(fields)
    return row


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_folder(
    landing: Path,
    business_date: str,
    contacts: list[dict] = (),
    orders: list[dict] = (),
    events: list[dict] = (),
    complete: bool = True,
    lines: list[dict] | None = None,
) -> Path:
    """A landing folder; order_lines.csv only when `lines` is given (it is optional)."""
    folder = landing / business_date
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "crm_contacts.csv", CONTACT_COLUMNS, list(contacts))
    write_csv(folder / "orders.csv", ORDER_COLUMNS, list(orders))
    write_csv(folder / "web_events.csv", EVENT_COLUMNS, list(events))
    if lines is not None:
        write_csv(folder / "order_lines.csv", LINE_COLUMNS, list(lines))
    if complete:
        (folder / "_SUCCESS").touch()
    return folder


def land_events(landing: Path, day: str, events: list[dict]) -> None:
    """Append SendGrid events to the landing as `nightjar webhook` would."""
    from models.landing import EVENTS_FOLDER

    folder = landing / EVENTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{day}.jsonl").open("a", encoding="utf-8") as handle:
        for item in events:
            handle.write(json.dumps(item) + "\n")
