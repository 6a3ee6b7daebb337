"""`nightjar webhook` against hostile clients (issue 13, class 3): every request is answered
or cut off within its limits, and the server goes on storing SendGrid's events."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import socket
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from models.landing import EVENTS_FOLDER
from pipelines.event_store import EventStore
from pipelines.webhook import Limits, WebhookServer
from tests.unit.test_webhook import Signer, post, stored

DAY = dt.datetime(2025, 11, 20, 12, tzinfo=dt.UTC)


class Clock:
    """A settable receipt time, so a test can move days forward."""

    def __init__(self, now: dt.datetime = DAY):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def start(landing: Path, signer: Signer, clock=None, limits: Limits | None = None):
    store = EventStore(landing, clock or Clock())
    server = WebhookServer(("127.0.0.1", 0), signer.public_key, store, limits or Limits())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop(server: WebhookServer) -> None:
    server.shutdown()
    server.server_close()


@pytest.fixture
def signer():
    return Signer()


@pytest.fixture
def landing(tmp_path):
    return tmp_path / "landing"


@pytest.fixture
def server(landing, signer):
    running = start(landing, signer)
    yield running
    stop(running)


def connect(server: WebhookServer, timeout: float = 5.0) -> socket.socket:
    host, port = server.url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def head(signer: Signer | None, *lines: str, body: bytes = b"[]") -> bytes:
    """A request's line and headers (signed for `body` when a signer is given)."""
    signed = [f"{k}: {v}" for k, v in signer.headers(body).items()] if signer else []
    text = "\r\n".join(["POST /sendgrid/events HTTP/1.1", "Host: nightjar", *signed, *lines])
    return text.encode() + b"\r\n\r\n"


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of the response on `sock` (the socket's timeout applies)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed without an answer after {data!r}")
        data += chunk
    header, body = data.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":", 1)[1])
        for line in header.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(header.split(b" ", 2)[1]), body


def status_of(sock: socket.socket) -> int:
    return read_response(sock)[0]


def closed_after(sock: socket.socket, limit: float, trickle: bytes = b"") -> float:
    """Seconds until the server closes `sock`, sending `trickle` a byte every 0.2 s."""
    started = time.monotonic()
    sock.settimeout(0.2)
    position = 0
    while time.monotonic() - started < limit:
        try:
            if not sock.recv(4096):
                return time.monotonic() - started
        except TimeoutError:
            pass
        except OSError:
            return time.monotonic() - started
        if position < len(trickle):
            try:
                sock.sendall(trickle[position : position + 1])
            except OSError:
                return time.monotonic() - started
            position += 1
    return float("inf")


def signed_post(server, signer, events) -> int:
    body = json.dumps(events).encode()
    return post(server, body, signer.headers(body))


def test_a_negative_content_length_is_refused_before_any_body_is_read(server, signer):
    # What the client sees, not the process's memory: tracemalloc counts every thread of the
    # test process, and another test's leftover thread once pushed its peak past any bound.
    with connect(server, timeout=3) as sock:
        sock.sendall(head(signer, "Content-Length: -1"))
        assert status_of(sock) == 400  # before a byte of the body was sent
        with contextlib.suppress(OSError):  # closed already
            sock.sendall(b"x" * (1 << 20))  # what an unbounded read would go on swallowing
        # The server hangs up rather than read a body whose length it cannot know.
        assert closed_after(sock, 3.0) < 3.0, "the connection stayed open after the 400"
    with connect(server, timeout=3) as sock:
        sock.sendall(head(signer, "Content-Length: 12abc"))
        assert status_of(sock) == 400
    assert signed_post(server, signer, [{"event": "open", "sg_event_id": "ok"}]) == 200


