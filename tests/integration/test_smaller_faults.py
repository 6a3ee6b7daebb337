"""Issue 13, class 8: the smaller faults. An error whose body is cut short is still the error
its status said; a bad API key stops at the first 401; a long rate-limit wait never delivers
into the quiet hours; Dagster's telemetry is off in the instance the CLI creates; dbt's
target folder does not grow by a folder a night."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from assets.sends.campaigns import send_campaign
from assets.shared.warehouse import connect
from assets.warehouse.dbt_models import ABANDONED_AFTER, LAST_NIGHTLY, keep_as_last_nightly
from models.settings import DBT_PROJECT_DIR, load_settings
from pipelines.cli import main
from pipelines.run import _instance, project_settings
from senders.sendgrid import SendGridSender
from tests.integration.test_sendgrid_sender import message
from tests.support import decisions
from tests.support.scenario import NEXT_DAY, D, write_all, write_next_day
from tests.support.sendgrid_server import SendGridTestServer
from tests.unit.test_send_faults import CAMPAIGN, statuses

# -- the CLI's Dagster instance has the project's settings ----------------------------------


def test_a_cli_run_in_an_empty_dagster_home_has_telemetry_off_and_the_pool_limit(
    workspace, tmp_path, monkeypatch
):
    from dagster import DagsterInstance

    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    # A night that stops at its first step (nothing has landed) is a run all the same.
    assert main(["run", "--date", D]) == 1

    assert (home / "dagster.yaml").read_text() == project_settings()
    instance = DagsterInstance.get()
    assert instance.get_runs(), "the run is recorded in this DAGSTER_HOME"
    assert instance.get_settings("telemetry") == {"enabled": False}
    assert not instance.telemetry_enabled
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    assert not (home / ".telemetry").exists()


def test_an_existing_dagster_yaml_is_never_replaced(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    own = "telemetry:\n  enabled: false\nretention:\n  schedule:\n    purge_after_days: 7\n"
    (home / "dagster.yaml").write_text(own)
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    assert _instance().get_settings("retention") == {"schedule": {"purge_after_days": 7}}
    assert (home / "dagster.yaml").read_text() == own
    assert not list(home.glob(".dagster.yaml.*"))  # no draft left behind


def test_with_dagster_home_set_to_nothing_the_instance_has_the_project_settings_too(monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", "")

    instance = _instance()

    assert instance.is_ephemeral
    assert instance.get_settings("telemetry") == {"enabled": False}
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1


# -- dbt's target folder stays bounded ------------------------------------------------------


@pytest.mark.slow  # two nights in new processes on a copy of the project: make test-slow
def test_nights_in_a_row_leave_one_dbt_target_folder_the_last_nights(workspace, tmp_path):
    # A copy of the project: other tests' nights share the real one's target folder.
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    write_all(workspace.landing)
    write_next_day(workspace.landing)
    env = {**os.environ, "NIGHTJAR_DBT_PROJECT_DIR": str(project)}

    for night in (D, NEXT_DAY):
        completed = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "run", "--date", night],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        assert completed.returncode == 0, completed.stderr[-3000:]

    folders = sorted(p.name for p in (project / "target").iterdir() if p.is_dir())
    assert folders == [LAST_NIGHTLY, "nightly_parse"]
    # the second night ran on the first night's parse (assets/shared/dbt_runner.py)
    assert len(list((project / "target" / "nightly_parse").iterdir())) == 1
    last = project / "target" / LAST_NIGHTLY
    run_results = json.loads((last / "run_results.json").read_text())
    assert run_results["args"]["vars"]["as_of_date"] == NEXT_DAY
    assert {r["status"] for r in run_results["results"]} <= {"success", "pass", "warn"}
    assert (last / "dbt.log").exists()


def test_a_killed_nights_dbt_folder_goes_after_a_day_a_running_nights_stays(tmp_path):
    target = tmp_path / "target"
    abandoned, running, tonight = (
        target / f"warehouse_models-{run}-0000000" for run in ("killed0", "running", "tonight")
    )
    for folder in (abandoned, running, tonight, target / LAST_NIGHTLY):
        folder.mkdir(parents=True)
    (tonight / "run_results.json").write_text("{}")
    long_ago = time.time() - ABANDONED_AFTER.total_seconds() - 60
    os.utime(abandoned, (long_ago, long_ago))

    kept = keep_as_last_nightly(tonight, "warehouse_models")

    assert kept == target / LAST_NIGHTLY
    assert (kept / "run_results.json").exists()
    assert sorted(p.name for p in target.iterdir()) == [LAST_NIGHTLY, running.name]


# -- sending: faults of the answer, the key and the clock ------------------------------------


def news_cohort(workspace, size: int, deliver_within: dt.timedelta | None = None) -> None:
    """The news cohort of `size`, every member due; all to leave within a time."""
    decisions.news_cohort(workspace.warehouse, size)
    if deliver_within is not None:
        with connect(workspace.warehouse) as con:
            con.execute(
                "update main.send_decisions set deliver_by = ?",
                [dt.datetime.now(dt.UTC) + deliver_within],
            )


def test_an_error_cut_mid_body_is_a_failure_of_known_fate():
    waits: list[float] = []
    with SendGridTestServer(api_key="SG.key") as server:
        sender = SendGridSender("SG.key", server.url, sleep=waits.append, base_delay=0.01)
        server.fail_next(400, cut=True, field="template_id")
        refused = sender.send_batch(dt.date.fromisoformat(D), [message(1)])
        server.fail_next(500, cut=True)
        retried = sender.send_batch(dt.date.fromisoformat(D), [message(2)])
    # 400 then a broken body: refused, not "may have been accepted" (which is never resent)
    assert not refused.accepted and not refused.fate_unknown
    assert refused.error == "SendGrid answered 400 (its reasons cut short)"
    # 500 then a broken body: an error SendGrid answered, retried as any 5xx
    assert retried.accepted and len(waits) == 1
    assert [m["personalizations"][0]["custom_args"]["send_id"] for m in server.accepted] == [
        "send-2"
    ]


def test_a_bad_api_key_stops_the_campaign_after_the_first_401(workspace):
    news_cohort(workspace, 2500)  # three requests' worth
    with SendGridTestServer(api_key="SG.the-right-key") as server:
        wrong = SendGridSender("SG.a-revoked-key", server.url, base_delay=0.01)
        summary = send_campaign(CAMPAIGN, dt.date.fromisoformat(D), load_settings(), wrong)
    assert len(server.rejected) == 1 and server.rejected[0][0] == 401
    assert (summary.sent, summary.failed, summary.not_attempted) == (0, 1000, 1500)
    assert "check SENDGRID_API_KEY" in summary.errors[0]
    assert statuses(workspace) == {"failed": 1000, "planned": 1500}  # all sent by a later run


def test_a_long_rate_limit_wait_rechecks_the_quiet_hours_before_each_attempt(workspace):
    # Every message must leave within 3 s (its quiet hours begin then); the first request
    # waits 4 s for SendGrid's rate limit to reset: tried again then, it would be delivered
    # at night (it was, before each attempt was checked).
    news_cohort(workspace, 1500, deliver_within=dt.timedelta(seconds=3))
    with SendGridTestServer(api_key="SG.key") as server:
        server.fail_next(429, headers={"X-RateLimit-Reset": str(int(time.time()) + 4)})
        sender = SendGridSender("SG.key", server.url, base_delay=0.01)
        summary = send_campaign(CAMPAIGN, dt.date.fromisoformat(D), load_settings(), sender)
    assert (summary.sent, summary.not_attempted) == (0, 1500)
    assert "reached the quiet hours before they could leave" in summary.errors[0]
    assert "while they waited to be tried again (SendGrid answered 429" in summary.errors[0]
    # the first request's messages failed (sent by a later run, in the day), the rest planned
    assert statuses(workspace) == {"failed": 1000, "planned": 500}
    assert server.accepted == []
