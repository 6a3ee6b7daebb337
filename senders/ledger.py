"""The send ledger: one row per (campaign, contact, occasion), written before a message leaves.

It lives in `nightjar.send_ledger`, outside dbt, so a full refresh never forgets what was sent.
A message's life:

    planned --> in_flight --> accepted      (the provider took it; its message id is kept)
                          \\-> failed        (refused for certain; planned again next run)
                          \\-> (no answer)   stays in_flight until SendGrid's events settle it:
                                            accepted, or after the grace period abandoned
                                            (default) or failed (to be sent again)

A message the provider refuses for its recipient alone (an address SendGrid will not take) is
`refused`: retrying cannot help, so it is never sent again.

A message due while its campaign cools down (say a second loyalty entry within 90 days of
the first message) is `skipped`: that occasion passes without a message, for good.

A contact in a campaign's control group is `held_out` for the occasion: never messaged, and
recorded so that results can compare it with the messaged group.

A planned message whose address was suppressed after the decisions were made (an unsubscribe
that reached the webhook since) is `withdrawn` just before its batch leaves: never sent.

An occasion that was already current on the baseline night (the first night, run with
`nightjar run --baseline`) is `baseline`: served before Nightjar, so never sent. No message
went, so it counts toward no frequency cap and no cooldown (assets/sends/first_night.py).

Only `planned` and `failed` rows may be sent; `in_flight`, `accepted`, `abandoned`, `refused`,
`skipped`, `held_out`, `withdrawn` and `baseline` never are. `in_flight`, `accepted` and
`abandoned` count as a message that went.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

import duckdb
import polars as pl

_SEND_ID_NAMESPACE = uuid.UUID("5d7a3c1e-6f0b-4e8a-9a51-7e1f2b9c4d30")
_NAMESPACE_BYTES = _SEND_ID_NAMESPACE.bytes
SENDABLE_STATUSES = ("planned", "failed")
WENT_OUT_STATUSES = ("in_flight", "accepted", "abandoned")
STATUSES = (
    "planned",
    "in_flight",
    "accepted",
    "failed",
    "abandoned",
    "skipped",
    "refused",
    "held_out",
    "withdrawn",
    "baseline",
)
LEDGER_COLUMNS = {
    "send_id": pl.String,
    "campaign": pl.String,
    "contact_id": pl.String,
    "occasion": pl.String,
    "variant": pl.String,
    "send_at": pl.Datetime("us", "UTC"),
    "step": pl.String,
}


def send_id(campaign: str, contact_id: str, occasion: str) -> str:
    """Stable across re-runs: the same occasion always has the same id: uuid.uuid5 of
    the three under _SEND_ID_NAMESPACE, spelled out (a third of its time, once a message)."""
    name = f"{campaign}\x1f{contact_id}\x1f{occasion}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# `error`: why a row is held out, skipped or a baseline's (a planned row has none)
_PLAN = """
insert into nightjar.send_ledger (
    send_id, campaign, contact_id, occasion, business_date, channel, status, attempts,
    error, created_at, updated_at, variant, send_at, step
)
select send_id, campaign, contact_id, occasion, $day, $channel, $status, 0, $error, now(),
    now(), variant, send_at, step
from planned_rows
{on_conflict}
"""
# A row planned before keeps its status unless it may still be sent (Ledger.plan_frame)
_KEEP_ALL_BUT_SENDABLE = """
on conflict (send_id) do update set
    status = excluded.status, error = $error, business_date = excluded.business_date,
    channel = excluded.channel, variant = excluded.variant, send_at = excluded.send_at,
    updated_at = now()
where send_ledger.status in ('planned', 'failed')
"""


# Each mark sets its own status, message id and error on its ids; several marks go in one
# statement (a batch's answer with the next batch's departure), one scan of the rows. `where`
# narrows the rows searched for the ids (Ledger.mark_all).
_MARK = """
update nightjar.send_ledger as l
set status = m.status,
    provider_message_id = coalesce(m.message_id, l.provider_message_id),
    attempts = l.attempts + (case when m.status = 'in_flight' then 1 else 0 end),
    error = m.error, updated_at = now()
