"""The send ledger: one row per (campaign, contact, occasion), written before a message leaves.

It lives in `nightjar.send_ledger`, outside dbt, so a full refresh never forgets what was sent.
Statuses: `pending` (claimed, leaving now), `sent` (accepted, provider id kept), `failed`
(refused for sure; tried again next run) and `unknown` (may have reached the provider; never
sent again automatically).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date

import duckdb
import polars as pl

_SEND_ID_NAMESPACE = uuid.UUID("5d7a3c1e-6f0b-4e8a-9a51-7e1f2b9c4d30")
BLOCKING_STATUSES = ("pending", "sent", "unknown")


def send_id(campaign: str, contact_id: str, occasion: str) -> str:
    """Stable across re-runs: the same occasion always has the same id."""
    return str(uuid.uuid5(_SEND_ID_NAMESPACE, f"{campaign}\x1f{contact_id}\x1f{occasion}"))


class Ledger:
    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def pending(self, campaign: str) -> list[str]:
        rows = self.con.execute(
            "select send_id from nightjar.send_ledger where campaign = ? and status = 'pending'",
            [campaign],
        ).fetchall()
        return [r[0] for r in rows]

    def claim(
        self, rows: Iterable[tuple[str, str, str, str]], business_date: date, channel: str
    ) -> None:
        """Record (send_id, campaign, contact_id, occasion) as pending before sending them."""
        frame = pl.DataFrame(
            list(rows),
            schema={
                "send_id": pl.String,
                "campaign": pl.String,
                "contact_id": pl.String,
                "occasion": pl.String,
            },
            orient="row",
        )
        if frame.is_empty():
            return
        self.con.register("claims", frame)
        try:
            self.con.execute(
                """
                insert into nightjar.send_ledger (
                    send_id, campaign, contact_id, occasion, business_date, channel, status,
                    attempts, created_at, updated_at
                )
                select send_id, campaign, contact_id, occasion, ?, ?, 'pending', 1, now(), now()
                from claims
                on conflict (send_id) do update set
                    status = 'pending', attempts = send_ledger.attempts + 1, error = null,
                    business_date = excluded.business_date, channel = excluded.channel,
                    updated_at = now()
                """,
                [business_date, channel],
            )
        finally:
            self.con.unregister("claims")

    def mark(
        self,
        send_ids: Sequence[str],
        status: str,
        *,
        provider_message_id: str | None = None,
        error: str | None = None,
    ) -> None:
        if not send_ids:
            return
        self.con.execute(
            """
            update nightjar.send_ledger
            set status = ?, provider_message_id = coalesce(?, provider_message_id),
                error = ?, updated_at = now()
            where send_id in (select unnest(?::varchar[]))
            """,
            [status, provider_message_id, error, list(send_ids)],
        )

    def latest_business_date(self) -> date | None:
        return self.con.execute("select max(business_date) from nightjar.send_ledger").fetchone()[0]
