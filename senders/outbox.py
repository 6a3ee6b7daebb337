"""The outbox: messages written as JSON lines to files instead of being sent
(docs/contract.md §5)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from senders.base import BatchOutcome, Message


class OutboxSender:
    """Writes `<outbox>/<date>/<campaign>.jsonl`, one message a line, replaced atomically.

    A message already in the file (same send_id) is replaced, not repeated, so writing a
    batch twice after a crash never duplicates it.
    """

    channel = "outbox"
    max_batch_size = None
    max_batch_bytes = None  # one file a campaign: no request to keep small
    records_sends = True
    requests_at_once = 1  # one file: batches written in turn

    def __init__(self, root: Path):
        self.root = root

    def messages_bytes(self, messages: Sequence[Message], exact: bool = False) -> int:
        return 0

    def path(self, business_date: dt.date, campaign: str) -> Path:
        return self.root / business_date.isoformat() / f"{campaign}.jsonl"

    def _read(self, path: Path) -> dict[str, str]:
        if not path.exists():
            return {}
        return {json.loads(line)["send_id"]: line for line in outbox_lines(path)}

    def already_delivered(self, business_date: dt.date, campaign: str) -> set[str]:
        """The send_ids the file holds: what a crashed run did write."""
        return set(self._read(self.path(business_date, campaign)))

    def send_batch(self, business_date: dt.date, messages: Sequence[Message]) -> BatchOutcome:
        if not messages:
            return BatchOutcome(accepted=True)
        by_campaign: dict[str, list[Message]] = {}
        for message in messages:
            by_campaign.setdefault(message.campaign, []).append(message)
        for campaign, campaign_messages in by_campaign.items():
            path = self.path(business_date, campaign)
            lines = self._read(path)
            for message in campaign_messages:
                lines[message.send_id] = json.dumps(_record(message), ensure_ascii=False)
            write_atomically(path, "".join(line + "\n" for line in lines.values()))
        return BatchOutcome(
            accepted=True, provider_message_id=f"outbox:{business_date.isoformat()}"
        )


def outbox_lines(path: Path) -> list[str]:
    """An outbox file's lines, each one message's JSON. Split at "\\n" alone: JSON written
    with ensure_ascii=False leaves U+2028, U+2029 and U+0085 as they are (a name or template
    value may hold one), and str.splitlines would cut a message's line at each."""
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def _record(message: Message) -> dict:
    return {
        "send_id": message.send_id,
        "campaign": message.campaign,
        "contact_id": message.contact_id,
        "occasion": message.occasion,
        **({"journey": message.campaign, "step": message.step} if message.step else {}),
        "to": message.to_email,
        "to_name": message.to_name,
        "from": message.from_email,
        "from_name": message.from_name,
        "template": message.template_id,
        "subject": message.subject,
        "categories": list(message.categories),
        "data": message.data,
        "variant": message.variant,
        "topic": message.topic,
        "headers": message.headers,
        **({"test": True} if message.test else {}),
        # the same moment SendGrid would be given, as ISO 8601 UTC and as its unix time
        "send_at": message.send_at.isoformat() if message.send_at else None,
        "send_at_unix": int(message.send_at.timestamp()) if message.send_at else None,
    }


def write_atomically(path: Path, content: str | bytes, mode: int | None = None) -> None:
    """Replace `path` with `content`: readers see the old file or the new one, never half of
    one. `mode` keeps the permissions of a file being rewritten (a new one gets 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# The temporary file write_atomically makes: `.<name>.<8 random characters>.tmp` (mkstemp).
_TEMP_FILE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def remove_stale_temp_files(root: Path) -> list[Path]:
    """Remove the temporary files write_atomically left anywhere under `root`: a process
    killed mid-write leaves one, a partial copy with names and addresses that no erasure
    would ever find. Returns the files removed.

    Call it only while holding the lock every writer under `root` takes (the send lock for
    the outbox, the events folder's lock for SendGrid's events): a write in progress has a
    temporary file too."""
    if not root.is_dir():
        return []
    removed = []
    for path in sorted(root.rglob(".*.tmp")):
        if _TEMP_FILE.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
