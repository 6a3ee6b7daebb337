"""The dbt manifest is parsed once where once suffices, and read from disk once per process."""

from __future__ import annotations

import os
import shutil

import pytest

import models.manifest
from models.manifest import campaigns_var, ensure_manifest, load_manifest
from models.settings import DBT_PROJECT_DIR


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of the dbt project with its current manifest, and a count of dbt parses."""
    copy = tmp_path / "dbt_project"
    shutil.copytree(
        DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("logs", "dbt_packages", "target")
    )
    (copy / "target").mkdir()
    shutil.copy(DBT_PROJECT_DIR / "target" / "manifest.json", copy / "target")
    monkeypatch.setattr(models.manifest, "DBT_PROJECT_DIR", copy)
    parses = []
    real_parse = models.manifest._dbt_parse
    monkeypatch.setattr(
        models.manifest,
        "_dbt_parse",
        lambda variables: (parses.append(variables), real_parse(variables)),
    )
    return copy, parses


def test_an_edited_model_is_parsed_once_a_new_campaign_twice(project):
    copy, parses = project
    ensure_manifest()
    assert parses == []  # fresh: no parse at all

    model = copy / "models" / "marts" / "customer_360.sql"
    model.write_text(model.read_text() + "\n-- an analyst's edit\n")
    os.utime(copy / "target" / "manifest.json", (1, 1))  # older than the edit
    ensure_manifest()
    assert len(parses) == 1  # the campaigns are those of the manifest it replaces
    before = campaigns_var(load_manifest())

    cohort = copy / "models" / "cohorts" / "cohort_loyalty.sql"
    shutil.copy(cohort, cohort.with_name("cohort_vip.sql"))
    (copy / "models" / "cohorts" / "_vip.yml").write_text(VIP_BLOCK)
    ensure_manifest()
    assert len(parses) == 3  # a new campaign: found by the first parse, recorded by a second
    after = {c["name"] for c in campaigns_var(load_manifest())}
    assert after == {c["name"] for c in before} | {"vip_club"}


def test_the_manifest_is_read_from_disk_once_until_a_parse_replaces_it():
    assert load_manifest() is load_manifest()


VIP_BLOCK = """
version: 2
models:
  - name: cohort_vip
    description: The loyalty rule again, as a second campaign.
    config:
      meta:
        campaign:
          name: vip_club
          template_id: d-10000000000000000000000000000009
          subject: For our best customers
          from_email: hello@shop.example.com
          occasion_column: entered_on
          priority: 50
"""
