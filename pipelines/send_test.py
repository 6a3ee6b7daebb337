"""`nightjar send-test`: each variant of a campaign (or of a journey's steps) rendered with a real
member's data and sent to one address through the configured way out, marked as a test and
never written to the ledger (docs/contract.md §17)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import re
import sys
import uuid
from typing import Any

import duckdb

from models.campaigns import Campaign
from models.dbt_vars import did_you_mean
from models.privacy import mask_email
from models.settings import Settings
from senders.base import Message
from senders.channels import make_sender, one_click
from senders.cohort import members_relation
from senders.messages import OneClick, build_message, masked
from senders.outbox import OutboxSender

EXIT_REFUSED = 2
TEST_CATEGORY = "nightjar-test"
TEST_CONTACT = "nightjar-test"  # whom a test's unsubscribe link names: no real member
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def send_test(args: argparse.Namespace, settings: Settings) -> int:
    from assets.shared.warehouse import connect  # lazy: DuckDB
    from models.manifest import load_manifest
    from models.programs import campaigns_from_manifest

    campaigns = {c.name: c for c in campaigns_from_manifest(load_manifest())}
    campaign = campaigns.get(args.campaign)
    refusal = _refusal(args, campaign, campaigns, settings)
    if refusal:
        print(f"nightjar send-test: {refusal}", file=sys.stderr)
        return EXIT_REFUSED
    with connect(settings.warehouse, read_only=True) as con:
        member = _a_member(con, campaign)
    if member is None:
        print(
            f"nightjar send-test: {campaign.cohort} has no member to render {campaign.name} "
            "with; run a night first",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    messages = test_messages(
        campaign, member, args.to, args.step, args.unmasked, one_click(settings)
    )
    sender = make_sender(settings)
    if isinstance(sender, OutboxSender):  # never beside the real messages of a night
        sender = OutboxSender(settings.outbox / "test-sends")
    failed = 0
    for message in messages:
        outcome = sender.send_batch(dt.datetime.now(dt.UTC).date(), [message])
        what = message.label
        if outcome.accepted and not outcome.refused:
            print(
                f"nightjar send-test: {campaign.name}{f' ({what})' if what else ''}, template "
                f"{message.template_id}, sent to {mask_email(args.to)} via {sender.channel}"
            )
        else:
            failed += 1
            why = outcome.error or "; ".join(outcome.refused.values())
            print(f"nightjar send-test: {campaign.name} ({what}) not sent: {why}", file=sys.stderr)
    return 1 if failed else 0


def _refusal(
    args: argparse.Namespace,
    campaign: Campaign | None,
    campaigns: dict[str, Campaign],
    settings: Settings,
) -> str | None:
    if campaign is None:
        nearest = did_you_mean(args.campaign, campaigns)
        return f"no campaign or journey named {args.campaign!r}{nearest}"
    if args.step and not campaign.is_journey:
        return f"{campaign.name} is a campaign, not a journey: it has no step {args.step!r}"
    steps = [s.name for s in campaign.steps]
    if args.step and args.step not in steps:
        return f"{campaign.name} has no step {args.step!r}{did_you_mean(args.step, steps)}"
    if not _ADDRESS.match(args.to):
        return "--to must be one email address"
    if not settings.warehouse.exists():
        return f"no warehouse at {settings.warehouse}: run a night first"
    return None


def _a_member(con: Any, campaign: Campaign) -> dict[str, Any] | None:
    """A real member's row, the first by contact_id, as a night renders it: the cohort's, or
    a journey instance's with a step due (any instance of it when none is due tonight)."""
    relations = [members_relation(campaign)]
    if campaign.is_journey:
        relations.append(f"main.journey_progress where journey = '{campaign.name}'")
    for relation in relations:
        try:
            cursor = con.execute(f"select * from {relation} order by contact_id limit 1")
        except duckdb.CatalogException:
            return None  # a warehouse built before the campaign was declared
        row = cursor.fetchone()
        if row:
            return dict(zip([c[0] for c in cursor.description], row, strict=True))
    return None


def test_messages(
    campaign: Campaign,
    member: dict[str, Any],
    to: str,
    step: str | None,
    unmasked: bool,
    unsubscribe: OneClick | None,
) -> list[Message]:
    """One message per variant (of each step, or of `step`): the member's data, masked unless
    `unmasked`, to `to`, marked as a test; its unsubscribe link names no real member."""
    owners = [s for s in campaign.steps if step in (None, s.name)] or [campaign]
    messages = []
    for owner in owners:
        step_name = owner.name if campaign.is_journey else None
        for variant in owner.variants or (None,):
            row = {
                **member,
                "nightjar_step": step_name,
                "nightjar_occasion": "test",
                "nightjar_journey_occasion": "test",
                "nightjar_variant": variant.name if variant else None,
            }
            message = build_message(campaign, row)
            send_id = f"test-{uuid.uuid4()}"
            messages.append(
                dataclasses.replace(
                    message,
                    send_id=send_id,
                    to_email=to.strip(),
                    to_name=None,
                    categories=(*message.categories, TEST_CATEGORY),
                    data=message.data
                    if unmasked
                    else {k: masked(v) for k, v in message.data.items()},
                    send_at=None,
                    deliver_by=None,
                    test=True,
                    headers=unsubscribe.headers(TEST_CONTACT, campaign.topic, send_id)
                    if unsubscribe
                    else {},
                )
            )
    return messages
