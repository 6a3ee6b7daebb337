"""`nightjar webhook`: receives SendGrid's signed Event Webhook and lands the events as files.

Only requests whose ECDSA signature verifies are stored; everything else gets 403 and leaves
no trace. Events are appended, one JSON object a line, to
`$NIGHTJAR_LANDING/sendgrid_events/<UTC receipt date>.jsonl`; an `sg_event_id` stored in the
last DEDUP_DAYS days is not written again. The nightly run ingests those files.

It is served by waitress, which reads each request whole (headers capped, body capped on the
bytes it receives, Content-Length validated first) on one asynchronous I/O thread before a
bounded pool of worker threads sees it, so idle and slow clients cost a socket, not a thread.
On top of waitress: a deadline for receiving a whole request (slowloris), structural limits
on the signed JSON, and de-duplication through a small SQLite index instead of memory.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import html
import logging
import resource
import threading
import time
from dataclasses import dataclass, replace
from http import HTTPStatus
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from models.unsubscribe_tokens import PATH_PREFIX, read_token
from models.unsubscribe_tokens import event_id as unsubscribe_event_id
from pipelines.event_store import BadBatch, Event, EventStore, decode_batch

WEBHOOK_PATH = "/sendgrid/events"

# File descriptors kept free of connections: event files, the index, the lock, logs.
_FD_RESERVE = 64

log = logging.getLogger("nightjar.webhook")


@dataclass(frozen=True)
class Limits:
    """What a client may cost the server (the defaults suit SendGrid and survive abuse)."""

    # Counted on the bytes received (chunked bodies too); a larger Content-Length gets 413
    # before any of the body is read.
    max_body_bytes: int = 10 * 1024 * 1024
    # Request line and headers; SendGrid's are under 2 KB.
    max_header_bytes: int = 32 * 1024
    # Seconds to receive one whole request from its first byte: a client trickling its
    # headers or body (slowloris) is disconnected however steadily it trickles.
    request_deadline: float = 30.0
    # Seconds a connection may stay silent, before its first request or between keep-alive
    # requests.
    idle_timeout: int = 15
    # Requests handled at once; each holds at most one body, so memory stays bounded.
    threads: int = 4
    # Open connections; idle ones cost a socket each. Above it, new ones wait in the backlog.
    max_connections: int = 4096
    # Connections the kernel queues before they are accepted.
    backlog: int = 2048

    def within_open_files(self, open_files: int) -> Limits:
        """These limits with no more connections than the process can open: a connection may
        need two descriptors (its socket and a temporary file for a large body)."""
        fitting = max(16, (open_files - _FD_RESERVE) // 2)
        return replace(self, max_connections=min(self.max_connections, fitting))


class _DeadlineChannel(HTTPChannel):
    """waitress's connection, which also knows since when its current request is arriving.

    waitress only closes connections that stay silent (channel_timeout); one that sends a
    byte every few seconds would keep its socket forever."""

    request_began: float | None = None

    def received(self, data: bytes) -> bool:
        partial = self.request
        done = super().received(data)
        if self.request is None:
            self.request_began = None  # nothing half-received
        elif self.request is not partial:
            self.request_began = time.monotonic()  # a new request started in this data
        return done


class _Listener(TcpWSGIServer):
    """waitress's listening socket, whose housekeeping also enforces the request deadline."""

    channel_class = _DeadlineChannel
    request_deadline = Limits.request_deadline

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # silent connections (idle timeout)
        cutoff = time.monotonic() - self.request_deadline
        late = [
            channel
            for channel in self.active_channels.values()
            if channel.request_began is not None and channel.request_began < cutoff
        ]
        for channel in late:
            channel.will_close = True  # closed by the I/O loop, unanswered
        if late:
            log.info(
                "closed %d connection(s) still sending a request after %gs",
                len(late),
                self.request_deadline,
            )


class _Refusals:
    """Counts refused posts and logs them at most every 10 s: an attack cannot flood the log."""

    def __init__(self, every: float = 10.0):
        self._every = every
        self._count = 0
        self._next = 0.0
        self._lock = threading.Lock()

    def add(self, client: str) -> None:
        with self._lock:
            self._count += 1
            now = time.monotonic()
            if now < self._next:
                return
            count, self._count, self._next = self._count, 0, now + self._every
        log.warning(
            "rejected %d event post(s) with a bad or missing signature (last from %s)",
            count,
            client,
        )


_SIGNATURE = "HTTP_" + EventWebhookHeader.SIGNATURE.upper().replace("-", "_")
_TIMESTAMP = "HTTP_" + EventWebhookHeader.TIMESTAMP.upper().replace("-", "_")


