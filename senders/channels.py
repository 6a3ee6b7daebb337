"""The way out a run takes: SendGrid, the outbox, or none at all (a dry run)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from senders.base import Sender
from senders.dry_run import DryRunSender
from senders.messages import OneClick
from senders.outbox import OutboxSender
from senders.sendgrid import SendGridSender

if TYPE_CHECKING:
    from models.campaigns import Campaign
    from models.settings import Settings


def make_sender(settings: Settings, dry_run: bool = False) -> Sender:
    """SendGrid when an API key is set, else the outbox (docs/contract.md §5); nothing on a
    dry run."""
    if dry_run:
        return DryRunSender()
    if settings.uses_sendgrid:
        return SendGridSender(
            settings.sendgrid_api_key,
            settings.sendgrid_api_host,
            sandbox=settings.sendgrid_sandbox,
            groups=settings.sendgrid_groups,
            subscription_tracking=settings.one_click == "sendgrid",
            requests_at_once=settings.sendgrid_requests_at_once,
        )
    return OutboxSender(settings.outbox)


def one_click(settings: Settings) -> OneClick | None:
    """Nightjar's one-click unsubscribe, when it serves it (NIGHTJAR_ONE_CLICK=nightjar)."""
    if settings.one_click != "nightjar" or not settings.unsubscribe_secret:
        return None
    return OneClick(
        settings.unsubscribe_secret, settings.unsubscribe_base_url, settings.unsubscribe_mailto
    )


def deliverability_problem(
    settings: Settings, sending: Iterable[Campaign], topics: Iterable[str]
) -> str | None:
    """Why the programs `sending` tonight (paused ones left out) may not send with these
    settings (docs/contract.md §17), naming the setting to fix; None when they may.
    `topics`: the project's (dbt_project.yml's var topics)."""
    known = list(topics)
    strangers = sorted(set(settings.sendgrid_groups) - set(known))
    if strangers:
        return (
            f"NIGHTJAR_SENDGRID_GROUPS names {', '.join(strangers)}, not among the project's "
            f"topics ({', '.join(known)}): a misspelt topic would leave its own without a group"
        )
    if settings.uses_sendgrid:
        missing = sorted({c.topic for c in sending} - set(settings.sendgrid_groups))
        if missing:
            return (
                f"topic(s) {', '.join(missing)} have no SendGrid unsubscribe group: add each to "
                "NIGHTJAR_SENDGRID_GROUPS (topic=group_id, comma-separated; the ids are in "
                "SendGrid's Suppressions > Unsubscribe Groups)"
            )
    if settings.one_click != "nightjar":
        return None
    if not settings.unsubscribe_secret:
        return (
            "NIGHTJAR_UNSUBSCRIBE_SECRET is not set, and every message must carry a signed "
            "one-click unsubscribe link (NIGHTJAR_ONE_CLICK=nightjar): set it to 32 random "
            "characters or more (openssl rand -hex 32), the same for nightjar webhook, or set "
            "NIGHTJAR_ONE_CLICK=sendgrid to use SendGrid's subscription tracking"
        )
    if settings.uses_sendgrid and not settings.unsubscribe_base_url.startswith("https://"):
        return (
            "NIGHTJAR_UNSUBSCRIBE_URL must be the public https:// address of nightjar webhook "
            "when sending through SendGrid: mailbox providers ignore a one-click link over http"
        )
    return None
