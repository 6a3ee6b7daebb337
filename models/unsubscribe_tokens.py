"""One-click unsubscribe tokens (RFC 8058; docs/contract.md §17): what a message's
`List-Unsubscribe` link carries, and what `nightjar webhook` accepts.

A token names the contact, the topic and the message (send_id), and is signed with
HMAC-SHA256 under NIGHTJAR_UNSUBSCRIBE_SECRET: anyone holding the link may unsubscribe that
contact from that topic (as the RFC intends), no one can make a link for another contact or
topic. The address is not in it: links get logged and forwarded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _json_text  # json.dumps' escaping

PATH_PREFIX = "/unsubscribe/"
# Three ids of up to 255 characters (escaped as JSON: 6 bytes for a non-ASCII one) and a
# 32-byte signature fit; anything longer is not one of ours.
MAX_TOKEN_CHARS = 8192
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_URLSAFE = bytes.maketrans(b"+/", b"-_")


@dataclass(frozen=True)
class Unsubscribe:
    """Who asked to stop receiving what, as a verified token says."""

    contact_id: str
    topic: str
    send_id: str


class TokenSigner:
    """make_token for the many messages of a send, under one secret: the key is prepared
    once, and each token costs a third of what json.dumps, base64 and hmac.digest cost."""

    def __init__(self, secret: str):
        self._keyed = hmac.new(secret.encode(), digestmod="sha256")

    def token(self, contact_id: str, topic: str, send_id: str) -> str:
        # what json.dumps([...], separators=(",", ":")) writes for three texts
        text = f"[{_json_text(contact_id)},{_json_text(topic)},{_json_text(send_id)}]"
        payload = _b64(text.encode())
        return f"{payload}.{_b64(self.signature(payload))}"

    def signature(self, payload: str) -> bytes:
        keyed = self._keyed.copy()
        keyed.update(payload.encode())
        return keyed.digest()


def make_token(secret: str, contact_id: str, topic: str, send_id: str) -> str:
    return TokenSigner(secret).token(contact_id, topic, send_id)


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
    if not hmac.compare_digest(given, TokenSigner(secret).signature(payload)):
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
    return one_click_headers(make_token(secret, contact_id, topic, send_id), base_url, mailto)


def one_click_headers(token: str, base_url: str, mailto: str | None) -> dict[str, str]:
    """list_unsubscribe_headers of a message whose token is made (TokenSigner)."""
    links = f"<{base_url}{PATH_PREFIX}{token}>"
    if mailto:
        links += f", <mailto:{mailto}?subject=unsubscribe%20{token}>"
    return {"List-Unsubscribe": links, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def event_id(token: str) -> str:
    """The landed event's sg_event_id: the same click twice is one unsubscribe."""
    return "nightjar-one-click-" + hashlib.sha256(token.encode()).hexdigest()[:32]


def _b64(data: bytes) -> str:
    # base64.urlsafe_b64encode's result, from its two C calls without its Python around them
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as error:
        raise ValueError("not base64url") from error
