"""The way out a run takes: SendGrid, the outbox, or none at all (a dry run)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from senders.base import Sender
from senders.dry_run import DryRunSender
from senders.outbox import OutboxSender
from senders.sendgrid import SendGridSender

if TYPE_CHECKING:
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
        )
    return OutboxSender(settings.outbox)
