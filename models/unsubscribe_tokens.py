"""One-click unsubscribe tokens (RFC 8058; docs/contract.md §17): what a message's
`List-Unsubscribe` link carries, and what `nightjar webhook` accepts.

A token names the contact, the topic and the message (send_id), and is signed with
HMAC-SHA256 under NIGHTJAR_UNSUBSCRIBE_SECRET: anyone holding the link may unsubscribe that
contact from that topic (as the RFC intends), no one can make a link for another contact or
topic. The address is not in it: links get logged and forwarded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass

PATH_PREFIX = "/unsubscribe/"
# Three ids of up to 255 characters (escaped as JSON: 6 bytes for a non-ASCII one) and a
# 32-byte signature fit; anything longer is not one of ours.
MAX_TOKEN_CHARS = 8192
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Unsubscribe:
    """Who asked to stop receiving what, as a verified token says."""

    contact_id: str
    topic: str
    send_id: str


# built once: json.dumps with options builds an encoder each call, a tenth of a token's time
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def make_token(secret: str, contact_id: str, topic: str, send_id: str) -> str:
    payload = _b64(_COMPACT_JSON.encode([contact_id, topic, send_id]).encode())
    return f"{payload}.{_b64(_signature(secret, payload))}"


def read_token(secret: str, token: str) -> Unsubscribe | None:
    """The unsubscribe a token asks for, or None when it is forged, tampered with or not a
    token at all. The signature is compared in constant time."""
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        return None
    payload, signature = token.split(".")
    try:
        given = _unb64(signature)
    except ValueError:
        return None
    if not hmac.compare_digest(given, _signature(secret, payload)):
        return None
    if _b64(given) != signature:
        # base64's last character has spare bits: four spellings of one signature would
        # verify, each a different link (and event id) for the same unsubscribe
        return None
    try:
        contact_id, topic, send_id = json.loads(_unb64(payload))
    except (ValueError, TypeError):
        return None  # signed by us, so never: unless the secret leaked and was misused
    if not all(isinstance(part, str) and part for part in (contact_id, topic, send_id)):
        return None
    return Unsubscribe(contact_id, topic, send_id)


def list_unsubscribe_headers(
    secret: str, base_url: str, mailto: str | None, contact_id: str, topic: str, send_id: str
) -> dict[str, str]:
    """The two headers of RFC 8058 for one message: Gmail's and Yahoo's one-click button
    POSTs `List-Unsubscribe=One-Click` to the https link."""
    token = make_token(secret, contact_id, topic, send_id)
    links = [f"<{base_url}{PATH_PREFIX}{token}>"]
    if mailto:
        links.append(f"<mailto:{mailto}?subject=unsubscribe%20{token}>")
    return {
        "List-Unsubscribe": ", ".join(links),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def event_id(token: str) -> str:
    """The landed event's sg_event_id: the same click twice is one unsubscribe."""
    return "nightjar-one-click-" + hashlib.sha256(token.encode()).hexdigest()[:32]


def _signature(secret: str, payload: str) -> bytes:
    return hmac.digest(secret.encode(), payload.encode(), "sha256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as error:
        raise ValueError("not base64url") from error
