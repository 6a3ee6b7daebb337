"""A cohort member's message, built from their row of the cohort and send_decisions, and one
message as a marketer previews it."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

import polars as pl

from models.campaigns import Campaign
from models.privacy import mask_email
from models.unsubscribe_tokens import TokenSigner, one_click_headers
from senders.base import Message
from senders.ledger import LEDGER_COLUMNS, send_id

# JSON's own: most template data, returned at once (a send makes hundreds of thousands)
_AS_IS = frozenset({str, int, bool, type(None)})


def _json_safe(value: Any) -> Any:
    if type(value) in _AS_IS:
        return value
    if isinstance(value, (float, Decimal)):
        # JSON has no NaN or infinity: json.dumps would write a body SendGrid cannot read
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, dt.date):  # a datetime too
        return value.isoformat()
    if isinstance(value, uuid.UUID):  # as polars gives a night's; send-test reads DuckDB's
        return str(value)
    if isinstance(value, (list, tuple)):  # a cart's items, say
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    return value


def _display_name(row: dict[str, Any]) -> str | None:
    # A header may not hold line breaks, and SendGrid silently drops mail whose recipient
    # name holds a comma or semicolon: personal data never gets to shape the message.
    # (split() drops the whitespace at either end and between, the two names' included)
    both = f"{row.get('first_name') or ''} {row.get('last_name') or ''}"
    return " ".join(both.replace(",", " ").replace(";", " ").split()) or None


# What build_message reads of a row, beside the template data
_ROW_FIELDS = (
    "contact_id",
    "email",
    "first_name",
    "last_name",
    "nightjar_step",
    "nightjar_occasion",
    "nightjar_journey_occasion",
    "nightjar_variant",
    "nightjar_send_at",
    "nightjar_deliver_by",
)


def message_columns(campaign: Campaign, columns: Sequence[str]) -> list[str]:
    """Of a cohort's `columns`, those build_message reads for `campaign`: a row of just these
    is a third of the time to make of a cohort's, and the cohort may be wide."""
    owners = campaign.steps or (campaign,)
    wanted = {*_ROW_FIELDS, *(name for owner in owners for name in owner.template_data)}
    return [column for column in columns if column in wanted]


def build_message(
    campaign: Campaign,
    row: dict[str, Any],
    one_click: OneClick | None = None,
    message_id: str | None = None,
) -> Message:
    """The message of a row of the cohort (or of journey_progress, for a journey's step),
    with its List-Unsubscribe headers when `one_click` is Nightjar's. `message_id`: its
    send_id, when the caller has it (ledger_frame's)."""
    return MessageMaker(campaign, one_click).message(row, message_id)


class MessageMaker:
    """build_message for the many rows of a send: the variant and the template data's columns
    of each (step, variant) looked up once, not once a message."""

    def __init__(self, campaign: Campaign, one_click: OneClick | None = None):
        self.campaign = campaign
        self.one_click = one_click
        self._shapes: dict[tuple[str | None, str | None], tuple[Any, tuple[str, ...]]] = {}

    def message(self, row: dict[str, Any], message_id: str | None = None) -> Message:
        campaign = self.campaign
        step = row.get("nightjar_step")
        occasion = row["nightjar_journey_occasion"] if step else row["nightjar_occasion"]
        variant, data_columns = self._shape(step, row.get("nightjar_variant"))
        if message_id is None:
            message_id = send_id(campaign.name, row["contact_id"], row["nightjar_occasion"])
        return Message(
            send_id=message_id,
            campaign=campaign.name,
            contact_id=row["contact_id"],
            occasion=occasion,
            step=step,
            to_email=row["email"] or "",
            to_name=_display_name(row),
            template_id=variant.template_id,
            subject=variant.subject,
            from_email=campaign.from_email,
            from_name=campaign.from_name,
            categories=campaign.categories,
            data={column: _json_safe(row.get(column)) for column in data_columns},
            variant=row.get("nightjar_variant"),
            send_at=row.get("nightjar_send_at"),
            deliver_by=row.get("nightjar_deliver_by"),
            topic=campaign.topic,
            headers=self.one_click.headers(row["contact_id"], campaign.topic, message_id)
            if self.one_click
            else {},
        )

    def _shape(self, step: str | None, variant: str | None) -> tuple[Any, tuple[str, ...]]:
        shape = self._shapes.get((step, variant))
        if shape is None:
            shape = (self.campaign.variant(variant, step), self.campaign.template_data_of(step))
            self._shapes[(step, variant)] = shape
        return shape


@dataclass(frozen=True)
class OneClick:
    """Nightjar's one-click unsubscribe (NIGHTJAR_ONE_CLICK=nightjar): where its links point
    and the key that signs them."""

    secret: str
    base_url: str
    mailto: str | None = None

    @cached_property
    def _signer(self) -> TokenSigner:
        return TokenSigner(self.secret)

    def headers(self, contact_id: str, topic: str, message_id: str) -> dict[str, str]:
        token = self._signer.token(contact_id, topic, message_id)
        return one_click_headers(token, self.base_url, self.mailto)


def ledger_frame(campaign: Campaign, rows: pl.DataFrame) -> pl.DataFrame:
    """The ledger's rows (Ledger.plan_frame) of the messages of `rows`, as build_message makes
    them: the decisions' occasion is the ledger's (a journey step's `<instance>#<step>`)."""
    ids = [
        send_id(campaign.name, contact_id, occasion)
        for contact_id, occasion in zip(rows["contact_id"], rows["nightjar_occasion"], strict=True)
    ]
    return pl.DataFrame(
        {
            "send_id": ids,
            "campaign": [campaign.name] * rows.height,
            "contact_id": rows["contact_id"],
            "occasion": rows["nightjar_occasion"],
            "variant": rows["nightjar_variant"],
            "send_at": rows["nightjar_send_at"],
            "step": rows["nightjar_step"],
        }
    ).cast(LEDGER_COLUMNS)


def masked(value: Any) -> Any:
    """Text (names, dates of birth, ...) shows its first character only, in lists and
    structs too; numbers stay, so the preview still shows the shape of what the template
    gets."""
    if isinstance(value, str):
        return f"{value[:1]}***" if value else value
    if isinstance(value, (list, tuple)):
        return [masked(item) for item in value]
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    return value


def render_sample(message: Message) -> str:
    """One message as a marketer previews it: personal data masked, the rest escaped."""
    shown = {key: masked(value) for key, value in message.data.items()}
    data = json.dumps(shown, ensure_ascii=False, indent=2, sort_keys=True)
    variant = f" · variant {message.variant}" if message.variant else ""
    when = f" · at {message.send_at.isoformat()}" if message.send_at else ""
    step = f" · step {message.step}" if message.step else ""
    # Personal data stays inside the code block: its fence is longer than any run of
    # backticks a name could hold, so a name cannot close it and become markdown or HTML.
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", data)), default=0))
    return (
        f"**{message.subject}** (template `{message.template_id}`{variant})\n\n"
        f"To: {mask_email(message.to_email)} · occasion {message.occasion}{step}{when}\n\n"
        f"{fence}json\n{data}\n{fence}"
    )
