"""`make chaos`: kill the sender at random moments under injected faults, then count.

A journey's night of N messages (half its first step, half its second: docs/contract.md
§15) is sent through the real SendGrid sender to the strict local server,
which answers 429s and 500s and drops connections at random (half of them after accepting
the mail), and posts SendGrid-style signed "processed" events to a running `nightjar webhook`
for every message it accepts. The sending process is killed (SIGKILL) at K random moments
and started again each time; finally it runs until everything is settled. Then: how many
(contact, step) got a message twice (duplicates) and how many never got one (lost), and
whether the journey's state holds every instance. The same is done for the outbox. Both
numbers must be 0.

With a PostgreSQL state (`state_url`, NIGHTJAR_STATE_URL) the same holds, and also when the
local replica of the state is lost (deleted with the warehouse) after some of the kills
(`lose_replica_every`): PostgreSQL alone then knows what went.

    python -m tests.tools.chaos --messages 100000 --kills 20
    python -m tests.tools.chaos --messages 10000 --kills 10 --state-url postgresql://... \
        --lose-replica-every 2
"""

from __future__ import annotations

import argparse
import base64
import collections
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from models.journeys import parse_journey

DAY = dt.date(2025, 11, 20)
CAMPAIGN = parse_journey(
    "journey_chaos",
    {
        "name": "chaos",
        "from_email": "chaos@shop.example.com",
        "steps": [
            {"name": "chaos_1", "template_id": "d-30000000000000000000000000000001",
             "subject": "Chaos", "template_data": ["first_name"]},
            {"name": "chaos_2", "wait_days": 2, "template_id": "d-30000000000000000000000000000002",
             "subject": "Chaos again", "template_data": ["first_name"]},
        ],
    },
)  # fmt: skip
API_KEY = "SG.chaos"
GRACE_HOURS = 4 / 3600  # events for an accepted request land within milliseconds here


@dataclass
class Outcome:
    channel: str
    messages: int
    runs: int
    mid_send_kills: int
    duplicates: int
    lost: int

    def line(self) -> str:
        return (
            f"{self.channel:9} messages {self.messages:>7,}  runs {self.runs:>3}  "
            f"kills mid-send {self.mid_send_kills:>3}  "
            f"duplicates {self.duplicates}  lost {self.lost}"
        )


def build_cohort(root: Path, messages: int, earlier_sends: int = 0) -> None:
    """Tonight's journey step due for `messages` contacts; the ledger holds `earlier_sends`
    messages of the 365 nights before (other programs', accepted), as a year of a retailer's
    ledger would."""
    from assets.shared.warehouse import connect, ensure_schema
    from tests.support.decisions import decide_to_send_everyone

    with connect(root / "warehouse.duckdb") as con:
        ensure_schema(con)
        # half a million rows a statement: DuckDB holds an insert's index entries in memory
        for start in range(0, earlier_sends, 500_000):
            con.execute(
                """
                insert into nightjar.send_ledger (send_id, campaign, contact_id, occasion,
                    business_date, channel, status, attempts, created_at, updated_at)
                select uuid()::varchar, 'earlier_' || (i % 7), printf('C%07d', i // 7),
                    printf('o%d', i), day, 'sendgrid', 'accepted', 1, day, day
                from (
                    select i, $day::date - to_days(365 - (i * 365 // $n)::integer) as day
                    from range($start, least($start + 500000, $n)) as t(i)
                )
                """,
                {"day": DAY, "n": earlier_sends, "start": start},
            )
        # journey_progress as dbt would build it: half the instances enter tonight (step 1),
        # half had their first step two nights ago (step 2 due tonight)
        con.execute(
            """
            create or replace table main.journey_progress as
            select
                'chaos' as journey,
                printf('C%07d', i) as contact_id,
                printf('c%07d@example.com', i) as email,
                'Zoë' as first_name,
                printf('Tester %d', i) as last_name,
                'once' as occasion,
                $day::date - to_days(2 * (i % 2)) as entered_on,
                cast($day::date - to_days(2 * (i % 2)) as timestamp) as entered_at,
                false as in_control_group,
                i % 2 = 0 as is_new_entry,
                'active' as status,
                cast(null as varchar) as end_reason,
                (i % 2)::integer as steps_done,
                case when i % 2 = 1 then 'chaos_1' end as last_step,
                case when i % 2 = 1 then $day::date - to_days(2) end as last_step_on,
                (i % 2 + 1)::integer as next_position,
                $day::date as due_on,
                case when i % 2 = 0 then 'chaos_1' else 'chaos_2' end as step,
                'due' as step_outcome,
                $day::date as as_of_date
            from range($messages) as t(i)
            """,
            {"day": DAY, "messages": messages},
        )
        decide_to_send_everyone(con, CAMPAIGN)
    (root / "landing").mkdir(exist_ok=True)


