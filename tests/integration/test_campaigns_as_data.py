"""A new campaign is one SQL file and one YAML block: no Python changes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from models.campaigns import CampaignConfigError, parse_campaign
from models.settings import DBT_PROJECT_DIR
from tests.support.reference_rules import stable_unit_hash
from tests.support.scenario import D, suppress, write_all

VIP_SQL = """
select
    contact_id,
    email,
    first_name,
    last_name,
    total_spend,
    'welcome' as vip_occasion,
    as_of_date
from {{ ref('audience') }}
where total_spend >= 1000
"""

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
          template_data: [first_name, total_spend]
          priority: 400
          holdout_share: 0
          variants:
            - {name: gold, weight: 1}
            - {name: black, weight: 3, template_id: d-20000000000000000000000000000002,
               subject: "Welcome to the Black card"}
"""


@pytest.mark.slow  # a night end to end: make test-slow keeps make test within ten minutes
def test_an_extra_cohort_gets_its_own_send_asset_and_messages(workspace, tmp_path):
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "models" / "cohorts" / "cohort_vip.sql").write_text(VIP_SQL)
    (project / "models" / "cohorts" / "_vip.yml").write_text(VIP_YAML)
    write_all(workspace.landing)
    suppress(workspace.warehouse, "suppressed@example.com")

    env = {**os.environ, "NIGHTJAR_DBT_PROJECT_DIR": str(project)}
    rehearsal = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--date", D, "--dry-run"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert rehearsal.returncode == 0, rehearsal.stderr[-3000:]
    # one rendered sample per variant, each with its own template
    assert "(template `d-20000000000000000000000000000001` · variant gold)" in rehearsal.stdout
    assert "(template `d-20000000000000000000000000000002` · variant black)" in rehearsal.stdout
    assert not workspace.outbox.exists()
    completed = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--date", D],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    # The highest priority of the day: loyal and guest_buyer get the VIP welcome instead of
    # the loyalty message; the unmailable big spenders are there with their reasons.
    assert (
        "send_vip_club: 3 sent via outbox; not messaged: 1 deleted, 1 invalid_email, 1 opted_out, "
        "1 suppressed" in completed.stdout
    )
    vip = workspace.outbox_lines(D, "vip_club")
    assert sorted(m["contact_id"] for m in vip) == ["guest_buyer", "loyal", "spent_exactly_1000"]
    assert workspace.outbox_lines(D, "loyalty") == []
    assert vip[0]["data"].keys() == {"first_name", "total_spend"}
    # Each member's variant is the stable draw, with that variant's template and subject.
    templates = {"gold": "d-20000000000000000000000000000001",
                 "black": "d-20000000000000000000000000000002"}  # fmt: skip
    for message in vip:
        draw = stable_unit_hash("vip_club", message["contact_id"], "nightjar", "variant")
        assert message["variant"] == ("gold" if draw < 0.25 else "black")
        assert message["template"] == templates[message["variant"]]
    assert {m["variant"] for m in vip} == {"gold", "black"}
    assert sorted(
        workspace.query(
            "select contact_id, variant from nightjar.send_ledger where campaign = 'vip_club'"
        )
    ) == sorted((m["contact_id"], m["variant"]) for m in vip)


def test_a_campaign_block_missing_a_key_names_the_model_and_key():
    with pytest.raises(
        CampaignConfigError, match=r"dbt model cohort_x, meta\.campaign: missing subject"
    ):
        parse_campaign(
            "cohort_x",
            {
                "name": "x",
                "template_id": "d-1",
                "from_email": "a@example.com",
                "occasion_column": "y",
            },
        )


def test_a_campaign_column_must_be_a_plain_name():
    with pytest.raises(CampaignConfigError, match="is not a plain column name"):
        parse_campaign(
            "cohort_x",
            {
                "name": "x",
                "template_id": "d-1",
                "subject": "s",
                "from_email": "a@example.com",
                "occasion_column": "y; drop table nightjar.send_ledger",
            },
        )


BASE = {"name": "x", "template_id": "d-1", "subject": "s", "from_email": "a@example.com",
        "occasion_column": "y"}  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"holdout_share": 1.5}, r"holdout_share: must be a number from 0 to 1, not 1\.5"),
        ({"send_hour": 24}, r"send_hour: must be a whole number from 0 to 23, not 24"),
        ({"holdout_share": float("nan")}, r"holdout_share: must be a number from 0 to 1"),
        ({"priority": "high"}, r"priority: must be a whole number, not 'high'"),
        (
            {"variants": [{"name": "a", "weight": 0}]},
            r"variants\[0\]\.weight: must be a number above 0",
        ),
        ({"variants": [{"name": "a", "weight": 1, "colour": "red"}]}, r"unknown key\(s\) colour"),
        ({"variants": [{"name": "a", "weight": 1}, {"name": "a", "weight": 1}]}, "must be unique"),
    ],
)
def test_policy_keys_of_a_campaign_block_are_checked(extra, message):
    with pytest.raises(CampaignConfigError, match=message):
        parse_campaign("cohort_x", {**BASE, **extra})


def test_a_variant_inherits_what_it_does_not_set():
    campaign = parse_campaign(
        "cohort_x", {**BASE, "variants": [{"name": "a", "weight": 1, "subject": "A!"}]}
    )
    assert campaign.variant("a").template_id == "d-1" and campaign.variant("a").subject == "A!"
    assert campaign.variant(None).subject == "s"
