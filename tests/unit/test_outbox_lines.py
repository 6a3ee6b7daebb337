"""The outbox's own file, read back by a rerun and by an erasure, whatever text a message holds."""

from __future__ import annotations

import datetime as dt
import json

from assets.ingest.erasure_outbox import erase_in_outbox
from senders.base import Message
from senders.outbox import OutboxSender
from tests.support.messages import message as a_message

DAY = dt.date(2025, 11, 20)
# what json.dumps(ensure_ascii=False) leaves as it is, and str.splitlines breaks a line at
SEPARATORS = "a\u2028b\u2029c\x85d"


def message(n: int) -> Message:
    return a_message(
        n,
        campaign="news",
        to_email=f"c{n}@example.com",
        to_name=f"N{SEPARATORS}",
        data={"note": SEPARATORS},
    )


def test_a_message_holding_unicode_line_separators_is_read_back_whole(tmp_path):
    outbox = OutboxSender(tmp_path)
    assert outbox.send_batch(DAY, [message(1)]).accepted
    # the second batch reads the file back to keep what the first wrote
    assert outbox.send_batch(DAY, [message(2)]).accepted
    assert outbox.already_delivered(DAY, "news") == {"send-1", "send-2"}
    path = outbox.path(DAY, "news")

    assert erase_in_outbox(tmp_path, ["c1"]) == 1
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]
    assert [(r["contact_id"], r["to"], r["data"]) for r in records] == [
        ("c1", None, {}),
        ("c2", "c2@example.com", {"note": SEPARATORS}),
    ]
