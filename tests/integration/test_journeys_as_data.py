"""A new journey is one SQL file and one YAML block: no Python change. And a bad one stops
the night before it loads anything, naming the file, the journey and the key."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from models.settings import DBT_PROJECT_DIR
from tests.support.landing import CONTACT_COLUMNS, contact
from tests.support.scenario import NEXT_DAY, D, suppress, write_all, write_next_day

NUDGE_SQL = """
select
    contact_id,
    'nudge' as occasion,
    {{ as_of_date() }} as entered_on,
    cast({{ as_of_date() }} as timestamp) as entered_at,
    as_of_date
from {{ ref('audience') }}
where total_spend >= 1000
"""

NUDGE_YAML = """
version: 2
models:
  - name: journey_nudge
    description: Big spenders, nudged twice.
    config:
      meta:
        journey:
          name: nudge
          from_email: hello@shop.example.com
          priority: 400
          holdout_share: 0
          countries: [US]
          steps:
            - name: nudge_1
              template_id: d-30000000000000000000000000000001
              subject: A little something
              template_data: [first_name, total_spend]
            - name: nudge_2
              wait_days: 1
              template_id: d-30000000000000000000000000000002
              subject: Glad you liked it
              condition: opened_last_step
              else: nudge_2_again
            - name: nudge_2_again
              template_id: d-30000000000000000000000000000003
              subject: Did you miss this?
              condition: country = 'US'
"""


def _project(tmp_path: Path, yaml_text: str) -> Path:
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "models" / "journeys" / "journey_nudge.sql").write_text(NUDGE_SQL)
    (project / "models" / "journeys" / "_nudge.yml").write_text(yaml_text)
    return project


def _run(project: Path, day: str, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NIGHTJAR_DBT_PROJECT_DIR": str(project)}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--date", day, *flags],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip


@pytest.mark.slow  # several nights: make test-slow keeps make test within ten minutes
def test_a_new_journey_runs_its_steps_night_after_night(workspace, tmp_path):
    project = _project(tmp_path, NUDGE_YAML)
    write_all(workspace.landing)
    # a big spender who moved to France: the journey targets the US only
    with (workspace.landing / D / "crm_contacts.csv").open("a", encoding="utf-8") as rows:
        csv.DictWriter(rows, CONTACT_COLUMNS).writerow(
            contact("spent_exactly_1000", country="FR", updated_at=f"{D}T08:00:00Z")
        )
    suppress(workspace.warehouse, "suppressed@example.com")

    rehearsal = _run(project, D, "--dry-run")
    assert rehearsal.returncode == 0, rehearsal.stderr[-3000:]
    assert "send_nudge: would send 2 of 5" in rehearsal.stdout, rehearsal.stdout[-3000:]
    # the decisions per step, and a sample message of the step
    assert "| nudge_1 | 5 | 2 | 0 | invalid email 1, opted out 1, suppressed 1 |" in (
        rehearsal.stdout
    )
    assert "· step nudge_1" in rehearsal.stdout
    assert not workspace.outbox.exists()

    first = _run(project, D)
    assert first.returncode == 0, first.stderr[-3000:]
    nudged = workspace.outbox_lines(D, "nudge")
    assert sorted(m["contact_id"] for m in nudged) == ["guest_buyer", "loyal"]
    assert {(m["journey"], m["step"], m["occasion"]) for m in nudged} == {
        ("nudge", "nudge_1", "nudge")
    }
    assert nudged[0]["data"].keys() == {"first_name", "total_spend"}
    # the unmailable big spenders have a decision for the step, with their reason
    assert sorted(
        workspace.query(
            "select contact_id, decision from send_decisions "
            "where campaign = 'nudge' and decision <> 'send'"
        )
    ) == [
        ("loyal_bad_email", "invalid_email"),
        ("loyal_opted_out", "opted_out"),
        ("loyal_suppressed", "suppressed"),
    ]

    write_next_day(workspace.landing)
    second = _run(project, NEXT_DAY)
    assert second.returncode == 0, second.stderr[-3000:]
    # nobody opened step 1 (the outbox reports no events): its else step goes instead
    again = workspace.outbox_lines(NEXT_DAY, "nudge")
    assert {(m["step"], m["subject"], m["template"]) for m in again if m["step"] != "nudge_1"} == {
        ("nudge_2_again", "Did you miss this?", "d-30000000000000000000000000000003")
    }
    # `lapsed` bought big on D+1: a new entry, its first step
    assert sorted((m["contact_id"], m["step"]) for m in again) == [
        ("guest_buyer", "nudge_2_again"),
        ("lapsed", "nudge_1"),
        ("loyal", "nudge_2_again"),
    ]
    finished = workspace.query(
        "select contact_id from nightjar.journey_instances "
        "where journey = 'nudge' and status = 'finished' order by contact_id"
    )
    assert finished == [("guest_buyer",), ("loyal",)]
    assert not workspace.query(
        "select 1 from nightjar.journey_instances "
        "where journey = 'nudge' and contact_id = 'spent_exactly_1000'"
    )
    assert workspace.query(
        "select status, next_step from nightjar.journey_instances "
        "where journey = 'nudge' and contact_id = 'lapsed'"
    ) == [("active", "nudge_2")]


def test_a_bad_journey_stops_the_night_before_anything_loads(workspace, tmp_path):
    project = _project(tmp_path, NUDGE_YAML.replace("opened_last_step", "opened_last_stepp"))
    write_all(workspace.landing)
    completed = _run(project, D)
    assert completed.returncode != 0
    said = completed.stderr + completed.stdout
    assert (
        "models/journeys/_nudge.yml: model journey_nudge, meta.journey (journey nudge)"
        ".steps[1] (nudge_2).condition: unknown column 'opened_last_stepp'" in said
    ), said[-2000:]
    assert not workspace.warehouse.exists()
    assert not workspace.outbox.exists()
