"""The dry run: messages are rendered and counted, never sent, and nothing is recorded."""

from __future__ import annotations

from collections.abc import Sequence

from senders.base import BatchOutcome, Message


class DryRunSender:
    channel = "dry run"
    max_batch_size = None
    records_sends = False  # no ledger rows, no cohort history: a later real run sends all

    def __init__(self) -> None:
        # one sample per campaign and variant (None: a campaign without variants)
        self.samples: dict[tuple[str, str | None], Message] = {}

    def send_batch(self, business_date: str, messages: Sequence[Message]) -> BatchOutcome:
        for message in messages:
            self.samples.setdefault((message.campaign, message.variant), message)
        return BatchOutcome(accepted=True)
