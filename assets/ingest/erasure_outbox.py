"""Erasure in the outbox (senders/outbox.py): past messages to erased contacts keep what
exactly-once needs and lose address, name and data; `nightjar.erasures.outbox_scrubbed`
tells which erasures the outbox still owes. Part of the erasure (assets/ingest/erasure.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from senders.outbox import outbox_lines, remove_stale_temp_files, write_atomically


def outbox_erasures_pending(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The erased contacts whose outbox messages may still hold their address."""
    return [
        row[0]
        for row in con.execute(
            "select distinct contact_id from nightjar.erasures where not outbox_scrubbed "
            "order by contact_id"
        ).fetchall()
    ]


def mark_outbox_scrubbed(con: duckdb.DuckDBPyConnection, erased: list[str]) -> None:
    """Once `erase_in_outbox` has scrubbed them: these erasures owe the outbox nothing."""
    con.execute(
        "update nightjar.erasures set outbox_scrubbed = true "
        "where contact_id in (select unnest($erased::varchar[]))",
        {"erased": erased},
    )


def erase_in_outbox(outbox: Path, erased: list[str]) -> int:
    """Past outbox messages to erased contacts keep send_id, campaign, contact and occasion
    (what exactly-once needs) and lose address, name and data; the temporary files of writes
    killed half-way (partial copies, addresses and names included) are removed. Call it
    holding the send lock, the lock every outbox writer holds. Returns messages scrubbed."""
    remove_stale_temp_files(outbox)
    targets = set(erased)
    scrubbed = 0
    # a night's files (<date>/<campaign>.jsonl), and send-test's (test-sends/<date>/...)
    for path in sorted(outbox.rglob("*.jsonl")) if outbox.is_dir() else []:
        lines = outbox_lines(path)
        changed = False
        for index, line in enumerate(lines):
            record = json.loads(line)
            if record.get("contact_id") in targets and record.get("to") is not None:
                record.update(to=None, to_name=None, data={}, erased=True)
                lines[index] = json.dumps(record, ensure_ascii=False)
                changed = True
                scrubbed += 1
        if changed:
            write_atomically(path, "".join(line + "\n" for line in lines))
    return scrubbed
