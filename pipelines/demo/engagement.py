"""The demo's stand-in for SendGrid's Event Webhook.

Without a SendGrid account the demo's messages go to the outbox, and nobody opens them. So
that the campaign results have something to show, the demo writes the events SendGrid would
have posted for a night's outbox (delivered or bounced, opened, clicked, unsubscribed) into
the landing, as `nightjar webhook` stores them. Only `nightjar demo` calls this; the
rates below are made up, and so are the events.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import numpy as np

from models.landing import EVENTS_FOLDER
from senders.outbox import outbox_lines

BOUNCE_RATE = 0.03
OPEN_RATE = 0.35  # of those delivered
CLICK_RATE = 0.25  # of those opened
UNSUBSCRIBE_RATE = 0.01  # of those delivered
TOPIC_UNSUBSCRIBE_RATE = 0.04  # of those delivered: from the message's topic alone


def write_demo_events(outbox_day: Path, landing: Path, on: dt.date, seed: int) -> int:
    """Events for every message in `outbox_day`, stamped during `on` (UTC); returns how many."""
    rng = np.random.default_rng(seed)
    start = dt.datetime.combine(on, dt.time(8), dt.UTC)
    lines = []
    for path in sorted(outbox_day.glob("*.jsonl")):
        for line in outbox_lines(path):
            message = json.loads(line)
            when = start + dt.timedelta(minutes=int(rng.integers(0, 12 * 60)))
            names = ["bounce"] if rng.random() < BOUNCE_RATE else ["delivered"]
            if names == ["delivered"] and rng.random() < OPEN_RATE:
                names.append("open")
                if rng.random() < CLICK_RATE:
                    names.append("click")
            if names[0] == "delivered" and rng.random() < UNSUBSCRIBE_RATE:
                names.append("unsubscribe")
            elif names[0] == "delivered" and rng.random() < TOPIC_UNSUBSCRIBE_RATE:
                names.append("group_unsubscribe")
            for step, name in enumerate(names):
                lines.append(
                    json.dumps(
                        {
                            "email": message["to"],
                            "timestamp": int((when + dt.timedelta(minutes=5 * step)).timestamp()),
                            "event": name,
                            "sg_event_id": str(uuid.UUID(int=int(rng.integers(0, 2**63)))),
                            "sg_message_id": f"demo-{message['send_id']}",
                            "campaign": message["campaign"],
                            "contact_id": message["contact_id"],
                            "send_id": message["send_id"],
                            # SendGrid echoes custom_args: a group unsubscribe names its topic
                            "topic": message.get("topic"),
                            **({"type": "bounce", "reason": "demo"} if name == "bounce" else {}),
                        }
                    )
                )
    folder = landing / EVENTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{on.isoformat()}.jsonl").open("a", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in lines)
    return len(lines)