def test_a_body_over_the_cap_gets_413_without_being_read(landing, signer):
    server = start(landing, signer, limits=Limits(max_body_bytes=1 << 20))
    try:
        with connect(server, timeout=3) as sock:  # announced: refused on its headers alone
            sock.sendall(head(signer, f"Content-Length: {50 << 20}"))
            assert status_of(sock) == 413

        # Not announced (chunked): counted on the bytes read, refused once past the cap.
        chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"[" * (64 * 1024))
        sent, answers = 0, []
        with connect(server, timeout=5) as sock:
            # Read while sending: the answer comes before the connection is torn down.
            reader = threading.Thread(target=lambda: answers.append(status_of(sock)))
            sock.sendall(head(signer, "Transfer-Encoding: chunked"))
            reader.start()
            try:
                while sent < 50 << 20 and not answers:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass
            reader.join(5)
        status = answers[0] if answers else None
        assert status == 413
        assert sent < 10 << 20, f"the server took {sent:,} bytes of a body over the cap"
    finally:
        stop(server)
    assert not stored(landing)


def test_requests_trickling_in_past_the_deadline_are_closed(landing, signer):
    server = start(landing, signer, limits=Limits(request_deadline=1.0, idle_timeout=2))
    try:
        headers = head(signer, "X-Padding: " + "p" * 200)  # never ends in time
        body_head = head(signer, "Content-Length: 1000")  # then its body, a byte at a time
        times = {}

        def measure(name: str, trickle: bytes) -> None:
            with connect(server) as sock:
                if name == "body":
                    sock.sendall(trickle[: len(body_head)])
                    trickle = trickle[len(body_head) :]
                times[name] = closed_after(sock, 6.0, trickle)

        threads = [
            threading.Thread(target=measure, args=("headers", headers)),
            threading.Thread(target=measure, args=("body", body_head + b"x" * 1000)),
            threading.Thread(target=measure, args=("idle", b"")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # The deadline (1 s) plus at most the housekeeping interval (1 s) and a loop turn.
        assert times["headers"] < 3.5 and times["body"] < 3.5, times
        assert times["idle"] < 4.5, times  # silent: the idle timeout (2 s)
        assert signed_post(server, signer, [{"event": "open", "sg_event_id": "after"}]) == 200
    finally:
        stop(server)


def answer(server, signer, body: bytes) -> tuple[int, str]:
    """Status and text of a signed post, sent raw: an unanswered request fails here."""
    with connect(server) as sock:
        sock.sendall(head(signer, f"Content-Length: {len(body)}", body=body) + body)
        status, text = read_response(sock)
    return status, text.decode().strip()


def test_deeply_nested_or_oversized_signed_bodies_get_400_and_the_server_keeps_serving(
    landing, server, signer
):
    deep = b"[" * 100_000 + b"]" * 100_000  # past Python's recursion limit
    nested = [{"event": "open", "sg_event_id": "n", "data": json.loads("[" * 20 + "]" * 20)}]
    refused = {
        "recursion": deep,
        "depth": json.dumps(nested).encode(),
        "count": json.dumps([{"event": "open"}] * 10_001).encode(),
        "event size": json.dumps([{"event": "open", "pad": "x" * 70_000}]).encode(),
        "NaN": b'[{"event": "open", "timestamp": NaN}]',
        "overflow": b'[{"event": "open", "timestamp": 1e400}]',
        "digits": b'[{"event": "open", "timestamp": ' + b"9" * 5000 + b"}]",
        "not UTF-8": b'[{"event": "open", "email": "\xff"}]',
    }
    for name, body in refused.items():
        status, reason = answer(server, signer, body)
        assert status == 400, (name, status, reason)
        assert reason and "\n" not in reason, (name, reason)
    assert not stored(landing)
    assert signed_post(server, signer, [{"event": "open", "sg_event_id": "fine"}]) == 200


def test_oddly_typed_signed_events_are_stored_as_they_came(landing, server, signer):
    odd = [
        {"event": "open", "sg_event_id": ["a", "list"]},
        {"event": "open", "sg_event_id": {"a": "dict"}},
        {"event": "open", "sg_event_id": 12345},
        {"event": "open", "sg_event_id": 1.5},
        {"event": "open", "sg_event_id": True},
        {"event": "open", "sg_event_id": None},
        {"event": "open", "sg_event_id": ""},
        {"event": "open", "sg_event_id": "x" * 5000},
        {"event": "open", "sg_event_id": "with space and ü"},
        {"event": "open", "sg_event_id": "s1", "timestamp": "yesterday"},
        {"event": "open", "sg_event_id": "s2", "timestamp": 10**40},
        {"event": "open", "sg_event_id": "s3", "timestamp": -1, "email": ["a", "b"]},
    ]
    status, _ = answer(server, signer, json.dumps(odd).encode())
    assert status == 200
    lone_surrogate = b'[{"event": "open", "sg_event_id": "\\ud800", "reason": "\\udfff"}]'
    assert answer(server, signer, lone_surrogate)[0] == 200
    assert answer(server, signer, b"[]")[0] == 200

    lines = [
        line
        for path in (landing / EVENTS_FOLDER).glob("*.jsonl")
        for line in path.read_bytes().splitlines()
    ]
    assert [json.loads(line) for line in lines[:-1]] == odd  # nothing dropped or changed
    assert json.loads(lines[-1])["sg_event_id"] == "\ud800"
    # Usable ids still de-duplicate; the others cannot and are stored again.
    assert answer(server, signer, json.dumps(odd).encode())[0] == 200
    assert len(stored(landing)) == 2 * len(odd) + 1 - 3


def test_a_deleted_events_folder_is_recreated_by_the_next_post(landing, server, signer):
    assert signed_post(server, signer, [{"event": "open", "sg_event_id": "e1"}]) == 200
    shutil.rmtree(landing)  # the landing root itself, events folder and index with it
    assert signed_post(server, signer, [{"event": "open", "sg_event_id": "e2"}]) == 200
    assert [e["sg_event_id"] for e in stored(landing)] == ["e2"]
    assert signed_post(server, signer, [{"event": "open", "sg_event_id": "e2"}]) == 200
    assert [e["sg_event_id"] for e in stored(landing)] == ["e2"]  # the new index works

    shutil.rmtree(landing / EVENTS_FOLDER)
    assert signed_post(server, signer, [{"event": "open", "sg_event_id": "e3"}]) == 200
    assert [e["sg_event_id"] for e in stored(landing)] == ["e3"]


def test_deduplication_survives_a_restart_within_its_window_without_the_event_files(
    landing, signer
):
    clock = Clock()
    events = [{"event": "delivered", "sg_event_id": "r1"}, {"event": "open", "sg_event_id": "r2"}]
    server = start(landing, signer, clock)
    try:
        assert signed_post(server, signer, events) == 200
    finally:
        stop(server)
    # The files are gone (the nightly run archived them, say): a restart that learned the
    # ids from the files would store SendGrid's retry again.
    for path in (landing / EVENTS_FOLDER).glob("*.jsonl"):
        path.unlink()
    clock.now = DAY + dt.timedelta(days=3)  # SendGrid retries for up to 72 hours
    server = start(landing, signer, clock)
    try:
        assert signed_post(server, signer, events) == 200
        assert not stored(landing)
        clock.now = DAY + dt.timedelta(days=8)  # past the window: stored again
        assert signed_post(server, signer, events) == 200
    finally:
        stop(server)
    assert [e["sg_event_id"] for e in stored(landing)] == ["r1", "r2"]


def test_a_restart_with_many_stored_events_is_fast_and_loads_none_of_them(landing, signer):
    folder = landing / EVENTS_FOLDER
    folder.mkdir(parents=True)
    for day in range(4):
        (folder / f"2025-11-{16 + day}.jsonl").write_bytes(
            b"".join(
                b'{"email": "c%07d@example.com", "event": "delivered", '
                b'"sg_event_id": "old-%d-%d", "timestamp": 1763600000}\n' % (i, day, i)
                for i in range(50_000)
            )
        )
    tracemalloc.start()
    started = time.monotonic()
    try:
        server = start(landing, signer)
        try:
            assert signed_post(server, signer, [{"event": "open", "sg_event_id": "new"}]) == 200
            seconds = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            stop(server)
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak:,} bytes allocated to start with 200,000 stored events"
    assert seconds < 2.0, f"{seconds:.1f}s to start and store a first event"


@pytest.mark.slow  # half a minute of load: make test-slow
def test_the_small_load_test_holds(tmp_path):
    from tests.tools.webhook_load import main

    argv = ["--idle", "300", "--slow", "20", "--posts", "30", "--rate", "10", "--stored", "20000"]
    assert main([*argv, "--workdir", str(tmp_path)]) == 0
