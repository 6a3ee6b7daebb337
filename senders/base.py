"""What every way out (outbox, SendGrid) is given and must answer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Message:
    """One rendered message to one contact for one campaign occasion."""

    send_id: str
    campaign: str
    contact_id: str
    occasion: str
    to_email: str
    to_name: str | None
    template_id: str
    subject: str
    from_email: str
    from_name: str | None
    categories: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)
    variant: str | None = None  # the A/B arm, when the campaign tests variants
    send_at: dt.datetime | None = None  # when the provider is to deliver it (aware, UTC)
    # The latest moment it may still leave (aware, UTC): the next quiet hours in the
    # contact's time zone. Past it, a provider would deliver at once, perhaps at night.
    deliver_by: dt.datetime | None = None
    step: str | None = None  # a journey's step; `campaign` is then the journey's name
    topic: str | None = None  # what the recipient would unsubscribe from (its program's)
    # List-Unsubscribe and List-Unsubscribe-Post (RFC 8058), when Nightjar serves one-click
    headers: dict[str, str] = field(default_factory=dict)
    test: bool = False  # nightjar send-test: to a tester, never in the ledger

    @property
    def ledger_occasion(self) -> str:
        """The ledger's key of the message: a journey's steps share their occasion."""
        return f"{self.occasion}#{self.step}" if self.step else self.occasion

    @property
    def label(self) -> str:
        """Which step and variant it is, in words ("step welcome_2, variant b"), or ""."""
        named = (("step", self.step), ("variant", self.variant))
        return ", ".join(f"{kind} {name}" for kind, name in named if name)

    @property
    def custom_args(self) -> dict[str, str]:
        # SendGrid echoes these in every event, which is how a send is traced back.
        args = {
            "campaign": self.campaign,
            "contact_id": self.contact_id,
            "send_id": self.send_id,
            "occasion": self.occasion,
        }
        if self.step:
            args["journey"] = self.campaign
            args["step"] = self.step
        if self.variant:
            args["variant"] = self.variant
        if self.topic:
            # a group unsubscribe's event then says which topic the message was of
            args["topic"] = self.topic
        if self.test:
            # its send_id (test-...) is no ledger row: its events settle nothing, and
            # sender_reputation leaves them out
            args["nightjar_test"] = "true"
        return args


@dataclass
class BatchOutcome:
    """What became of a batch: accepted with the provider's id, or why not."""

    accepted: bool
    provider_message_id: str | None = None
    error: str | None = None
    # send_id -> reason, for messages the provider refused one by one while it accepted
    # the rest of the batch (a bad address must not hold back its 999 neighbours).
    refused: dict[str, str] = field(default_factory=dict)
    # True when the request may have reached the provider although no answer came back:
    # sending again could duplicate, so such messages are never re-sent automatically.
    fate_unknown: bool = False
    # Of `refused`, those refused for their address: no campaign should try it again.
    bad_addresses: set[str] = field(default_factory=set)
    # Refused for something in it that the provider did not name (a request too large, an
    # error without a field): sent again in halves, a bad message is found and set aside.
    splittable: bool = False
    # Refused whatever it holds (a bad API key, a template that does not exist): every other
    # batch would be too, so the campaign stops here.
    stop: bool = False
    # Not sent: a message's deliver_by passed while the request waited to be tried again (a
    # rate limit). It may not leave now, at night; the campaign stops here.
    late: bool = False


class Sender(Protocol):
    channel: str
    max_batch_size: int | None  # None: the whole campaign in one batch
    max_batch_bytes: int | None  # None: no limit on a request's size
    records_sends: bool  # False for rehearsals (SendGrid's sandbox): no ledger, no occasions
    # Requests out at once; send_batch is then called from as many threads. Absent: 1.
    requests_at_once: int

    def send_batch(self, business_date: dt.date, messages: Sequence[Message]) -> BatchOutcome: ...

    def messages_bytes(self, messages: Sequence[Message], exact: bool = False) -> int:
        """What the messages add to a request, together, for `max_batch_bytes`: at least
        that, and exactly that once it is over `max_batch_bytes` (or when `exact`)."""
        ...


def batches(
    messages: Sequence[Message],
    size: int | None,
    max_bytes: int | None = None,
    size_of: Callable[[Message], int] | None = None,
) -> Iterator[list[Message]]:
    """Split into batches of at most `size` messages and `max_bytes` (by `size_of`; a
    message bigger than that alone goes alone), never with one address twice in a batch
    (SendGrid rejects a request that names an address twice). One pass, in order."""
    limit = size or max(len(messages), 1)
    filled: list[list[Message]] = []
    used: list[int] = []  # bytes of each batch
    last_batch_of: dict[str, int] = {}
    first_open = 0  # every batch before it is full
    for message in messages:
        address = message.to_email.lower()
        weight = size_of(message) if max_bytes is not None and size_of else 0
        index = max(first_open, last_batch_of.get(address, -1) + 1)
        while index < len(filled) and (
            len(filled[index]) >= limit
            or (max_bytes is not None and filled[index] and used[index] + weight > max_bytes)
        ):
            index += 1
        if index == len(filled):
            filled.append([])
            used.append(0)
        filled[index].append(message)
        used[index] += weight
        last_batch_of[address] = index
        while first_open < len(filled) and len(filled[first_open]) >= limit:
            first_open += 1
    yield from filled
