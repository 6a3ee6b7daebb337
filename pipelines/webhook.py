"""`nightjar webhook`: receives SendGrid's signed Event Webhook and lands the events as files.

Only requests whose ECDSA signature verifies (SendGrid's own helper) are stored; everything
else gets 403 and leaves no trace. Events are appended, one JSON object a line, to
`$NIGHTJAR_LANDING/sendgrid_events/<UTC receipt date>.jsonl`; an `sg_event_id` seen before
is not written again. The nightly run ingests those files.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

from pipelines.landing import EVENTS_FOLDER

WEBHOOK_PATH = "/sendgrid/events"
MAX_BODY_BYTES = 10 * 1024 * 1024  # SendGrid batches events; this is far above its batches

log = logging.getLogger("nightjar.webhook")


class EventStore:
    """Appends events to the day's file, skipping event ids already stored."""

    def __init__(self, landing: Path, clock: Callable[[], dt.datetime] | None = None):
        self.folder = landing / EVENTS_FOLDER
        self.folder.mkdir(parents=True, exist_ok=True)
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._lock = threading.Lock()
        self._seen = self._load_seen()

    def _load_seen(self) -> set[str]:
        seen = set()
        for path in self.folder.glob("*.jsonl"):
            # Bytes, line by line: a line cut short by a crash is skipped, not fatal.
            for line in path.read_bytes().split(b"\n"):
                try:
                    event_id = json.loads(line).get("sg_event_id")
                except (ValueError, AttributeError):
                    continue
                if event_id:
                    seen.add(event_id)
        return seen

    def append(self, events: list[dict]) -> int:
        """Store the new events durably; returns how many were new. Raises OSError when
        they could not be stored (the caller answers 500 and SendGrid sends them again)."""
        with self._lock:
            fresh, ids = [], set()
            for event in events:
                event_id = event.get("sg_event_id")
                if event_id and (event_id in self._seen or event_id in ids):
                    continue
                fresh.append(event)
                if event_id:
                    ids.add(event_id)
            if fresh:
                self._write(fresh)
            # Only once they are on disk: a failed write must not make SendGrid's retry
            # look like a duplicate.
            self._seen |= ids
            return len(fresh)

    def _write(self, events: list[dict]) -> None:
        path = self.folder / f"{self._clock():%Y-%m-%d}.jsonl"
        data = b"".join(
            json.dumps(event, ensure_ascii=False, sort_keys=True).encode() + b"\n"
            for event in events
        )
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a crash cut the last line short: start on a new one
            # One write call on an O_APPEND file: readers never see half a batch's line
            # boundaries move, and SendGrid retries only while we answer non-2xx.
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)


class WebhookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], public_key: str, store: EventStore):
        super().__init__(address, _Handler)
        self.verifier = EventWebhook()
        try:
            self.public_key = self.verifier.convert_public_key_to_ecdsa(public_key.strip())
        except (ValueError, UnsupportedAlgorithm) as error:
            raise ValueError(
                "SENDGRID_WEBHOOK_PUBLIC_KEY is not a valid verification key: copy it from "
                "SendGrid's Mail Settings > Event Webhook > Signature Verification."
            ) from error
        self.store = store

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}{WEBHOOK_PATH}"


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != WEBHOOK_PATH:
            return self._answer(HTTPStatus.NOT_FOUND, "not found")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too large")
        body = self.rfile.read(length)
        signature = self.headers.get(EventWebhookHeader.SIGNATURE)
        timestamp = self.headers.get(EventWebhookHeader.TIMESTAMP)
        if not self._verified(body, signature, timestamp):
            log.warning(
                "rejected an event post from %s: bad or missing signature", self.client_address[0]
            )
            return self._answer(HTTPStatus.FORBIDDEN, "signature verification failed")
        try:
            events = json.loads(body)
        except ValueError:
            return self._answer(HTTPStatus.BAD_REQUEST, "body is not JSON")
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            return self._answer(HTTPStatus.BAD_REQUEST, "body must be a JSON array of events")
        try:
            stored = self.server.store.append(events)
        except OSError as error:
            log.error("could not store %d event(s): %s", len(events), error)
            return self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, "could not store the events")
        log.info("stored %d of %d event(s)", stored, len(events))
        return self._answer(HTTPStatus.OK, "ok")

    def _verified(self, body: bytes, signature: str | None, timestamp: str | None) -> bool:
        if not signature or not timestamp:
            return False
        try:
            payload = body.decode("utf-8")
            return self.server.verifier.verify_signature(
                payload, signature, timestamp, self.server.public_key
            )
        except (ValueError, UnicodeDecodeError):  # undecodable base64 or body
            return False

    def _answer(self, status: HTTPStatus, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:
        log.debug("%s - %s", self.client_address[0], format % args)


def serve(landing: Path, public_key: str, host: str, port: int) -> None:
    server = WebhookServer((host, port), public_key, EventStore(landing))
    print(f"nightjar webhook: listening on {server.url}, storing into {server.store.folder}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
