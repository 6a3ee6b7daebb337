"""One-click unsubscribe (RFC 8058) on `nightjar webhook`: a signed link's POST lands a topic
unsubscribe; a GET never does; a forged or tampered link changes nothing."""

from __future__ import annotations

import base64
import hmac
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from models.unsubscribe_tokens import (
    Unsubscribe,
    list_unsubscribe_headers,
    make_token,
    read_token,
)
from pipelines.event_store import EventStore
from pipelines.webhook import WebhookServer
from tests.unit.test_webhook import Signer, stored

SECRET = "a-secret-of-more-than-thirty-two-characters"


def test_a_token_names_contact_topic_and_message_and_only_its_secret_reads_it():
    token = make_token(SECRET, "c-1", "promotions", "send-9")
    assert read_token(SECRET, token) == Unsubscribe("c-1", "promotions", "send-9")
    assert read_token("another-secret-of-more-than-32-characters", token) is None
    payload, signature = token.split(".")
    # another contact's payload under this signature: refused
    other = make_token(SECRET, "c-2", "promotions", "send-9").split(".")[0]
    assert read_token(SECRET, f"{other}.{signature}") is None
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert read_token(SECRET, f"{payload}.{flipped}") is None
    for junk in ("", ".", "x.y.z", "no-dot", f"{payload}.", "é.é", "a" * 9000):
        assert read_token(SECRET, junk) is None
    # the spare bits of base64's last character: one signature, one spelling
    spare = (
        signature[:-1]
        + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(
                    signature[-1]
                )
                ^ 1
            )
        ]
    )
    assert read_token(SECRET, f"{payload}.{spare}") is None
    # a long contact id of non-ASCII characters still makes a link that works
    long_id = "€" * 255
    assert read_token(SECRET, make_token(SECRET, long_id, "lifecycle", "s")).contact_id == long_id


def test_a_token_is_the_compact_json_of_its_three_ids_signed_with_hmac_sha256():
    # the links already in mailboxes were made by this formula: a faster one must make the
    # same tokens, whatever the ids hold (quotes, controls, non-ASCII, astral, lone surrogates)
    def published(secret: str, *ids: str) -> str:
        b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # noqa: E731
        payload = b64(json.dumps(list(ids), separators=(",", ":")).encode())
        return f"{payload}.{b64(hmac.digest(secret.encode(), payload.encode(), 'sha256'))}"

    odd = ['"', "\\", "\n\r\t\x00\x1f\x7f", "é€", "😀", "\ud83d", "a" * 255, " ", "</script>"]
    for secret in (SECRET, "ünïcode-secret-of-more-than-thirty-two-chars"):
        for contact_id in ["c-1", *odd]:
            for send_id in ("s-1", *odd):
                assert make_token(secret, contact_id, "promotions", send_id) == published(
                    secret, contact_id, "promotions", send_id
                )


def test_the_headers_are_rfc_8058s_with_the_mailto_when_configured():
    headers = list_unsubscribe_headers(
        SECRET, "https://mail.shop.example", "leave@shop.example", "c-1", "birthday", "s-1"
    )
    token = make_token(SECRET, "c-1", "birthday", "s-1")
    assert headers == {
        "List-Unsubscribe": f"<https://mail.shop.example/unsubscribe/{token}>, "
        f"<mailto:leave@shop.example?subject=unsubscribe%20{token}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


@pytest.fixture
def server(tmp_path):
    running = WebhookServer(
        ("127.0.0.1", 0), Signer().public_key, EventStore(tmp_path), unsubscribe_secret=SECRET
    )
    threading.Thread(target=running.serve_forever, daemon=True).start()
    yield running
    running.shutdown()
    running.server_close()


def call(server: WebhookServer, token: str, method: str, body: bytes | None = None):
    url = server.url.replace("/sendgrid/events", f"/unsubscribe/{token}")
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def test_get_shows_a_button_and_unsubscribes_no_one(server, tmp_path: Path):
    token = make_token(SECRET, "c-1", "promotions", "s-1")
    status, page, headers = call(server, token, "GET")
    assert status == 200
    assert '<form method="post">' in page and "promotions" in page
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert stored(tmp_path) == []  # a mail scanner following the link changes nothing


def test_a_one_click_post_lands_a_topic_unsubscribe_once(server, tmp_path: Path):
    token = make_token(SECRET, "c-1", "promotions", "s-1")
    for _ in range(2):  # Gmail may post twice; the second is the same unsubscribe
        status, page, _ = call(server, token, "POST", b"List-Unsubscribe=One-Click")
        assert status == 200 and "promotions" in page
    (event,) = stored(tmp_path)
    assert {k: event[k] for k in ("event", "topic", "contact_id", "send_id")} == {
        "event": "group_unsubscribe",
        "topic": "promotions",
        "contact_id": "c-1",
        "send_id": "s-1",
    }
    assert "email" not in event  # the link never carries the address


def test_forged_and_tampered_links_get_403_and_change_nothing(server, tmp_path: Path):
    forged = make_token("someone-elses-secret-of-32-characters-or-more", "c-1", "lifecycle", "s")
    payload, signature = make_token(SECRET, "c-1", "promotions", "s-1").split(".")
    other = make_token(SECRET, "c-2", "promotions", "s-1").split(".")[0]
    for token in (forged, f"{other}.{signature}", "garbage", ""):
        for method in ("POST", "GET"):
            status, _, _ = call(server, token, method, b"" if method == "POST" else None)
            assert status == 403, (token, method)
    status, _, headers = call(server, f"{payload}.{signature}", "PUT", b"")
    assert status == 405 and headers["Allow"] == "GET, POST"
    assert stored(tmp_path) == []


def test_without_the_secret_the_webhook_serves_no_unsubscribe_page(tmp_path):
    running = WebhookServer(("127.0.0.1", 0), Signer().public_key, EventStore(tmp_path))
    threading.Thread(target=running.serve_forever, daemon=True).start()
    try:
        status, _, _ = call(running, make_token(SECRET, "c", "promotions", "s"), "POST", b"")
        assert status == 404
    finally:
        running.shutdown()
        running.server_close()
