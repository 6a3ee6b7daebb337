"""The masked previews in the cohort and send assets' metadata: markdown tables of the first
members by contact id, addresses masked, nothing in a value that could become markup."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import duckdb

from models.privacy import mask_email, mask_emails_in
from senders.decision_words import decision_rows, outcome

PREVIEW_ROWS = 20  # members a preview lists, by contact id


_MARKDOWN = re.compile(r"([\\`*_\[\]<>|&~])")


def cell(value: Any) -> str:
    """A value as a markdown table cell: one line, any address masked, nothing that could
    become markup (a contact id is data, never code)."""
    if value is None:
        return "—"
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = mask_emails_in(" ".join(str(value).split()))
    return _MARKDOWN.sub(r"\\\1", text) or "—"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = [
        "| " + " | ".join(cell(h) for h in headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows),
    ]
    return "\n".join(lines)


def masked(email: str | None) -> str | None:
    return mask_email(email) if email else None


def preview_heading(total: int, shown: int, what: str = "member") -> str:
    if not total:
        return f"No {what}s."
    if shown < total:
        return f"{total:,} {what}(s): the first {shown} by contact id, addresses masked."
    return f"{total:,} {what}(s), by contact id, addresses masked."


def send_preview(
    con: duckdb.DuckDBPyConnection,
    campaign: str,
    cooldown_days: int | None = None,
    send_hour: int | None = None,
) -> str:
    """The first PREVIEW_ROWS members of a campaign by contact id: masked address, what was
    decided and what became of it, and why."""
    total = con.execute(
        "select count(*) from main.send_decisions where campaign = ?", [campaign]
    ).fetchall()[0][0]
    rows = decision_rows(con, campaign=campaign, limit=PREVIEW_ROWS)
    table = [
        (r["contact_id"], masked(r["email"]), *outcome(r, cooldown_days, send_hour)) for r in rows
    ]
    heading = preview_heading(total, len(table))
    if not table:
        return heading
    return heading + "\n\n" + markdown_table(("contact", "email", "decision", "reason"), table)
