"""A rendered message for tests of the ways out, without a cohort or a night behind it."""

from __future__ import annotations

import dataclasses

from senders.base import Message


def message(n: int, **fields) -> Message:
    """Message number `n` of a loyalty campaign to person<n>@example.com; `fields` replace
    any of its own."""
    base = Message(
        send_id=f"send-{n}",
        campaign="loyalty",
        contact_id=f"c{n}",
        occasion="2025-11-20",
        to_email=f"person{n}@example.com",
        to_name=f"Person {n}",
        template_id="d-10000000000000000000000000000001",
        subject="Thank you",
        from_email="hello@shop.example.com",
        from_name="Shop",
        data={"first_name": f"Person {n}"},
    )
    return dataclasses.replace(base, **fields)
