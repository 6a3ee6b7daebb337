"""`python -m tests.tools.webhook_load`: a bounded loopback attack on a real `nightjar webhook`.

The webhook is started as `nightjar webhook` (a subprocess, on a free loopback port) over a
landing that already holds `--stored` events. While idle connections, slowloris clients
(trickling headers or bodies), negative, huge and invalid Content-Lengths, oversize,
near-cap unsigned and deeply nested bodies hit it, a legitimate client posts `--posts`
signed batches of `--events` events at `--rate` posts a second (every tenth one a retry of
the previous batch, as SendGrid does). It prints accepted posts, latency of the signed posts,
what each hostile kind got back, the server's RSS over time and its start time, and exits
non-zero if a signed post was not accepted, an event was lost or stored twice, a hostile
request got anything but its expected answer (or none), slow clients outlived the request
deadline, or the server's peak RSS passed `--rss-limit-mb`.

    python -m tests.tools.webhook_load --idle 1000 --slow 50 --posts 300 --stored 1000000
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.landing import EVENTS_FOLDER
from pipelines.event_store import DEDUP_DAYS, Event, EventStore
from pipelines.webhook import WEBHOOK_PATH, Limits, raise_open_file_limit
from tests.unit.test_webhook import Signer

HOST = "127.0.0.1"
PRESTORE_BATCH = 10_000


def prestore(landing: Path, count: int) -> None:
    """`count` events already stored by a long-running webhook: files and de-dup index, over
    the last DEDUP_DAYS days, a tenth of them already past the window."""
    today = dt.datetime.now(dt.UTC)
    batches = (count + PRESTORE_BATCH - 1) // PRESTORE_BATCH
    for batch in range(batches):
        age = DEDUP_DAYS + 2 if batch % 10 == 9 else batch % DEDUP_DAYS
        received = today - dt.timedelta(days=age)
        store = EventStore(landing, clock=lambda received=received: received)
        first = batch * PRESTORE_BATCH
        events = [
            Event(
                f"pre-{i}",
                b'{"email": "c%07d@example.com", "event": "delivered", '
                b'"sg_event_id": "pre-%d", "timestamp": %d}\n'
                % (i % 1_000_000, i, int(received.timestamp())),
            )
            for i in range(first, min(first + PRESTORE_BATCH, count))
        ]
        store.append(events)
        store.close()


class Server:
    """`nightjar webhook` as a subprocess, with its start time and RSS samples."""

    def __init__(self, landing: Path, public_key: str, workdir: Path):
        env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTJAR_")}
        env.update(NIGHTJAR_LANDING=str(landing), SENDGRID_WEBHOOK_PUBLIC_KEY=public_key)
        self.log_path = workdir / "webhook.log"
        nightjar = Path(sys.executable).parent / "nightjar"
        started = time.monotonic()
        self.process = subprocess.Popen(
            [str(nightjar), "webhook", "--host", HOST, "--port", "0"],
            cwd=workdir,  # no stray .env
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log_path.open("wb"),
            text=True,
        )
        line = self.process.stdout.readline()
        if "listening on " not in line:
            raise RuntimeError(f"the webhook did not start: {line!r}\n{self.log_tail()}")
        self.listen_seconds = time.monotonic() - started
        self.started = started
        self.port = int(line.split("listening on ", 1)[1].split("/")[2].rsplit(":", 1)[1])
        self.samples: list[tuple[float, int]] = []  # (seconds since start, RSS kB)
        self._sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def status_kb(self, field: str) -> int:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def _sample(self) -> None:
        while not self._sampling.wait(0.25):
            with contextlib.suppress(OSError, ValueError):
                self.samples.append((time.monotonic() - self.started, self.status_kb("VmRSS")))

    def peak_rss_kb(self) -> int:
        return self.status_kb("VmHWM")  # the kernel's own high-water mark

    def log_tail(self) -> str:
        return self.log_tail_of(self.log_path.parent)

    @staticmethod
    def log_tail_of(workdir: Path) -> str:
        return (workdir / "webhook.log").read_text(errors="replace")[-3000:]

    def stop(self) -> int:
        self._sampling.set()
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def request(port: int, body: bytes, headers: dict[str, str], timeout: float = 30) -> int:
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("POST", WEBHOOK_PATH, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def raw_exchange(port: int, data: bytes, junk_bytes: int = 0, timeout: float = 10) -> str:
    """Send a hand-made request (then up to `junk_bytes` more); the status code answered,
    or what happened instead."""
    answers: list[str] = []
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:

            def read() -> None:
                try:
                    reply = sock.recv(64)
                    answers.append(reply.split(b" ", 2)[1].decode() if reply else "closed")
                except OSError as error:
                    answers.append(type(error).__name__)

            # Reading while sending: the answer arrives before the server tears the
            # connection down under a body it will not read.
            reader = threading.Thread(target=read)
            reader.start()
            junk = b"x" * 65536
            with contextlib.suppress(OSError):
                sock.sendall(data)
                for _ in range(junk_bytes // len(junk)):
                    if answers:
                        break
                    sock.sendall(junk)
            reader.join(timeout)
    except OSError as error:
        return type(error).__name__
    return answers[0] if answers else "no answer"


@dataclass(frozen=True)
class Hostile:
    rate: float  # requests a second
    expected: str  # the status code it must get
    send: Callable[[], object]


class Attack:
    """Hostile clients on threads of their own, until stop()."""

    def __init__(self, port: int, signer: Signer, idle: int, slow: int):
        self.port = port
        self.signer = signer
        self.idle_count = idle
        self.slow_count = slow
        self.results: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.slow_lifetimes: list[float] = []
        self.idle_closed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.started = time.monotonic()
        targets = [self._idle, self._slowloris, *[self._abuser(kind) for kind in self.kinds()]]
        for target in targets:
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def kinds(self) -> dict[str, Hostile]:
        """Each hostile request: how often, what the webhook must answer, how to make one."""
        port, signer = self.port, self.signer
        cap = Limits().max_body_bytes
        deep = b"[" * 50_000 + b"]" * 50_000
        return {
            "negative Content-Length": Hostile(
                20, "400", lambda: raw_exchange(port, _head(["Content-Length: -1"]), 1 << 20)
            ),
            "huge Content-Length": Hostile(
                20, "413", lambda: raw_exchange(port, _head(["Content-Length: 1" + "0" * 15]))
            ),
            "invalid Content-Length": Hostile(
                20, "400", lambda: raw_exchange(port, _head(["Content-Length: 5, 500000"]))
            ),
            "chunked over the cap": Hostile(
                1,
                "413",
                lambda: raw_exchange(port, _head(["Transfer-Encoding: chunked"]) + _chunks(cap)),
            ),
            "unsigned, just under the cap": Hostile(
                1, "403", lambda: request(port, b"[" + b" " * (cap - 2) + b"]", _forged())
            ),
            "signed, deeply nested": Hostile(
                5, "400", lambda: request(port, deep, signer.headers(deep))
            ),
            "signed, not JSON": Hostile(
                5, "400", lambda: request(port, b"[{", signer.headers(b"[{"))
            ),
            "no signature": Hostile(20, "403", lambda: request(port, b"[]", {})),
        }

    def unexpected(self) -> dict[str, collections.Counter]:
        """Per hostile kind, the outcomes other than the answer it must get."""
        kinds = self.kinds()
        return {
            kind: collections.Counter(
                {outcome: n for outcome, n in counter.items() if outcome != kinds[kind].expected}
            )
            for kind, counter in self.results.items()
            if set(counter) - {kinds[kind].expected}
        }

    def _abuser(self, kind: str) -> Callable[[], None]:
        hostile = self.kinds()[kind]

        def run() -> None:
            while not self._stop.wait(1 / hostile.rate):
                try:
                    outcome = str(hostile.send())
                except OSError as error:
                    outcome = type(error).__name__
                with self._lock:
                    self.results[kind][outcome] += 1

        return run

    def _idle(self) -> None:
        """Connections that never send a byte; each one the server closes is reopened."""
        sockets = [self._connect() for _ in range(self.idle_count)]
        while not self._stop.wait(0.5):
            sockets = [s for s in sockets if s is not None and not _closed_by_peer(s)]
            self.idle_closed += self.idle_count - len(sockets)
            sockets += [self._connect() for _ in range(self.idle_count - len(sockets))]
        for sock in sockets:
            if sock is not None:
                sock.close()

    def _slowloris(self) -> None:
        """Clients trickling a byte every half second: half in their headers, half in their
        body (after honest headers). The server must cut them off at its deadline."""
        clients = [self._slow_client(i) for i in range(self.slow_count)]
        while not self._stop.wait(0.5):
            for index, (sock, started, data) in enumerate(clients):
                if sock is not None and not _closed_by_peer(sock) and _trickle(sock, data):
                    clients[index] = (sock, started, data[1:] or b"x")
                    continue
                if sock is not None:
                    sock.close()
                    self.slow_lifetimes.append(time.monotonic() - started)
                clients[index] = self._slow_client(index)
        for sock, _, _ in clients:
            if sock is not None:
                sock.close()

    def _slow_client(self, index: int) -> tuple[socket.socket | None, float, bytes]:
        sock = self._connect()
        if sock is None:
            return None, 0.0, b""
        if index % 2:
            sock.send(_head(["Content-Length: 100000"]))
            return sock, time.monotonic(), b"y" * 100_000
        return sock, time.monotonic(), _head(["X-Slow: " + "z" * 10_000])

    def _connect(self) -> socket.socket | None:
        try:
            sock = socket.create_connection((HOST, self.port), timeout=5)
            sock.setblocking(False)
            return sock
        except OSError:
            return None


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server closed this (non-blocking) socket; closes it here too if so."""
    try:
        closed = sock.recv(1024) == b""
    except BlockingIOError:
        return False
    except OSError:
        closed = True
    if closed:
        sock.close()
    return closed


