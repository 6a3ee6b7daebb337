"""The dry run: messages are rendered and counted, never sent, and nothing is recorded."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from senders.base import BatchOutcome, Message


class DryRunSender:
    channel = "dry run"
    max_batch_size = None
    max_batch_bytes = None  # nothing is sent: no request to keep small
    records_sends = False  # no ledger rows, no cohort history: a later real run sends all
    requests_at_once = 1

    def messages_bytes(self, messages: Sequence[Message], exact: bool = False) -> int:
        return 0

    def send_batch(self, business_date: dt.date, messages: Sequence[Message]) -> BatchOutcome:
        return BatchOutcome(accepted=True)