def child_main(channel: str) -> int:
    """One sending process (the one that gets killed)."""
    from assets.sends.campaigns import send_campaign
    from models.settings import load_settings
    from senders.channels import make_sender

    settings = load_settings()
    sender = make_sender(settings)
    if channel == "sendgrid":
        sender.base_delay = 0.05  # keep retries quick; the server's 429s say how long to wait
    started = time.monotonic()
    summary = send_campaign(CAMPAIGN, DAY, settings, sender, log=_StartSignal())
    seconds = time.monotonic() - started  # the whole send, ledger included (make bench)
    counts = {"sent": summary.sent, "failed": summary.failed, "pending": summary.pending}
    print(json.dumps({**counts, "seconds": seconds}))
    return 0 if summary.ok else 3


class _StartSignal:
    """Tells the parent (on stdout) when messages start to leave: kills are timed from it."""

    def info(self, text: str) -> None:
        if " message(s) via " in text:
            print("sending", flush=True)

    def error(self, text: str) -> None:
        pass

    warning = error


class EventPoster:
    """Signs and posts SendGrid-style events to the webhook, as SendGrid does."""

    def __init__(self, url: str):
        self.url = url
        self._key = ec.generate_private_key(ec.SECP256R1())
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode()

    def __call__(self, message_id: str, body: dict) -> None:
        now = int(time.time())
        events = [
            {
                "event": "processed",
                "email": p["to"][0]["email"],
                "timestamp": now,
                "sg_event_id": f"{message_id}-{i}",
                "sg_message_id": f"{message_id}.filter-{i}",
                **p["custom_args"],
            }
            for i, p in enumerate(body["personalizations"])
        ]
        payload = json.dumps(events).encode()
        stamp = str(now)
        signature = self._key.sign(stamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
        request = urllib.request.Request(
            self.url,
            data=payload,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
                "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200


def _env(
    root: Path, channel: str, server_url: str | None, state_url: str | None = None
) -> dict[str, str]:
    env = {
        **os.environ,
        "NIGHTJAR_LANDING": str(root / "landing"),
        "NIGHTJAR_WAREHOUSE": str(root / "warehouse.duckdb"),
        "NIGHTJAR_OUTBOX": str(root / "outbox"),
        "NIGHTJAR_SETTLE_GRACE_HOURS": str(GRACE_HOURS),
        # Nothing may be lost: a request that never got through is sent again after the
        # grace period, which is safe because an accepted one always has its event by then.
        "NIGHTJAR_UNSETTLED_POLICY": "resend",
        "NIGHTJAR_SETTLE_WAIT_SECONDS": "1",
        "SENDGRID_API_KEY": API_KEY if channel == "sendgrid" else "",
        # what a SendGrid run needs for its unsubscribes (docs/contract.md §17)
        "NIGHTJAR_UNSUBSCRIBE_SECRET": "chaos-secret-that-signs-one-click-unsubscribe-links",
        "NIGHTJAR_UNSUBSCRIBE_URL": "https://mail.shop.example",
        "NIGHTJAR_SENDGRID_GROUPS": "lifecycle=101,promotions=102,birthday=103",
        "SENDGRID_API_HOST": server_url or "",
        "NIGHTJAR_STATE_URL": state_url or "",
    }
    env["DAGSTER_HOME"] = ""  # runs kept in memory, not in the project's instance
    return env


def _start_child(env: dict[str, str], channel: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.tools.chaos", "--child", channel],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _unfinished(root: Path, state_url: str | None = None) -> int:
    """Messages the ledger does not hold as accepted: some after a kill mid-send, none once
    the send has finished (and none before the first plan). The ledger of PostgreSQL when
    the state lives there."""
    from assets.shared.warehouse import connect

    sql = "select count(*) from nightjar.send_ledger where status <> 'accepted'"
    if state_url:
        import psycopg

        with psycopg.connect(state_url) as pg:
            exists = pg.execute("select to_regclass('nightjar.send_ledger')").fetchone()[0]
            return pg.execute(sql).fetchone()[0] if exists else 0
    with connect(root / "warehouse.duckdb") as con:
        return con.execute(sql).fetchall()[0][0]


def _check_journey_state(root: Path, messages: int, state_url: str | None = None) -> None:
    """Every instance is in the journey's state, its step of tonight settled: the first
    step's instances wait for their second, the others have finished."""
    sql = (
        "select status, count(*) from nightjar.journey_instances "
        "where journey = 'chaos' group by status order by status"
    )
    if state_url:
        import psycopg

        with psycopg.connect(state_url) as pg:
            found = pg.execute(sql).fetchall()
    else:
        from assets.shared.warehouse import connect

        with connect(root / "warehouse.duckdb") as con:
            found = con.execute(sql).fetchall()
    expected = [("active", (messages + 1) // 2), ("finished", messages // 2)]
    assert found == [e for e in expected if e[1]], f"journey state: {found}"


def _lose_replica(root: Path, messages: int) -> None:
    """The machine's copy of the state is gone, and the warehouse with it (rebuilt, as dbt
    would, with the cohort and its decisions): only PostgreSQL knows what was sent."""
    for name in ("state.duckdb", "warehouse.duckdb"):
        for path in (root / name, root / f"{name}.wal"):
            path.unlink(missing_ok=True)
    build_cohort(root, messages)


def _send_duration(channel: str, messages: int, server_url: str | None) -> float:
    """How long one uninterrupted send takes here, so the kills land inside sends."""
    with tempfile.TemporaryDirectory(prefix="nightjar-chaos-calibrate-") as tmp:
        root = Path(tmp)
        build_cohort(root, messages)
        child = _start_child(_env(root, channel, server_url), channel)
        child.stdout.readline()
        started = time.monotonic()
        child.communicate(timeout=600)
        return time.monotonic() - started


def _kill_and_finish(
    root: Path,
    env: dict,
    channel: str,
    kills: int,
    rng: random.Random,
    window: float,
    lose_replica_every: int = 0,
    messages: int = 0,
) -> tuple[int, int]:
    """Kill the sender `kills` times at random moments of its send, then let it finish; the
    replica of a PostgreSQL state is lost after every `lose_replica_every`-th kill. Returns
    (runs, kills that left messages unfinished in the ledger)."""
    state_url = env.get("NIGHTJAR_STATE_URL") or None
    runs = mid_send = 0
    for kill in range(1, kills + 1):
        child = _start_child(env, channel)
        runs += 1
        child.stdout.readline()  # "sending": the messages are planned and start to leave
        # Each run resumes where the last was killed: kills about a `kills`-th of a send
        # apart spread over the whole campaign instead of bunching at its start.
        time.sleep(rng.uniform(0.0, 2 * window / kills))
        child.kill()
        child.wait()
        mid_send += _unfinished(root, state_url) > 0
        if lose_replica_every and kill % lose_replica_every == 0:
            _lose_replica(root, messages)
    for _ in range(60):
        child = _start_child(env, channel)
        runs += 1
        _out, err = child.communicate(timeout=600)
        if child.returncode == 0:
            return runs, mid_send
        if child.returncode != 3:
            raise RuntimeError(f"the sender crashed:\n{err[-3000:]}")
        time.sleep(GRACE_HOURS * 3600)  # let unsettled messages reach their grace period
    raise RuntimeError("the send never completed")


def run_sendgrid(
    messages: int,
    kills: int,
    seed: int,
    state_url: str | None = None,
    lose_replica_every: int = 0,
) -> Outcome:
    """`state_url`: the state in this PostgreSQL database (empty), else in DuckDB alone."""
    from pipelines.event_store import EventStore
    from pipelines.webhook import WebhookServer
    from tests.support.sendgrid_server import SendGridTestServer

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="nightjar-chaos-") as tmp:
        root = Path(tmp)
        build_cohort(root, messages)
        poster = EventPoster("")
        webhook = WebhookServer(("127.0.0.1", 0), poster.public_key, EventStore(root / "landing"))
        threading.Thread(target=webhook.serve_forever, daemon=True).start()
        poster.url = webhook.url
        try:
            # Calibrate against a server of its own: its events must not reach this webhook
            # (the same cohort has the same send_ids, which would settle the real run).
            with SendGridTestServer(API_KEY, record_bodies=False) as rehearsal:
                window = _send_duration("sendgrid", messages, rehearsal.url)
            with SendGridTestServer(API_KEY, on_accept=poster) as server:
                server.random_faults(rate_429=0.03, rate_500=0.03, rate_drop=0.04, seed=seed)
                env = _env(root, "sendgrid", server.url, state_url)
                runs, mid_send = _kill_and_finish(
                    root, env, "sendgrid", kills, rng, window, lose_replica_every, messages
                )
                per_contact = collections.Counter(
                    (p["custom_args"]["contact_id"], p["custom_args"]["step"])
                    for body in server.accepted
                    for p in body["personalizations"]
                )
                assert _unfinished(root, state_url) == 0, "the ledger holds messages never sent"
                _check_journey_state(root, messages, state_url)
        finally:
            webhook.shutdown()
            webhook.server_close()
    duplicates = sum(count - 1 for count in per_contact.values())
    channel = "sendgrid" if not state_url else "sendgrid, PostgreSQL state"
    return Outcome(channel, messages, runs, mid_send, duplicates, messages - len(per_contact))


def run_outbox(messages: int, kills: int, seed: int) -> Outcome:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="nightjar-chaos-") as tmp:
        root = Path(tmp)
        build_cohort(root, messages)
        env = _env(root, "outbox", None)
        window = _send_duration("outbox", messages, None)
        runs, mid_send = _kill_and_finish(root, env, "outbox", kills, rng, window)
        assert _unfinished(root) == 0, "the ledger holds messages that never went"
        _check_journey_state(root, messages)
        from senders.outbox import outbox_lines

        path = root / "outbox" / DAY.isoformat() / "chaos.jsonl"
        lines = [(line["contact_id"], line["step"]) for line in map(json.loads, outbox_lines(path))]
    per_contact = collections.Counter(lines)
    duplicates = sum(count - 1 for count in per_contact.values())
    return Outcome("outbox", messages, runs, mid_send, duplicates, messages - len(per_contact))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.tools.chaos", description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--state-url", help="the SendGrid run's state in this (empty) database")
    parser.add_argument("--lose-replica-every", type=int, default=0, metavar="N")
    parser.add_argument("--child", choices=["sendgrid", "outbox"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child)
    started = time.monotonic()
    outcomes = [
        run_sendgrid(args.messages, args.kills, args.seed, args.state_url, args.lose_replica_every),
        run_outbox(args.messages, args.kills, args.seed),
    ]
    for outcome in outcomes:
        print(outcome.line())
    print(f"chaos: {time.monotonic() - started:.0f}s, {args.kills} kills per sender")
    return 0 if all(o.duplicates == 0 and o.lost == 0 for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