from (
    select unnest(ids) as send_id, status, message_id, error
    from (
        select unnest($ids::varchar[][]) as ids, unnest($statuses::varchar[]) as status,
            unnest($message_ids::varchar[]) as message_id, unnest($errors::varchar[]) as error
    )
) as m
where {where} and l.send_id = m.send_id
"""


@dataclass(frozen=True)
class Mark:
    """A status for some of the ledger's rows (Ledger.mark_all)."""

    send_ids: Sequence[str]
    status: str
    provider_message_id: str | None = None
    error: str | None = None


class Ledger:
    def __init__(self, con: duckdb.DuckDBPyConnection, mirror=None):
        self.con = con
        # With the state in PostgreSQL (pipelines/state_postgres.LedgerMirror): each change is
        # written there too before it counts here, a message in flight before it leaves.
        self.mirror = mirror
        # (address, reason) of each address this ledger suppressed, in order: a send's later
        # batches read them here (senders/late_suppressions.py), not from the table, which no
        # other process can write while the send holds the state.
        self.suppressed: list[tuple[str, str]] = []

    @contextmanager
    def _recorded(self, send_ids: Sequence[str], sending: bool = False) -> Iterator[None]:
        """The block's change to the rows of `send_ids`, and their copy in the mirror: both or
        neither (the mirror raises, say, when PostgreSQL is out of reach). Without a mirror,
        each statement is its own transaction: a caller may hold one open (the baseline
        night records its rows inside the send checks' own)."""
        if self.mirror is None:
            yield
            return
        self.con.execute("begin")
        try:
            yield
            self.mirror.write(self.con, send_ids, sending=sending)
        except BaseException:
            self.con.execute("rollback")
            raise
        self.con.execute("commit")

    def plan(
        self,
        rows: Iterable[tuple],
        business_date: date,
        channel: str,
        status: str = "planned",
        error: str | None = None,
    ) -> None:
        """Record (send_id, campaign, contact_id, occasion, variant, send_at, step) as planned
        (before any request), skipped or held out (see plan_frame)."""
        width = len(LEDGER_COLUMNS)  # a row without a step is a one-shot campaign's
        rows = [(*row, *(None,) * (width - len(row))) for row in rows]
        self.plan_frame(
            pl.DataFrame(rows, schema=LEDGER_COLUMNS, orient="row"),
            business_date,
            channel,
            status,
            error,
        )

    def plan_frame(
        self,
        frame: pl.DataFrame,
        business_date: date,
        channel: str,
        status: str = "planned",
        error: str | None = None,
    ) -> None:
        """Record the rows of `frame` (LEDGER_COLUMNS) as planned, skipped or held out. A row
        that exists already keeps its status unless it may be sent."""
        if frame.is_empty():
            return
        self.con.register("planned_rows", frame)
        try:
            with self._recorded(frame["send_id"].to_list()):
                # A night's rows are new but for a rerun's, and DuckDB's upsert takes half
                # again an insert's time: 3.6 s against 2.3 s, and 0.14 s to look for them,
                # for 200,000 rows into a ledger of 5 M. A frame naming a row twice is
                # upserted, as before. A row another writer planned in between fails the
                # insert on the primary key: an error, never a second row.
                (known,) = self.con.execute(
                    "select (select count(*) from planned_rows join nightjar.send_ledger "
                    "using (send_id)) + count(*) - count(distinct send_id) from planned_rows"
                ).fetchone()
                params = dict(day=business_date, channel=channel, status=status, error=error)
                on_conflict = _KEEP_ALL_BUT_SENDABLE if known else ""
                self.con.execute(_PLAN.format(on_conflict=on_conflict), params)
        finally:
            self.con.unregister("planned_rows")

    def mark(
        self,
        send_ids: Sequence[str],
        status: str,
        *,
        provider_message_id: str | None = None,
        error: str | None = None,
        planned_for: date | None = None,
    ) -> None:
        """Set the status of `send_ids` (see mark_all)."""
        self.mark_all([Mark(send_ids, status, provider_message_id, error)], planned_for)

    def mark_all(self, marks: Sequence[Mark], planned_for: date | None = None) -> None:
        """Apply `marks`, which name each message once, in one transaction (with the state in
        PostgreSQL, one for those about to leave and one for the rest). `planned_for`:
        the business date they were planned for, when the caller knows it (a night's
        delivery): the rows are then looked for among that night's alone, which DuckDB finds
        by the date's zone maps instead of reading every send_id the ledger ever held (93 ms
        a batch in a ledger of 5 M rows, 8 ms so). Rows planned for another date are still
        marked, by a second statement."""
        marks = [m for m in marks if m.send_ids]
        if not marks:
            return
        if unknown := {m.status for m in marks} - set(STATUSES):
            raise ValueError(f"unknown ledger status {sorted(unknown)[0]!r}")
        ids = [list(dict.fromkeys(m.send_ids)) for m in marks]
        every_id = [send_id for group in ids for send_id in group]
        if len(set(every_id)) < len(every_id):
            raise ValueError("a message may be marked once in a statement")
        params = {
            "ids": ids,
            "statuses": [m.status for m in marks],
            "message_ids": [m.provider_message_id for m in marks],
            "errors": [m.error for m in marks],
        }
        leaving = {m.status == "in_flight" for m in marks}
        if self.mirror is not None and len(leaving) == 2:
            # PostgreSQL's copy takes messages about to leave on a condition of their own, in
            # a transaction of its own: each its own change here too, both or neither
            for about_to_leave in (False, True):
                self.mark_all(
                    [m for m in marks if (m.status == "in_flight") == about_to_leave], planned_for
                )
            return
        with self._recorded(every_id, sending=leaving == {True}):
            if planned_for is None:
                self.con.execute(_MARK.format(where="true"), params)
                return
            # a literal, not a parameter: DuckDB prunes row groups by a constant's zone maps
            night = f"l.business_date = date '{planned_for.isoformat()}'"
            (marked,) = self.con.execute(_MARK.format(where=night), params).fetchone()
            if marked < len(every_id):
                # never for a night's own messages; a crash between the two statements leaves
                # these rows as they were, as a crash before the first would
                self.con.execute(_MARK.format(where=f"not coalesce({night}, false)"), params)

    def note(self, send_ids: Sequence[str], error: str) -> None:
        """Record why, without changing a message's status or its attempts."""
        if send_ids:
            with self._recorded(send_ids):
                self.con.execute(
                    "update nightjar.send_ledger set error = ?, updated_at = now() "
                    "where send_id in (select unnest(?::varchar[]))",
                    [error, list(send_ids)],
                )

    def suppress(self, emails: Sequence[str], reason: str) -> None:
        """Addresses never to mail again (nightjar.suppressions, read by suppression_list):
        one SendGrid refused is refused for every campaign, not just the one that tried."""
        if emails:
            # normalised by DuckDB, as suppression_list and the look-ups read the table
            addresses = [
                address
                for (address,) in self.con.execute(
                    "select distinct lower(trim(e)) from unnest($emails::varchar[]) as t(e)",
                    {"emails": list(emails)},
                ).fetchall()
            ]
            self.con.execute(
                "insert or ignore into nightjar.suppressions "
                "select e, $reason, now() from unnest($addresses::varchar[]) as t(e)",
                {"addresses": addresses, "reason": reason},
            )
            self.suppressed += [(address, reason) for address in addresses]

    def in_flight(self, campaign: str | None = None) -> list[tuple[str, str, date, str, float]]:
        """(send_id, campaign, business_date, channel, hours waited) of unsettled messages,
        of one campaign or of all. The wait counts from the request, or from the message's
        send_at when it was scheduled later: SendGrid reports it only once it releases it."""
        return self.con.execute(
            """
            select send_id, campaign, business_date, channel,
                   date_diff('second', greatest(updated_at, coalesce(send_at, updated_at)),
                             now()) / 3600.0
            from nightjar.send_ledger
            where coalesce(campaign = $campaign, true) and status = 'in_flight'
            order by send_id
            """,
            {"campaign": campaign},
        ).fetchall()


class RehearsalLedger(Ledger):
    """For SendGrid's sandbox: reads the real ledger, writes nothing."""

    def plan_frame(self, frame, business_date, channel, status="planned", error=None) -> None:
        return None

    def mark_all(self, marks, planned_for=None) -> None:
        return None

    def note(self, send_ids, error) -> None:
        return None

    def suppress(self, emails, reason) -> None:
        return None

    def in_flight(self, campaign: str | None = None) -> list:
        return []
