"""Class 6, one poison record never blocks every night: a SendGrid event line that breaks the
rules (even one SendGrid signed) is quarantined with its reason, and every other event of
the file, before it and after it, loads that night and every night after."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.support.landing import land_events
from tests.support.scenario import HISTORY, NEXT_DAY, D, write_all, write_next_day

ON_TIME = int(dt.datetime(2025, 11, 19, 9, tzinfo=dt.UTC).timestamp())
POISON = [
    {"event": "unsubscribe", "email": "lapsed@example.com", "sg_event_id": "u1",
     "timestamp": ON_TIME},
    {"event": "open", "email": "loyal@example.com", "sg_event_id": "far", "timestamp": 10**20},
    # fits a BIGINT, but no timestamp: DuckDB's to_timestamp failed the whole load on it
    {"event": "open", "email": "loyal@example.com", "sg_event_id": "ad", "timestamp": 10**15},
    {"event": "click", "email": "loyal@example.com", "sg_event_id": "when",
     "timestamp": "yesterday"},
    {"event": "delivered", "email": "bday@example.com", "sg_event_id": ["d1", "d2"],
     "timestamp": ON_TIME},
    {"event": "open", "email": {"address": "bday@example.com"}, "sg_event_id": "nested",
     "timestamp": ON_TIME, "contact_id": "bday"},
]  # fmt: skip
CUT_SHORT = '{"email": "loyal@example.com", "event": "bou'  # a crash mid-write
GOOD_BOUNCE = {"event": "bounce", "type": "blocked", "email": "zoe@example.com",
               "sg_event_id": "b1", "timestamp": ON_TIME + 60}  # fmt: skip


def write_poisoned_file(landing) -> None:
    from models.landing import EVENTS_FOLDER

    folder = landing / EVENTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(event) for event in POISON] + [CUT_SHORT, json.dumps(GOOD_BOUNCE)]
    (folder / f"{HISTORY}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def quarantined(workspace) -> list[tuple]:
    return workspace.query(
        "select business_date::varchar, source_row, column_name, rule, value, action "
        "from raw.quarantine where extract = 'sendgrid_events' order by source_row, column_name"
    )


@pytest.mark.slow  # several nights: make test-slow (.ci/run)
def test_poison_events_are_quarantined_and_the_rest_loads_every_night(workspace, capsys):
    write_all(workspace.landing)
    write_poisoned_file(workspace.landing)

    assert workspace.run(D) == 0
    # Both good events load and suppress: the one before the poison and the one after.
    assert workspace.query("select email, reason from suppression_list order by email") == [
        ("lapsed@example.com", "unsubscribe"),
        ("zoe@example.com", "blocked"),
    ]
    assert workspace.query(
        "select decision from send_decisions where contact_id in ('lapsed', 'zoe') "
        "order by contact_id"
    ) == [("suppressed",), ("suppressed",)]
    # An optional value of the wrong type is emptied, its event kept.
    assert workspace.query(
        "select source_row, event, sg_event_id, email from raw.sendgrid_events order by 1"
    ) == [
        (1, "unsubscribe", "u1", "lapsed@example.com"),
        (5, "delivered", None, "bday@example.com"),
        (6, "open", "nested", None),
        (8, "bounce", "b1", "zoe@example.com"),
    ]
    problems = quarantined(workspace)
    assert [(row, column, action) for _, row, column, _, _, action in problems] == [
        (2, "timestamp", "row_quarantined"),
        (3, "timestamp", "row_quarantined"),
        (4, "timestamp", "row_quarantined"),
        (5, "sg_event_id", "value_removed"),
        (6, "email", "value_removed"),
        (7, "line", "row_quarantined"),
    ]
    rules = {row: rule for _, row, _, rule, _, _ in problems}
    assert rules[2] == rules[3]
    assert rules[2] == "from 2000-01-01 to 9999-12-31 (UTC)"  # out of range
    assert "whole number of seconds" in rules[4]
    assert rules[5] == rules[6] == "text"
    assert "JSON object" in rules[7]
    assert {date for date, *_ in problems} == {HISTORY}  # the file's receipt date
    values = {row: value for _, row, _, _, value, _ in problems}
    assert values[6] == '{"address":"b***@example.com"}'  # masked, as every extract's
    assert values[7] is None  # a cut line is not shown: its number finds it
    # The run names each quarantined line, and never shows an address.
    out = capsys.readouterr()
    terminal = out.out + out.err
    assert f"{HISTORY}.jsonl line 2: timestamp must be" in terminal
    assert f"{HISTORY}.jsonl line 7: line must be" in terminal
    assert "@example.com" not in terminal.replace("***@example.com", "")

    # The next nights do not fail on the same file, and a file that grew is loaded again
    # replacing its own quarantine rows, never adding to them.
    write_next_day(workspace.landing)
    assert workspace.run(NEXT_DAY) == 0
    land_events(
        workspace.landing, HISTORY,
        [{"event": "open", "email": "zoe@example.com", "sg_event_id": "o9",
          "timestamp": ON_TIME + 120}],
    )  # fmt: skip
    assert workspace.run(NEXT_DAY) == 0
    assert quarantined(workspace) == problems
    assert workspace.query("select count(*) from raw.sendgrid_events") == [(5,)]
