"""What engineers are told: extracts overdue (freshness checks) and runs that failed (an
alert posted to a chat webhook, received here by a local server)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dagster import DagsterInstance, build_run_status_sensor_context

from models.freshness import lateness, latest_due_date
from tests.support.landing import contact, write_folder


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_a_date_is_due_the_next_day_at_the_due_hour_in_the_local_time_zone():
    # 05:00 in New York on the 23rd: the 22nd is not due before 06:00, the 21st is
    assert latest_due_date(_utc("2026-11-23 10:00"), 6, "America/New_York") == dt.date(2026, 11, 21)
    assert latest_due_date(_utc("2026-11-23 11:30"), 6, "America/New_York") == dt.date(2026, 11, 22)
    # Tokyo's 23rd began at 15:00 UTC on the 22nd
    assert latest_due_date(_utc("2026-11-22 21:30"), 6, "Asia/Tokyo") == dt.date(2026, 11, 22)


def test_overdue_dates_are_those_without_a_complete_folder_holding_the_extract(tmp_path):
    now = _utc("2026-11-23 09:00")  # due at 06:00 UTC: the 22nd is due
    write_folder(tmp_path, "2026-11-19")
    write_folder(tmp_path, "2026-11-20")
    (tmp_path / "2026-11-20" / "orders.csv").unlink()  # the exporter forgot one file
    write_folder(tmp_path, "2026-11-21")
    write_folder(tmp_path, "2026-11-22", complete=False)  # no _SUCCESS yet
    late = lateness(tmp_path, "orders", now, 6, "UTC")
    assert late.overdue == [dt.date(2026, 11, 20), dt.date(2026, 11, 22)]
    assert late.latest_landed == dt.date(2026, 11, 21)
    assert late.hours_late == pytest.approx(51.0)  # the 20th was due on the 21st at 06:00
    message = late.describe(6, "UTC")
    assert "orders is overdue for 2026-11-20, 2026-11-22" in message and "51.0 h late" in message
    # contacts landed every day: on time
    assert lateness(tmp_path, "crm_contacts", now, 6, "UTC").overdue == [dt.date(2026, 11, 22)]
    (tmp_path / "2026-11-22" / "_SUCCESS").touch()
    assert lateness(tmp_path, "crm_contacts", now, 6, "UTC").ok


def test_the_freshness_job_fails_its_checks_while_yesterdays_extracts_are_missing(
    workspace, monkeypatch
):
    from pipelines.definitions import defs

    monkeypatch.setenv("NIGHTJAR_EXTRACTS_DUE_HOUR", "0")  # yesterday is always due by now
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    write_folder(workspace.landing, (yesterday - dt.timedelta(days=1)).isoformat())

    def checks():
        result = defs.resolve_job_def("freshness_job").execute_in_process(
            instance=DagsterInstance.ephemeral(), raise_on_error=False
        )
        assert result.success  # a late extract is a failed check, not a broken run
        return {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}

    evaluations = checks()
    assert set(evaluations) == {"crm_contacts", "orders", "web_events"}
    assert not any(e.passed for e in evaluations.values())
    assert f"orders is overdue for {yesterday}" in evaluations["orders"].description
    write_folder(workspace.landing, yesterday.isoformat())
    assert all(e.passed for e in checks().values())


class _Receiver(ThreadingHTTPServer):
    """A chat webhook on loopback: keeps what was posted, answers with `status`."""

    def __init__(self):
        self.posted: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posted.append(
                    {"type": self.headers["Content-Type"], "path": self.path, "body": body}
                )
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def receiver():
    server = _Receiver()
    yield server
    server.shutdown()


def _failed_night(workspace):
    """A night whose orders file is broken: ingest fails, naming the file and the row."""
    from pipelines.definitions import defs

    folder = write_folder(workspace.landing, "2025-11-20", [contact("ann")])
    (folder / "orders.csv").write_text("order_id,contact_id\no-1,ann\n", encoding="utf-8")
    instance = DagsterInstance.ephemeral()
    result = defs.resolve_job_def("nightly_job").execute_in_process(
        partition_key="2025-11-20", instance=instance, raise_on_error=False
    )
    assert not result.success
    return instance, result


def _alert(instance, result):
    from pipelines.alerts import alert_on_run_failure

    context = build_run_status_sensor_context(
        sensor_name="alert_on_run_failure",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    ).for_run_failure()
    return alert_on_run_failure(context)


def test_a_failed_run_posts_a_short_slack_compatible_message(
    workspace, receiver, monkeypatch, caplog
):
    secret_path = "/services/T000/B000/s3cr3t-t0ken"
    url = f"http://127.0.0.1:{receiver.server_port}{secret_path}"
    monkeypatch.setenv("NIGHTJAR_ALERT_WEBHOOK_URL", url)
    monkeypatch.setenv("NIGHTJAR_DAGSTER_URL", "http://dagster.example:3000/")
    instance, result = _failed_night(workspace)
    with caplog.at_level(logging.DEBUG):
        _alert(instance, result)
    (post,) = receiver.posted
    assert post["type"] == "application/json" and post["path"] == secret_path
    text = json.loads(post["body"])["text"]
    lines = text.splitlines()
    assert lines[0] == ":rotating_light: Nightjar: nightly_job failed for business date 2025-11-20."
    assert any(line.startswith("• raw__extracts: ") and "orders.csv" in line for line in lines)
    run_id = result.dagster_run.run_id
    assert (
        lines[-1] == f"<http://dagster.example:3000/runs/{run_id}|Open run {run_id[:8]} in Dagster>"
    )
    assert len(text) < 1500 and "ann@example.com" not in text
    assert "s3cr3t" not in caplog.text


def test_an_alert_the_webhook_refuses_is_an_error_that_hides_the_url(
    workspace, receiver, monkeypatch
):
    from pipelines.alerts import AlertNotDelivered

    monkeypatch.setenv(
        "NIGHTJAR_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{receiver.server_port}/hooks/s3cr3t"
    )
    receiver.status = 404
    instance, result = _failed_night(workspace)
    with pytest.raises(AlertNotDelivered, match="answered 404") as error:
        _alert(instance, result)
    assert "s3cr3t" not in str(error.value)


def test_without_a_webhook_url_a_failure_posts_nothing(workspace, receiver):
    instance, result = _failed_night(workspace)
    _alert(instance, result)
    assert receiver.posted == []


@pytest.mark.parametrize("url", ["hooks.example.com/services/s3cr3t", "http://x y/s3cr3t"])
def test_a_malformed_webhook_url_is_refused_without_quoting_it(url, monkeypatch):
    from models.settings import load_settings
    from pipelines.alerts import AlertNotDelivered, post_alert

    monkeypatch.setenv("NIGHTJAR_ALERT_WEBHOOK_URL", url)
    with pytest.raises(ValueError, match="NIGHTJAR_ALERT_WEBHOOK_URL") as error:
        load_settings()
    assert "s3cr3t" not in str(error.value)
    with pytest.raises(AlertNotDelivered) as undelivered:
        post_alert(url, "hello", timeout=2)
    assert "s3cr3t" not in str(undelivered.value)


def test_overdue_extracts_are_announced_once_per_date(workspace, receiver, monkeypatch):
    from dagster import build_sensor_context

    from pipelines.alerts import alert_on_overdue_extracts

    monkeypatch.setenv("NIGHTJAR_EXTRACTS_DUE_HOUR", "0")  # yesterday is always due by now
    monkeypatch.setenv("NIGHTJAR_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{receiver.server_port}/h")
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    write_folder(workspace.landing, (yesterday - dt.timedelta(days=1)).isoformat())
    folder = write_folder(workspace.landing, yesterday.isoformat())
    (folder / "web_events.csv").unlink()  # one extract missing from a complete folder

    context = build_sensor_context(cursor=None)
    alert_on_overdue_extracts(context)
    (post,) = receiver.posted
    text = json.loads(post["body"])["text"]
    assert text.splitlines()[0] == f":warning: Nightjar: extracts overdue for {yesterday}."
    assert f"• web_events is overdue for {yesterday}" in text
    assert "crm_contacts" not in text and "orders" not in text
    # the next evaluation knows it has told: no second message for the same date
    again = build_sensor_context(cursor=context.cursor)
    alert_on_overdue_extracts(again)
    assert len(receiver.posted) == 1
