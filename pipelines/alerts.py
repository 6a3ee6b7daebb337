"""Failed runs and overdue extracts are announced to a chat channel: a short message posted
as Slack-compatible JSON (`{"text": ...}`, which Slack, Mattermost, Rocket.Chat and Discord's
/slack endpoint take) to NIGHTJAR_ALERT_WEBHOOK_URL. The URL is a credential: it never
reaches a log."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import urllib.error
import urllib.request

from dagster import (
    DefaultSensorStatus,
    RunFailureSensorContext,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from models.extracts import REQUIRED_EXTRACTS
from models.freshness import lateness
from models.privacy import redact
from models.settings import load_settings
from pipelines.summary import step_failure_message

MAX_STEPS = 3
MAX_ERROR_CHARS = 300


class AlertNotDelivered(RuntimeError):
    """The webhook refused the alert or could not be reached."""


def _step_errors(context: RunFailureSensorContext) -> list[str]:
    lines = []
    for event in context.get_step_failure_events()[:MAX_STEPS]:
        message = " ".join(step_failure_message(event).split())
        if len(message) > MAX_ERROR_CHARS:
            message = message[: MAX_ERROR_CHARS - 1] + "…"
        lines.append(f"• {event.step_key}: {message}")
    return lines


def failure_message(context: RunFailureSensorContext, dagster_url: str) -> str:
    run = context.dagster_run
    date = run.tags.get("dagster/partition")
    what = f"{run.job_name} failed" + (f" for business date {date}" if date else "")
    steps = _step_errors(context) or [f"• {redact(context.failure_event.message or '')}"]
    link = f"<{dagster_url}/runs/{run.run_id}|Open run {run.run_id[:8]} in Dagster>"
    return "\n".join([f":rotating_light: Nightjar: {what}.", *steps, link])


def post_alert(url: str, text: str, timeout: float = 10.0) -> None:
    # Errors below never quote the URL: it is a credential.
    try:
        request = urllib.request.Request(
            url,
            data=json.dumps({"text": text}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as error:
        raise AlertNotDelivered(f"the alert webhook answered {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = redact(str(getattr(error, "reason", error)))
        raise AlertNotDelivered(f"the alert webhook could not be reached: {reason}") from None
    except (ValueError, http.client.HTTPException):
        raise AlertNotDelivered(
            "NIGHTJAR_ALERT_WEBHOOK_URL is not a valid http(s) URL (value not shown)"
        ) from None


@run_failure_sensor(
    name="alert_on_run_failure",
    default_status=DefaultSensorStatus.RUNNING,
    description="Posts a short message (job, business date, the failed steps and their "
    "errors, a link to the run) to NIGHTJAR_ALERT_WEBHOOK_URL when a run fails.",
)
def alert_on_run_failure(context: RunFailureSensorContext) -> None:
    settings = load_settings()
    if not settings.alert_webhook_url:
        context.log.info("NIGHTJAR_ALERT_WEBHOOK_URL is not set: no alert posted.")
        return
    post_alert(settings.alert_webhook_url, failure_message(context, settings.dagster_url))


@sensor(
    name="alert_on_overdue_extracts",
    minimum_interval_seconds=600,
    default_status=DefaultSensorStatus.RUNNING,
    description="Posts a short message to NIGHTJAR_ALERT_WEBHOOK_URL when a business date's "
    "extracts are overdue (the landed_on_time checks' rule), once per date.",
)
def alert_on_overdue_extracts(context: SensorEvaluationContext) -> SkipReason:
    settings = load_settings()
    if not settings.alert_webhook_url:
        return SkipReason("NIGHTJAR_ALERT_WEBHOOK_URL is not set: no alert posted.")
    now = dt.datetime.now(dt.UTC)
    late = [
        lateness(
            settings.landing, extract, now, settings.extracts_due_hour, settings.default_timezone
        )
        for extract in REQUIRED_EXTRACTS
    ]
    told = set(json.loads(context.cursor or "[]"))
    news = sorted({d.isoformat() for entry in late for d in entry.overdue} - told)
    if not news:
        return SkipReason("No extract newly overdue.")
    lines = [
        f"• {entry.describe(settings.extracts_due_hour, settings.default_timezone)}"
        for entry in late
        if {d.isoformat() for d in entry.overdue} & set(news)
    ]
    post_alert(
        settings.alert_webhook_url,
        "\n".join([f":warning: Nightjar: extracts overdue for {', '.join(news)}.", *lines]),
    )
    context.update_cursor(json.dumps(sorted(told | set(news))[-60:]))
    return SkipReason(f"Alert posted for {', '.join(news)}.")