class WebhookServer:
    """The webhook on waitress with `limits`; serve_forever, shutdown and server_close work
    as socketserver's do, so tests and `make chaos` can run it on a thread."""

    def __init__(
        self,
        address: tuple[str, int],
        public_key: str,
        store: EventStore,
        limits: Limits | None = None,
        unsubscribe_secret: str | None = None,
    ):
        self.public_key = _verification_key(public_key)
        # One-click unsubscribe (docs/contract.md §17): served only with the key that
        # signed the links, else 404 as any unknown path.
        self.unsubscribe_secret = unsubscribe_secret
        self.store = store
        self.limits = limits or Limits()
        self._refusals = _Refusals()
        self._map: dict = {}
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._dispatcher = ThreadedTaskDispatcher()
        adjustments = self._adjustments(address)
        self._listeners = []
        try:
            for sockinfo in adjustments.listen:
                listener = _Listener(
                    self.application,
                    self._map,
                    dispatcher=self._dispatcher,
                    adj=adjustments,
                    sockinfo=sockinfo,
                )
                listener.request_deadline = self.limits.request_deadline
                self._listeners.append(listener)
        except BaseException:
            wasyncore.close_all(self._map)
            raise
        self._dispatcher.set_thread_count(self.limits.threads)

    def _adjustments(self, address: tuple[str, int]) -> Adjustments:
        limits = self.limits
        return Adjustments(
            host=address[0],
            port=address[1],
            threads=limits.threads,
            # waitress answers 413 itself when Content-Length reaches this, before reading.
            max_request_body_size=limits.max_body_bytes + 1,
            max_request_header_size=limits.max_header_bytes,
            channel_timeout=limits.idle_timeout,
            cleanup_interval=1,  # how often the idle timeout and the deadline are checked
            # The server itself and its wake-up pipe are in the same map as the connections.
            connection_limit=limits.max_connections + 2,
            backlog=limits.backlog,
            # Bodies above this wait in a temporary file: connections x this bounds memory.
            inbuf_overflow=64 * 1024,
            # select() cannot watch descriptors above 1024: a thousand idle clients would
            # crash the loop.
            asyncore_use_poll=True,
            # Resets and broken pipes are what abusive clients do; not worth a traceback.
            log_socket_errors=False,
            ident="nightjar",
        )

    @property
    def url(self) -> str:
        host, port = self._listeners[0].effective_host, self._listeners[0].effective_port
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}{WEBHOOK_PATH}"

    def serve_forever(self) -> None:
        self._stop.clear()
        self._stopped.clear()
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=1.0, use_poll=True, map=self._map, count=1)
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        self._stop.set()
        self._listeners[0].pull_trigger()  # wake the loop from its poll
        self._stopped.wait(timeout=10)

    def server_close(self) -> None:
        self._dispatcher.shutdown(timeout=5)
        wasyncore.close_all(self._map)
        self.store.close()

    # --- the WSGI application, on a worker thread once the whole request has arrived ---

    def application(self, environ: dict, start_response) -> list[bytes]:
        kind, allow = "text/plain", "POST"
        try:
            if self.unsubscribe_secret and str(environ.get("PATH_INFO")).startswith(PATH_PREFIX):
                status, text, kind = self._unsubscribe(environ)
                allow = "GET, POST"
            else:
                status, text = self._handle(environ)
        except Exception:  # every request gets an answer, whatever went wrong
            log.exception("could not handle a request")
            status, text, kind = HTTPStatus.INTERNAL_SERVER_ERROR, "internal error", "text/plain"
        data = text.encode() + b"\n"
        headers = [
            ("Content-Type", f"{kind}; charset=utf-8"),
            ("Content-Length", str(len(data))),
        ]
        if kind == "text/html":
            # the page is ours alone: no script, no frame, no referrer leaking the token
            headers += [
                ("Content-Security-Policy", "default-src 'none'; form-action 'self'"),
                ("X-Frame-Options", "DENY"),
                ("Referrer-Policy", "no-referrer"),
                ("Cache-Control", "no-store"),
            ]
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            headers.append(("Allow", allow))
        start_response(f"{status.value} {status.phrase}", headers)
        return [data]

    def _handle(self, environ: dict) -> tuple[HTTPStatus, str]:
        if environ.get("PATH_INFO") != WEBHOOK_PATH:
            return HTTPStatus.NOT_FOUND, "not found"
        if environ.get("REQUEST_METHOD") != "POST":
            return HTTPStatus.METHOD_NOT_ALLOWED, "only POST"
        signature, timestamp = environ.get(_SIGNATURE), environ.get(_TIMESTAMP)
        if not signature or not timestamp:
            self._refusals.add(environ.get("REMOTE_ADDR", "?"))
            return HTTPStatus.FORBIDDEN, "signature verification failed"
        # waitress stops at the cap already; this bounds what is read even if it did not.
        body = environ["wsgi.input"].read(self.limits.max_body_bytes + 1)
        if len(body) > self.limits.max_body_bytes:
            return HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too large"
        if not self._verified(body, signature, timestamp):
            self._refusals.add(environ.get("REMOTE_ADDR", "?"))
            return HTTPStatus.FORBIDDEN, "signature verification failed"
        try:
            events = decode_batch(body)
        except BadBatch as error:
            log.warning("refused a signed event post: %s", error)
            return HTTPStatus.BAD_REQUEST, str(error)
        try:
            stored = self.store.append(events)
        except OSError as error:
            log.error("could not store %d event(s): %s", len(events), error)
            return HTTPStatus.INTERNAL_SERVER_ERROR, "could not store the events"
        log.info("stored %d of %d event(s)", stored, len(events))
        return HTTPStatus.OK, "ok"

    def _unsubscribe(self, environ: dict) -> tuple[HTTPStatus, str, str]:
        """One-click unsubscribe (RFC 8058): a POST with a valid token lands a
        group_unsubscribe for its contact and topic; a GET only shows a page whose button
        POSTs (mail scanners follow links, and must not unsubscribe anyone)."""
        token = str(environ["PATH_INFO"])[len(PATH_PREFIX) :]
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "POST"):
            return HTTPStatus.METHOD_NOT_ALLOWED, "only GET or POST", "text/plain"
        asked = read_token(self.unsubscribe_secret, token)
        if asked is None:
            self._refusals.add(environ.get("REMOTE_ADDR", "?"))
            return HTTPStatus.FORBIDDEN, "this unsubscribe link is not valid", "text/plain"
        if method == "GET":
            return HTTPStatus.OK, confirmation_page(asked.topic), "text/html"
        # The body (List-Unsubscribe=One-Click, or the page's form) says nothing the token
        # does not: waitress has read it whole already, and it is ignored.
        event = {
            "event": "group_unsubscribe",
            "topic": asked.topic,
            "contact_id": asked.contact_id,
            "send_id": asked.send_id,
            "timestamp": int(time.time()),
            "sg_event_id": unsubscribe_event_id(token),
            "nightjar_one_click": True,
        }
        try:
            self.store.append([Event.of(event)])
        except OSError as error:
            log.error("could not store a one-click unsubscribe: %s", error)
            return HTTPStatus.INTERNAL_SERVER_ERROR, "please try again", "text/plain"
        log.info("stored a one-click unsubscribe from topic %s", asked.topic)
        return HTTPStatus.OK, done_page(asked.topic), "text/html"

    def _verified(self, body: bytes, signature: str, timestamp: str) -> bool:
        """SendGrid's check (its helper's: ECDSA P-256 over SHA-256 of timestamp + body) on
        the raw bytes, hashed in place: an unsigned 10 MB body is never copied."""
        try:
            decoded = base64.b64decode(signature)
            digest = hashes.Hash(hashes.SHA256())
            digest.update(timestamp.encode("utf-8"))
            digest.update(body)
            self.public_key.verify(decoded, digest.finalize(), ec.ECDSA(Prehashed(hashes.SHA256())))
            return True
        except (InvalidSignature, binascii.Error, ValueError, UnicodeEncodeError):
            return False


