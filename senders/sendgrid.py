"""SendGrid v3 Mail Send through the official client: batching, retries, sandbox mode."""

from __future__ import annotations

import http.client
import json
import random
import re
import time
import urllib.error
from collections.abc import Callable, Sequence

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from pipelines.redaction import redact
from senders.base import BatchOutcome, Message

MAX_PERSONALIZATIONS = 1000  # SendGrid's limit per request


class SendGridSender:
    """One request per batch, one personalization per recipient (CONTRACT §5).

    Retries 429 after `X-RateLimit-Reset`, 5xx and unreachable hosts with bounded
    exponential backoff and jitter. A timeout or a dropped connection may have reached
    SendGrid, which has no idempotency key, so such a batch is reported as of unknown fate
    instead of being sent again.
    """

    channel = "sendgrid"
    max_batch_size = MAX_PERSONALIZATIONS

    def __init__(
        self,
        api_key: str,
        host: str = "https://api.sendgrid.com",
        *,
        sandbox: bool = False,
        timeout: float = 30.0,
        max_attempts: int = 6,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ):
        self._client = SendGridAPIClient(api_key=api_key, host=host.rstrip("/"))
        self.sandbox = sandbox
        # A sandbox run is a rehearsal: SendGrid delivers nothing, so it must not use up
        # any occasion in the ledger.
        self.records_sends = not sandbox
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._clock = clock

    def request_body(self, messages: Sequence[Message]) -> dict:
        first = messages[0]
        if any(m.template_id != first.template_id for m in messages):
            # template_id belongs to the request: each A/B variant goes in its own batches
            raise ValueError("one request, one template: batch each variant apart")
        body: dict = {
            "from": _address(first.from_email, first.from_name),
            "template_id": first.template_id,
            "personalizations": [_personalization(m) for m in messages],
        }
        if first.categories:
            body["categories"] = list(first.categories)
        if self.sandbox:
            # SendGrid validates and answers 200 but delivers nothing.
            body["mail_settings"] = {"sandbox_mode": {"enable": True}}
        return body

    def send_batch(self, business_date: str, messages: Sequence[Message]) -> BatchOutcome:
        if len(messages) > MAX_PERSONALIZATIONS:
            raise ValueError(f"at most {MAX_PERSONALIZATIONS} messages per request")
        remaining = list(messages)
        refused: dict[str, str] = {}
        while remaining:
            outcome, errors = self._post(self.request_body(remaining))
            bad = _refused_personalizations(errors, remaining)
            if outcome.accepted or outcome.fate_unknown or not bad:
                outcome.refused = refused
                return outcome
            # SendGrid refuses a whole request for one bad recipient: set those aside and
            # send the rest again.
            refused.update(bad)
            remaining = [m for m in remaining if m.send_id not in bad]
        return BatchOutcome(accepted=True, refused=refused)

    def _post(self, body: dict) -> tuple[BatchOutcome, list[dict]]:
        """One request with its retries; the 4xx error list, if any, beside the outcome."""
        last_error = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self._client.client.mail.send.post(
                    request_body=body, timeout=self.timeout
                )
                message_id = response.headers.get("X-Message-Id")
                return BatchOutcome(accepted=True, provider_message_id=message_id), []
            except HTTPError as error:
                last_error = _describe_http_error(error)
                if error.status_code == 429:
                    self._sleep(self._rate_limit_wait(error, attempt))
                elif error.status_code >= 500:
                    self._sleep(self._backoff(attempt))
                else:
                    return BatchOutcome(accepted=False, error=last_error), _errors(error)
            except urllib.error.URLError as error:
                # urllib raises URLError only while connecting or writing the request, so
                # SendGrid cannot have processed it: safe to try again.
                last_error = redact(f"could not reach {self._client.host}: {error.reason}")
                self._sleep(self._backoff(attempt))
            except (TimeoutError, http.client.HTTPException, ConnectionError) as error:
                # The request went out and the answer did not come back.
                return _unknown(error), []
        failure = f"gave up after {self.max_attempts} attempts: {last_error}"
        return BatchOutcome(accepted=False, error=failure), []

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # jitter spreads out many senders' retries

    def _rate_limit_wait(self, error: HTTPError, attempt: int) -> float:
        reset = (error.headers or {}).get("X-RateLimit-Reset")
        try:
            wait = float(reset) - self._clock()
        except (TypeError, ValueError):
            return self._backoff(attempt)
        return min(self.max_delay, max(0.0, wait) + random.uniform(0, 0.25))


def _personalization(message: Message) -> dict:
    personalization = {
        "to": [_address(message.to_email, message.to_name)],
        "dynamic_template_data": {**message.data, "subject": message.subject},
        "custom_args": message.custom_args,
    }
    if message.send_at is not None:
        # Each recipient's own local hour: SendGrid holds the message until then.
        personalization["send_at"] = int(message.send_at.timestamp())
    return personalization


def _address(email: str, name: str | None) -> dict:
    return {"email": email, "name": name} if name else {"email": email}


def _errors(error: HTTPError) -> list[dict]:
    try:
        errors = json.loads(error.body or b"{}").get("errors") or []
    except (ValueError, AttributeError):
        return []
    return [e for e in errors if isinstance(e, dict)]


def _describe_http_error(error: HTTPError) -> str:
    # SendGrid's messages may quote an address; they end up in the ledger, logs and the UI.
    detail = redact("; ".join(str(e.get("message")) for e in _errors(error)))
    return f"SendGrid answered {error.status_code}" + (f": {detail}" if detail else "")


# An error about one recipient's address; any other error is the request's (a bad send_at,
# say, must not pass for an address SendGrid refuses).
_PERSONALIZATION_FIELD = re.compile(r"^personalizations\.(\d+)\.(?:to|cc|bcc)\b")


def _refused_personalizations(errors: list[dict], messages: list[Message]) -> dict[str, str]:
    """send_id -> reason when every error names a personalization; else {} (the whole
    request is at fault)."""
    refused: dict[str, str] = {}
    for error in errors:
        match = _PERSONALIZATION_FIELD.match(str(error.get("field") or ""))
        if not match or int(match.group(1)) >= len(messages):
            return {}
        reason = redact(str(error.get("message")))
        refused[messages[int(match.group(1))].send_id] = f"SendGrid refused: {reason}"
    return refused


def _unknown(error: Exception) -> BatchOutcome:
    return BatchOutcome(
        accepted=False,
        fate_unknown=True,
        error=f"no answer from SendGrid ({type(error).__name__}: {redact(str(error))}); "
        "the batch may or may not have been accepted",
    )
