"""Issue 18: an A/B test with a winner rule switches to its winner once the rule is met, and
not before: planted clicks night after night, with an analyst's campaign (SQL + YAML)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from models.settings import DBT_PROJECT_DIR
from tests.integration.test_campaigns_as_data import VIP_SQL
from tests.support.landing import contact, land_events, order, write_folder
from tests.support.reference_rules import stable_unit_hash
from tests.support.scenario import NEXT_DAY, D, write_all, write_next_day

THIRD_NIGHT = "2025-11-22"
VIP_YAML = """
version: 2
models:
  - name: cohort_vip
    description: Contacts who spent 1000 or more, ever. Welcomed once.
    config:
      meta:
        campaign:
          name: vip_club
          template_id: d-20000000000000000000000000000001
          subject: Welcome to the VIP club
          from_email: vip@shop.example.com
          occasion_column: vip_occasion
          priority: 400
          holdout_share: 0
          variants:
            - {name: gold, weight: 1}
            - {name: black, weight: 1, template_id: d-20000000000000000000000000000002}
          winner: {metric: click, min_members: 1, probability: 0.8}
"""


def drawn(contact_id: str) -> str:
    draw = stable_unit_hash("vip_club", contact_id, "nightjar", "variant")
    return "gold" if draw < 0.5 else "black"  # the weights are 1 and 1


@pytest.mark.slow  # 3 nights of a copied project: make test-slow keeps make test within ten minutes
def test_a_planted_ab_outcome_switches_to_the_winner_once_the_rule_is_met(workspace, tmp_path):
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "models" / "cohorts" / "cohort_vip.sql").write_text(VIP_SQL)
    (project / "models" / "cohorts" / "_vip.yml").write_text(VIP_YAML)
    env = {**os.environ, "NIGHTJAR_DBT_PROJECT_DIR": str(project)}

    def run(day: str) -> None:
        completed = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "run", "--date", day],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        assert completed.returncode == 0, completed.stderr[-3000:]

    def decision() -> list[tuple]:
        return workspace.query(
            "select winner, decided_on::varchar from nightjar.experiment_decisions "
            "where campaign = 'vip_club'"
        )

    # Night 1: the first members are split between the arms; no outcome yet, no verdict.
    write_all(workspace.landing)
    run(D)
    first = {m["contact_id"]: m for m in workspace.outbox_lines(D, "vip_club")}
    assert {c: m["variant"] for c, m in first.items()} == {c: drawn(c) for c in first}
    # the arm that wins is the one `lapsed` (a member from night 2) is not drawn into
    winner = "gold" if drawn("lapsed") == "black" else "black"
    assert {m["variant"] for m in first.values()} == {"gold", "black"}
    assert decision() == []

    # Everyone of the winning arm clicks, no one of the other.
    land_events(
        workspace.landing,
        NEXT_DAY,
        [
            {"event": "click", "email": m["to"], "campaign": "vip_club", "send_id": m["send_id"],
             "variant": m["variant"], "sg_event_id": f"click-{c}", "timestamp": 1763715600}
            for c, m in first.items()
            if m["variant"] == winner
        ],
    )  # fmt: skip

    # Night 2: the decisions are made before the night's verdict: lapsed still gets its draw.
    write_next_day(workspace.landing)
    run(NEXT_DAY)
    (lapsed,) = workspace.outbox_lines(NEXT_DAY, "vip_club")
    assert (lapsed["contact_id"], lapsed["variant"]) == ("lapsed", drawn("lapsed"))
    assert decision() == [(winner, NEXT_DAY)]  # the rule is met on this night's outcomes

    # Night 3: a newcomer drawn into the losing arm is sent the winner.
    newcomer = next(f"vip{i}" for i in range(100) if drawn(f"vip{i}") != winner)
    write_folder(
        workspace.landing,
        THIRD_NIGHT,
        contacts=[contact(newcomer, updated_at="2025-11-22T08:00:00Z")],
        orders=[order(f"o-{newcomer}", newcomer, "2025-11-22T09:00:00Z", "2500")],
    )
    run(THIRD_NIGHT)
    (sent,) = workspace.outbox_lines(THIRD_NIGHT, "vip_club")
    assert (sent["contact_id"], sent["variant"]) == (newcomer, winner)
    assert sent["template"] == (
        "d-20000000000000000000000000000002" if winner == "black" else
        "d-20000000000000000000000000000001"
    )  # fmt: skip
    assert workspace.query(
        "select variant from nightjar.send_ledger where contact_id = ?", [newcomer]
    ) == [(winner,)]
    assert decision() == [(winner, NEXT_DAY)]  # decided once, kept