def confirmation_page(topic: str) -> str:
    """What a GET of the link shows: a button that POSTs, nothing done yet."""
    return _page(
        "Unsubscribe?",
        f"<p>Stop receiving our {html.escape(topic)} emails?</p>"
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>',
    )


def done_page(topic: str) -> str:
    return _page(
        "Unsubscribed", f"<p>You will not receive our {html.escape(topic)} emails any more.</p>"
    )


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        f"<body><h1>{title}</h1>{body}</body></html>"
    )


def _verification_key(public_key: str) -> ec.EllipticCurvePublicKey:
    try:
        key = EventWebhook().convert_public_key_to_ecdsa(public_key.strip())
    except (ValueError, UnsupportedAlgorithm) as error:
        raise ValueError(
            "SENDGRID_WEBHOOK_PUBLIC_KEY is not a valid verification key: copy it from "
            "SendGrid's Mail Settings > Event Webhook > Signature Verification."
        ) from error
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("SENDGRID_WEBHOOK_PUBLIC_KEY is not an elliptic-curve (ECDSA) key.")
    return key


def raise_open_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (a thousand idle
    clients need a thousand sockets); returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        # On failure the soft limit stays; the connection limit follows it.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def serve(
    landing: Path, public_key: str, unsubscribe_secret: str | None, host: str, port: int
) -> None:
    limits = Limits().within_open_files(raise_open_file_limit())
    server = WebhookServer(
        (host, port), public_key, EventStore(landing), limits, unsubscribe_secret
    )
    one_click = (
        f"one-click unsubscribe at {server.url.removesuffix(WEBHOOK_PATH)}{PATH_PREFIX}<token>"
        if unsubscribe_secret
        else "one-click unsubscribe off (NIGHTJAR_UNSUBSCRIBE_SECRET is unset: its links get 404)"
    )
    print(
        f"nightjar webhook: listening on {server.url}, storing into {server.store.folder}; "
        f"{one_click}",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