def _trickle(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.send(data[:1])
        return True
    except BlockingIOError:
        return True  # its buffers are full: still connected
    except OSError:
        return False


def _head(lines: list[str]) -> bytes:
    text = "\r\n".join([f"POST {WEBHOOK_PATH} HTTP/1.1", "Host: nightjar", *lines])
    return text.encode() + b"\r\n\r\n"


def _chunks(total: int) -> bytes:
    chunk = b"%x\r\n%s\r\n" % (1 << 20, b"[" * (1 << 20))
    return chunk * (total // (1 << 20) + 1)


def _forged() -> dict[str, str]:
    return {
        "X-Twilio-Email-Event-Webhook-Signature": "MEUCIQ" + "A" * 90,
        "X-Twilio-Email-Event-Webhook-Timestamp": "1700000000",
    }


def legitimate_posts(
    port: int, signer: Signer, posts: int, events: int, rate: float
) -> tuple[list[int], list[float], int]:
    """SendGrid's side: signed batches at a steady rate, every tenth a retry of the last.
    Returns (statuses, latencies in seconds, distinct events sent)."""
    statuses, latencies = [], []
    batch: list[dict] = []
    distinct = 0
    started = time.monotonic()
    for number in range(posts):
        time.sleep(max(0.0, started + number / rate - time.monotonic()))
        if not (number % 10 == 9 and batch):
            now = int(time.time())
            batch = [
                {
                    "email": f"c{random.randrange(10**7):07d}@example.com",
                    "event": "delivered",
                    "sg_event_id": f"load-{number}-{i}",
                    "sg_message_id": f"m{number}.filter-{i}",
                    "timestamp": now,
                }
                for i in range(events)
            ]
            distinct += events
        body = json.dumps(batch).encode()
        sent = time.monotonic()
        try:
            statuses.append(request(port, body, signer.headers(body)))
        except OSError as error:
            statuses.append(type(error).__name__)
        latencies.append(time.monotonic() - sent)
    return statuses, latencies, distinct


def stored_load_events(landing: Path) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for path in (landing / EVENTS_FOLDER).glob("*.jsonl"):
        with path.open("rb") as lines:
            for line in lines:
                if b'"load-' in line:
                    counts[json.loads(line)["sg_event_id"]] += 1
    return counts


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def first_post_seconds(server: Server, signer: Signer) -> float:
    """From process start to the first stored signed post: what SendGrid sees of a restart."""
    body = json.dumps([{"event": "processed", "sg_event_id": "first", "timestamp": 1}]).encode()
    status = request(server.port, body, signer.headers(body))
    if status != 200:
        raise RuntimeError(f"the first signed post got {status}")
    return time.monotonic() - server.started


@dataclass
class Measurements:
    stored_before: int
    prestore_seconds: float
    listen_seconds: float
    ready_seconds: float
    statuses: list
    latencies: list[float]
    distinct: int
    counts: collections.Counter
    attack: Attack
    attack_seconds: float
    rss_samples: list[tuple[float, int]]
    start_kb: int
    end_kb: int
    peak_kb: int
    alive: bool
    exit_code: int

    @property
    def accepted(self) -> int:
        return sum(status == 200 for status in self.statuses)

    @property
    def lost(self) -> int:
        return self.distinct - len(self.counts)

    @property
    def twice(self) -> int:
        return sum(n - 1 for n in self.counts.values())


def measure(args: argparse.Namespace, workdir: Path) -> Measurements:
    """Store, start the webhook, attack it while SendGrid posts, stop it; what happened."""
    raise_open_file_limit()  # this process holds the idle herd's sockets
    landing = workdir / "landing"
    signer = Signer()
    begun = time.monotonic()
    prestore(landing, args.stored)
    prestore_seconds = time.monotonic() - begun

    server = Server(landing, signer.public_key, workdir)
    try:
        ready = first_post_seconds(server, signer)
        start_kb = server.status_kb("VmRSS")
        attack = Attack(server.port, signer, args.idle, args.slow)
        attack.start()
        time.sleep(1.0)  # let the herd connect before SendGrid's posts
        statuses, latencies, distinct = legitimate_posts(
            server.port, signer, args.posts, args.events, args.rate
        )
        attack.stop()
        attack_seconds = time.monotonic() - attack.started
        peak_kb, end_kb = server.peak_rss_kb(), server.status_kb("VmRSS")
        alive = server.process.poll() is None
    finally:
        exit_code = server.stop()
    return Measurements(
        stored_before=args.stored,
        prestore_seconds=prestore_seconds,
        listen_seconds=server.listen_seconds,
        ready_seconds=ready,
        statuses=statuses,
        latencies=latencies,
        distinct=distinct,
        counts=stored_load_events(landing),
        attack=attack,
        attack_seconds=attack_seconds,
        rss_samples=server.samples,
        start_kb=start_kb,
        end_kb=end_kb,
        peak_kb=peak_kb,
        alive=alive,
        exit_code=exit_code,
    )


def table(m: Measurements) -> list[tuple[str, str]]:
    attack = m.attack
    return [
        ("signed posts accepted", f"{m.accepted} / {len(m.statuses)}"),
        ("events stored / sent (distinct)", f"{sum(m.counts.values()):,} / {m.distinct:,}"),
        ("events lost / stored twice", f"{m.lost} / {m.twice}"),
        ("signed post latency p50 / p99 / max", _latency(m.latencies)),
        ("idle connections held / closed by server", f"{attack.idle_count} / {attack.idle_closed}"),
        ("slowloris clients / cut off", f"{attack.slow_count} / {len(attack.slow_lifetimes)}"),
        ("slowloris cut off after p50 / max", _seconds(attack.slow_lifetimes)),
        *[(f"{kind}: answers", _answers(counter)) for kind, counter in attack.results.items()],
        ("attack lasted", f"{m.attack_seconds:.0f}s"),
        (
            "events stored before start",
            f"{m.stored_before:,} (written in {m.prestore_seconds:.1f}s)",
        ),
        (
            "start: listening / first post stored",
            f"{m.listen_seconds:.2f}s / {m.ready_seconds:.2f}s",
        ),
        ("server RSS start / end / peak (VmHWM)", _rss(m.start_kb, m.end_kb, m.peak_kb)),
        ("server RSS over time (s: MB)", _timeline(m.rss_samples)),
        ("server exit code after SIGINT", str(m.exit_code)),
    ]


def problems(m: Measurements, rss_limit_mb: int) -> list[str]:
    found = []
    if m.accepted != len(m.statuses):
        found.append(f"{len(m.statuses) - m.accepted} signed post(s) not accepted")
    if m.lost or m.twice:
        found.append(f"{m.lost} event(s) lost, {m.twice} stored twice")
    if m.peak_kb > rss_limit_mb * 1024:
        found.append(f"peak RSS {m.peak_kb // 1024} MB above {rss_limit_mb} MB")
    if not m.alive:
        found.append("the webhook died during the attack")
    for kind, outcomes in m.attack.unexpected().items():
        found.append(f"{kind}: expected {m.attack.kinds()[kind].expected}, got {dict(outcomes)}")
    return found + cut_off_problems(m.attack, m.attack_seconds)


def run(args: argparse.Namespace, workdir: Path) -> int:
    m = measure(args, workdir)
    rows = table(m)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    found = problems(m, args.rss_limit_mb)
    for problem in found:
        print(f"webhook_load: FAILED: {problem}")
    if found:
        print(Server.log_tail_of(workdir), file=sys.stderr)
    return 1 if found else 0


def cut_off_problems(attack: Attack, seconds: float) -> list[str]:
    """Slow and idle clients must be cut off at the server's limits (when the attack lasted
    long enough to see it)."""
    limits, slack = Limits(), 5.0
    problems = []
    late = [t for t in attack.slow_lifetimes if t > limits.request_deadline + slack]
    if late:
        problems.append(f"{len(late)} slowloris client(s) kept for up to {max(late):.0f}s")
    if (
        attack.slow_count
        and seconds > limits.request_deadline + slack
        and not attack.slow_lifetimes
    ):
        problems.append("no slowloris client was ever cut off")
    if attack.idle_count and seconds > limits.idle_timeout + slack and not attack.idle_closed:
        problems.append("no idle connection was ever closed")
    return problems


def _latency(values: list[float]) -> str:
    p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
    return f"{p50 * 1000:.0f} / {p99 * 1000:.0f} / {max(values, default=0) * 1000:.0f} ms"


def _seconds(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{percentile(values, 0.5):.1f}s / {max(values):.1f}s"


def _answers(counter: collections.Counter) -> str:
    return ", ".join(f"{outcome} x{n}" for outcome, n in counter.most_common())


def _rss(start_kb: int, end_kb: int, peak_kb: int) -> str:
    return f"{start_kb / 1024:.0f} / {end_kb / 1024:.0f} / {peak_kb / 1024:.0f} MB"


def _timeline(samples: list[tuple[float, int]], points: int = 8) -> str:
    picked = sorted({round(i * (len(samples) - 1) / (points - 1)) for i in range(points)})
    return ", ".join(f"{samples[i][0]:.0f}: {samples[i][1] / 1024:.0f}" for i in picked) or "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.tools.webhook_load", description=__doc__)
    parser.add_argument("--idle", type=int, default=1000, help="idle connections held open")
    parser.add_argument("--slow", type=int, default=50, help="slowloris clients")
    parser.add_argument("--posts", type=int, default=300, help="signed posts to make")
    parser.add_argument("--events", type=int, default=100, help="events per signed post")
    parser.add_argument("--rate", type=float, default=5.0, help="signed posts a second")
    parser.add_argument("--stored", type=int, default=1_000_000, help="events stored before")
    parser.add_argument("--rss-limit-mb", type=int, default=200, help="peak RSS allowed")
    parser.add_argument("--workdir", type=Path, help="keep the landing and log here")
    args = parser.parse_args(argv)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return run(args, args.workdir)
    with tempfile.TemporaryDirectory(prefix="nightjar-webhook-load-") as tmp:
        return run(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
