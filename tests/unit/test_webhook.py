"""`nightjar webhook`: only SendGrid-signed events are stored, each once."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from models.landing import EVENTS_FOLDER
from pipelines.event_store import SEEN_INDEX, EventStore
from pipelines.webhook import WebhookServer

SAMPLE = json.loads(
    (
        Path(__file__).parents[1] / "support" / "reference" / "sendgrid-event-webhook-sample.json"
    ).read_text()
)


class Signer:
    """Signs payloads the way SendGrid does, with a key pair of our own."""

    def __init__(self):
        self._key = ec.generate_private_key(ec.SECP256R1())
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode()

    def headers(self, payload: bytes, timestamp: str = "1700000000") -> dict[str, str]:
        signature = self._key.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }


def start(landing: Path, public_key: str) -> WebhookServer:
    clock = lambda: dt.datetime(2025, 11, 20, 12, tzinfo=dt.UTC)  # noqa: E731
    server = WebhookServer(("127.0.0.1", 0), public_key, EventStore(landing, clock))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def post(server: WebhookServer, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(server.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def stored(landing: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted((landing / EVENTS_FOLDER).glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").split("\n")
        if line
    ]


@pytest.fixture
def signer():
    return Signer()


@pytest.fixture
def server(tmp_path, signer):
    running = start(tmp_path, signer.public_key)
    yield running
    running.shutdown()
    running.server_close()


def test_sendgrids_own_signed_sample_is_accepted(tmp_path):
    server = start(tmp_path, SAMPLE["public_key"])
    try:
        status = post(
            server,
            SAMPLE["payload"].encode(),
            {
                "X-Twilio-Email-Event-Webhook-Signature": SAMPLE["signature"],
                "X-Twilio-Email-Event-Webhook-Timestamp": SAMPLE["timestamp"],
                "Content-Type": "application/json",
            },
        )
    finally:
        server.shutdown()
        server.server_close()
    assert status == 200
    (event,) = stored(tmp_path)
    assert event["event"] == "dropped" and event["reason"] == "Bounced Address"
    assert (tmp_path / EVENTS_FOLDER / "2025-11-20.jsonl").exists()


def test_a_forged_signature_gets_403_and_nothing_is_stored(tmp_path, server, signer):
    body = json.dumps([{"event": "unsubscribe", "email": "a@example.com", "sg_event_id": "x"}])
    forged = Signer().headers(body.encode())  # signed, but by someone else's key
    assert post(server, body.encode(), forged) == 403
    tampered = signer.headers(body.encode())
    assert post(server, body.replace("a@", "b@").encode(), tampered) == 403
    assert post(server, body.encode(), {}) == 403
    assert not stored(tmp_path)


def test_events_are_stored_once_by_sg_event_id(tmp_path, server, signer):
    events = [
        {"event": "delivered", "email": "a@example.com", "sg_event_id": "e1", "timestamp": 1},
        {"event": "open", "email": "a@example.com", "sg_event_id": "e2", "timestamp": 2},
    ]
    body = json.dumps(events).encode()
    assert post(server, body, signer.headers(body)) == 200
    assert post(server, body, signer.headers(body)) == 200  # SendGrid retried
    assert [e["sg_event_id"] for e in stored(tmp_path)] == ["e1", "e2"]

    # A restarted webhook still knows what it stored.
    again = start(tmp_path, signer.public_key)
    try:
        assert post(again, body, signer.headers(body)) == 200
    finally:
        again.shutdown()
        again.server_close()
    assert len(stored(tmp_path)) == 2


def test_a_signed_body_that_is_not_an_event_array_is_refused(tmp_path, server, signer):
    body = b'{"event": "open"}'
    assert post(server, body, signer.headers(body)) == 400
    assert not stored(tmp_path)


def test_the_webhook_refuses_to_start_without_a_key(workspace, capsys):
    from pipelines.cli import main

    assert main(["webhook", "--port", "0"]) == 2
    assert "set SENDGRID_WEBHOOK_PUBLIC_KEY" in capsys.readouterr().err


def test_a_line_cut_short_by_a_crash_does_not_stop_the_webhook_or_later_events(tmp_path, signer):
    folder = tmp_path / EVENTS_FOLDER
    folder.mkdir()
    (folder / "2025-11-20.jsonl").write_bytes(
        b'{"event": "open", "sg_event_id": "ok-1"}\n{"event": "click", "sg_event_id": "cu\xc3'
    )
    server = start(tmp_path, signer.public_key)
    try:
        body = json.dumps([{"event": "open", "sg_event_id": "new-1", "timestamp": 1}]).encode()
        assert post(server, body, signer.headers(body)) == 200
    finally:
        server.shutdown()
        server.server_close()
    lines = (folder / "2025-11-20.jsonl").read_bytes().split(b"\n")
    assert json.loads(lines[-2])["sg_event_id"] == "new-1"  # on a line of its own


def test_events_that_could_not_be_stored_get_500_and_the_retry_stores_them(
    tmp_path, server, signer, monkeypatch
):
    body = json.dumps([{"event": "open", "sg_event_id": "e9", "timestamp": 1}]).encode()
    real_write = EventStore._write

    def disk_full(self, path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(EventStore, "_write", disk_full)
    assert post(server, body, signer.headers(body)) == 500
    monkeypatch.setattr(EventStore, "_write", real_write)
    assert post(server, body, signer.headers(body)) == 200  # SendGrid's retry
    assert [e["sg_event_id"] for e in stored(tmp_path)] == ["e9"]


def test_a_corrupt_deduplication_index_is_replaced_and_nothing_is_refused(tmp_path, signer):
    folder = tmp_path / EVENTS_FOLDER
    folder.mkdir()
    (folder / SEEN_INDEX).write_bytes(b"not a database" * 100)
    server = start(tmp_path, signer.public_key)
    try:
        body = json.dumps([{"event": "open", "sg_event_id": "c1", "timestamp": 1}]).encode()
        assert post(server, body, signer.headers(body)) == 200
        assert post(server, body, signer.headers(body)) == 200  # a retry, recognised
    finally:
        server.shutdown()
        server.server_close()
    assert [e["sg_event_id"] for e in stored(tmp_path)] == ["c1"]
