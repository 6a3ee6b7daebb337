"""A history of any era loads and replays with its own dates (docs/contract.md §4): CDNOW's
purchases of 1997 and 1998, landed as daily folders, and a night run as of 1998-06-30."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal

import pytest

from tests.support.cdnow import FIRST, LAST, write_cdnow_landing


@pytest.mark.slow
def test_the_cdnow_history_of_1997_runs_as_of_its_last_day(workspace, monkeypatch):
    # the partitions start at the first landed folder; a replay mails no one
    monkeypatch.setenv("NIGHTJAR_FIRST_DATE", "")
    monkeypatch.setenv("NIGHTJAR_FIRST_NIGHT", "baseline")
    bought = write_cdnow_landing(workspace.landing)
    # `nightjar run` as an operator runs it: its own process reads the partitions from this
    # landing (this one's were read as the test suite imported them)
    ran = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--date", LAST.isoformat()],
        capture_output=True, text=True, env=os.environ.copy(), check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "loaded:  crm_contacts 2,357 rows (546 folder(s))" in ran.stdout

    def customer(contact_id: str) -> tuple:
        return workspace.query(
            "select total_spend, last_purchase_date, days_since_last_purchase "
            "from customer_360 where contact_id = ?",
            [contact_id],
        )[0]

    # by hand, from the sample's lines: 00004 bought on 1997-01-01 (29.33), 01-18 (29.73),
    # 08-02 (14.96) and 12-12 (26.48); 1997-12-12 to 1998-06-30 is 19 + 1 + 180 days
    assert customer("C00004") == (Decimal("100.50"), dt.date(1997, 12, 12), 200)
    # 00021 on 1997-01-01 (63.34) and 01-13 (11.77); to 1998-06-30, 352 + 1 + 180 days
    assert customer("C00021") == (Decimal("75.11"), dt.date(1997, 1, 13), 533)

    # every customer as the sample says
    spend: dict[str, Decimal] = defaultdict(Decimal)
    last: dict[str, dt.date] = {}
    for purchase in bought:
        spend[purchase.customer] += purchase.amount
        last[purchase.customer] = max(last.get(purchase.customer, FIRST), purchase.day)
    rows = workspace.query(
        "select contact_id, total_spend, last_purchase_date from customer_360 order by 1"
    )
    assert len(rows) == 2357
    assert rows == [(c, spend[c], last[c]) for c in sorted(spend)]
    # the night is the partition of its own date
    assert workspace.query("select max(as_of_date) from send_decisions") == [(LAST,)]
