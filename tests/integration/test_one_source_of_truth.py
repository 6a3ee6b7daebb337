"""One source of truth for settings and vars (issue 14): a misspelled name is refused with
the nearest known one; the Dagster UI's descriptions state the vars a run with the same
environment applies; and each night records the vars it ran with, the truth per date when
the UI was loaded in another environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance

from models.settings import KNOWN_SETTING_NAMES, SETTING_NAMES, load_settings
from tests.support.landing import contact, order, write_folder

ROOT = Path(__file__).resolve().parents[2]
D = "2025-11-20"
# Files that may name a setting: code, docs, YAML, SQL, the Makefile and .env.example.
TEXT_SUFFIXES = {"", ".py", ".md", ".yml", ".yaml", ".example", ".toml", ".sql", ".cfg"}
# The example: what a run applies, and what every description must then state.
TONIGHT = (
    "{holdout_share: 0, loyalty_min_spend_730d: 800, max_messages_per_day: 2, "
    "quiet_hours_start: 22}"
)


def test_a_misspelled_dbt_var_is_refused_with_the_nearest_name(workspace, monkeypatch):
    monkeypatch.setenv("NIGHTJAR_DBT_VARS", "{loyalty_min_spend: 800}")
    with pytest.raises(ValueError) as refused:
        load_settings()
    assert str(refused.value) == (
        "NIGHTJAR_DBT_VARS: loyalty_min_spend is not a var of this project; "
        "did you mean loyalty_min_spend_730d?"
    )
    monkeypatch.setenv("NIGHTJAR_DBT_VARS", "{zebra: 1}")  # nothing near it
    with pytest.raises(ValueError, match=r"zebra is not a var of this project \(see dbt_project"):
        load_settings()
    monkeypatch.setenv("NIGHTJAR_DBT_VARS", "{incremental_since: 2025-01-01}")
    with pytest.raises(ValueError, match="incremental_since is set by Nightjar itself"):
        load_settings()


def test_an_unknown_nightjar_setting_is_refused_with_the_nearest_name(
    workspace, monkeypatch, tmp_path
):
    misspelled = "NIGHTJAR_QUARANTINE_MAX_" + "SHAR"
    monkeypatch.setenv(misspelled, "0.01")
    with pytest.raises(ValueError) as refused:
        load_settings()
    assert str(refused.value) == (
        f"{misspelled} is not a Nightjar setting; did you mean NIGHTJAR_QUARANTINE_MAX_SHARE?"
    )
    monkeypatch.setenv(misspelled, "")  # set to nothing, it asks for nothing
    assert load_settings().quarantine_max_share == 0.005
    # ... and in the .env file alike; the entry is removed from the environment afterwards
    in_dotenv = "NIGHTJAR_CRM_EXPOR" + "T_MODE"
    monkeypatch.setenv(in_dotenv, "x")
    monkeypatch.delenv(in_dotenv)
    (tmp_path / ".env").write_text(f"{in_dotenv}=snapshot\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=f"{in_dotenv} is not a Nightjar setting; did you mean"):
        load_settings()


def test_a_misspelled_key_of_a_campaign_block_is_refused_with_the_nearest_key():
    from models.campaigns import CampaignConfigError, parse_campaign

    block = {
        "name": "vip",
        "template_id": "d-1",
        "subject": "Hi",
        "from_email": "a@example.com",
        "occasion_column": "vip_occasion",
        "holdout_shares": 0.2,
    }
    with pytest.raises(
        CampaignConfigError,
        match=r"unknown key\(s\) holdout_shares \(did you mean holdout_share\?\)",
    ):
        parse_campaign("cohort_vip", block)


def test_every_nightjar_name_the_project_reads_or_documents_is_in_the_one_list():
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    named: dict[str, str] = {}
    for name in files:
        path = ROOT / name
        if path == Path(__file__) or path.suffix not in TEXT_SUFFIXES:
            continue
        if path.is_file():
            for found in re.findall(
                r"\bNIGHTJAR_[A-Z0-9_]*[A-Z0-9]", path.read_text(errors="ignore")
            ):
                named.setdefault(found, name)
    unknown = {found: where for found, where in named.items() if found not in KNOWN_SETTING_NAMES}
    assert not unknown, f"add to models/settings.py SETTING_NAMES: {unknown}"


def test_load_settings_reads_only_names_of_the_one_list(workspace, monkeypatch, tmp_path):
    read: set[str] = set()

    class Reading(dict):
        def get(self, key, default=None):
            read.add(key)
            return super().get(key, default)

        def __getitem__(self, key):
            read.add(key)
            return super().__getitem__(key)

    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setattr(os, "environ", Reading(os.environ))
    load_settings()
    assert {n for n in read if n.startswith(("NIGHTJAR_", "SENDGRID_"))} <= set(SETTING_NAMES)


def test_the_descriptions_state_the_vars_a_run_with_the_same_environment_applies(
    workspace, monkeypatch
):
    from assets.warehouse.dbt_models import dbt_build_args
    from pipelines.definitions import build_definitions

    build_definitions()  # a first load, before the environment says otherwise: never kept
    monkeypatch.setenv("NIGHTJAR_DBT_VARS", TONIGHT)
    graph = build_definitions().resolve_asset_graph()
    loyalty = graph.get(AssetKey("cohort_loyalty")).description
    assert "who spent more than 800 on completed orders" in loyalty
    decisions = graph.get(AssetKey("send_decisions")).description
    assert "at most 2 message(s) a day and 3 in 7 days" in decisions
    assert "never in the quiet hours (22:00-08:00)" in decisions
    assert (
        "by priority, highest first: abandoned_cart, birthday, first_order_anniversary, welcome, "
        "loyalty, vip, first_purchase_followup, winback (350, 300, 280, 250, 200, 180, 150, 100)"
    ) in decisions
    assert "0% of its cohort" in decisions and "(10:00 unless its block sets send_hour)" in (
        decisions
    )
    send = graph.get(AssetKey("send_loyalty")).description
    assert "outside the quiet hours 22:00 to 8:00, at most 2 message(s) a day" in send
    assert "spent more than 800" in send
    # what the nightly build passes dbt, from the same settings
    args = dbt_build_args(D, load_settings(), None)
    passed = json.loads(args[args.index("--vars") + 1])
    assert (passed["loyalty_min_spend_730d"], passed["max_messages_per_day"]) == (800, 2)
    assert (passed["quiet_hours_start"], passed["default_timezone"]) == (22, "UTC")


def test_a_nights_materializations_record_the_vars_it_ran_with(workspace, monkeypatch):
    from pipelines.definitions import build_definitions

    # The UI's code location loaded without the installation's vars ("more than 1000") ...
    definitions = build_definitions()
    graph = definitions.resolve_asset_graph()
    assert "more than 1000" in graph.get(AssetKey("cohort_loyalty")).description
    # ... while the night runs with them: ann, who spent 900, is in the cohort tonight.
    monkeypatch.setenv("NIGHTJAR_DBT_VARS", TONIGHT)
    write_folder(
        workspace.landing,
        D,
        [contact("ann"), contact("bob")],
        [order("o-1", "ann", "2025-11-10T10:00:00Z", "900")],
    )
    instance = DagsterInstance.ephemeral()
    result = definitions.resolve_job_def("nightly_job").execute_in_process(
        partition_key=D, instance=instance, raise_on_error=False
    )
    assert result.success
    assert workspace.ids("main.cohort_loyalty") == {"ann"}
    for key in ("cohort_loyalty", "send_decisions", "customer_360", "send_loyalty"):
        event = instance.get_latest_materialization_event(AssetKey(key))
        recorded = event.asset_materialization.metadata["vars"].value
        assert recorded["as_of_date"] == D, key
        assert recorded["loyalty_min_spend_730d"] == 800, key
        assert recorded["max_messages_per_day"] == 2, key
        assert recorded["quiet_hours_start"] == 22, key
        assert recorded["quiet_hours_end"] == 8, key  # the project's default, recorded too
        assert "campaigns" not in recorded, key
