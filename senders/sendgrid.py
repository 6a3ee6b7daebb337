"""SendGrid v3 Mail Send through the official client: batching, retries, sandbox mode."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import random
import re
import time
import urllib.error
from collections.abc import Callable, Mapping, Sequence

import orjson
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from models.privacy import redact
from senders.base import BatchOutcome, Message

MAX_PERSONALIZATIONS = 1000  # SendGrid's limit per request
# SendGrid refuses a request over 30 MB (413); a margin for what the client adds around it.
MAX_REQUEST_BYTES = 20 * 1024 * 1024
# The body is given to the client as JSON text (_json_text), which python_http_client sends
# as it is under any Content-Type but a bare application/json: this one, which SendGrid's own
# clients send too (the C# one's).
_JSON_TEXT = {"Content-Type": "application/json; charset=utf-8"}


class SendGridSender:
    """One request per batch, one personalization per recipient (docs/contract.md §5).

    Retries 429 after `X-RateLimit-Reset`, 5xx and unreachable hosts with bounded
    exponential backoff and jitter. A timeout or a dropped connection may have reached
    SendGrid, which has no idempotency key, so such a batch is reported as of unknown fate
    instead of being sent again.
    """

    channel = "sendgrid"
    max_batch_size = MAX_PERSONALIZATIONS
    max_batch_bytes = MAX_REQUEST_BYTES

    def __init__(
        self,
        api_key: str,
        host: str = "https://api.sendgrid.com",
        *,
        sandbox: bool = False,
        groups: Mapping[str, int] | None = None,
        subscription_tracking: bool = False,
        requests_at_once: int = 1,
        timeout: float = 30.0,
        max_attempts: int = 6,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ):
        self._client = SendGridAPIClient(api_key=api_key, host=host.rstrip("/"))
        self.sandbox = sandbox
        # topic -> unsubscribe group: each request carries its topic's, and lists them all
        # on SendGrid's preferences page (at most 25 may be shown)
        self.groups = dict(groups or {})
        self.subscription_tracking = subscription_tracking
        # A sandbox run is a rehearsal: SendGrid delivers nothing, so it must not use up
        # any occasion in the ledger.
        self.records_sends = not sandbox
        # the requests Delivery keeps out at once, each from a thread of its own
        self.requests_at_once = requests_at_once
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
        if any(m.topic != first.topic for m in messages):
            raise ValueError("one request, one topic: its unsubscribe group is the request's")
        if first.topic in self.groups:
            body["asm"] = {
                "group_id": self.groups[first.topic],
                "groups_to_display": sorted(self.groups.values())[:25],
            }
        if self.subscription_tracking:
            # SendGrid adds List-Unsubscribe (one click) and a link to its preferences page
            body["tracking_settings"] = {"subscription_tracking": {"enable": True}}
        if self.sandbox:
            # SendGrid validates and answers 200 but delivers nothing.
            body["mail_settings"] = {"sandbox_mode": {"enable": True}}
        return body

    def messages_bytes(self, messages: Sequence[Message], exact: bool = False) -> int:
        # Building the personalizations to measure them took a tenth of a send, and a
        # request's messages are far below the limit but for giant fields: a bound that
        # needs no building tells, and only one over the limit is measured.
        if not exact:
            at_most = sum(map(_personalization_bytes_at_most, messages))
            if at_most <= self.max_batch_bytes:
                return at_most
        return len(json.dumps([_personalization(m) for m in messages], default=str).encode())

    def send_batch(self, business_date: dt.date, messages: Sequence[Message]) -> BatchOutcome:
        if len(messages) > MAX_PERSONALIZATIONS:
            raise ValueError(f"at most {MAX_PERSONALIZATIONS} messages per request")
        # A message no request may hold: SendGrid would hang up while it is still uploaded.
        # `batches` (by messages_bytes) sends such a message alone, so only a lone message is
        # weighed here: weighing each of a thousand again cost a sixth of a send. A larger
        # batch too large after all is answered 413 and halved down to its culprit.
        refused: dict[str, str] = {}
        if len(messages) == 1 and (size := self.messages_bytes(messages)) > MAX_REQUEST_BYTES:
            refused[messages[0].send_id] = (
                f"refused: {size / 2**20:.0f} MB, more than a request may hold"
            )
        remaining = [m for m in messages if m.send_id not in refused]
        bad_addresses: set[str] = set()
        # the first quiet hours among them: no attempt may start later (a retry after a
        # rate limit's wait, say), or SendGrid would deliver at night
        deadline = min((m.deliver_by.timestamp() for m in messages if m.deliver_by), default=None)
        while remaining:
            outcome, status, errors = self._post(self.request_body(remaining), deadline)
            named = _refused_personalizations(errors, remaining)
            if not (outcome.accepted or outcome.fate_unknown or named):
                _classify(outcome, status, errors)
            if outcome.accepted or outcome.fate_unknown or not named:
                outcome.refused, outcome.bad_addresses = refused, bad_addresses
                return outcome
            # SendGrid refuses a whole request for one bad personalization: set those
            # aside and send the rest again.
            for send_id, (reason, for_address) in named.items():
                refused[send_id] = reason
                if for_address:
                    bad_addresses.add(send_id)
            remaining = [m for m in remaining if m.send_id not in named]
        return BatchOutcome(accepted=True, refused=refused, bad_addresses=bad_addresses)

    def _post(
        self, body: dict, deadline: float | None = None
    ) -> tuple[BatchOutcome, int | None, list[dict]]:
        """One request with its retries, none started from `deadline` (epoch seconds) on: the
        outcome, and the 4xx status and error list SendGrid answered, if any."""
        last_error = "no attempt made"
        text = _json_text(body)
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1 and deadline is not None and self._clock() >= deadline:
                late = f"their quiet hours began while they waited to be tried again ({last_error})"
                return BatchOutcome(accepted=False, late=True, error=late), None, []
            try:
                response = self._client.client.mail.send.post(
                    request_body=text, request_headers=_JSON_TEXT, timeout=self.timeout
                )
                message_id = response.headers.get("X-Message-Id")
                return BatchOutcome(accepted=True, provider_message_id=message_id), None, []
            except HTTPError as error:
                status, errors, headers = error.status_code, _errors(error), error.headers
                last_error = _describe(status, errors)
            except urllib.error.URLError as error:
                # urllib raises URLError only while connecting or writing the request, so
                # SendGrid cannot have processed it: safe to try again.
                last_error = redact(f"could not reach {self._client.host}: {error.reason}")
                self._sleep(self._backoff(attempt))
                continue
            except (TimeoutError, http.client.HTTPException, ConnectionError) as error:
                status = _status_before_the_cut(error)
                if status is None:
                    # The request went out and the answer did not come back.
                    return _unknown(error), None, []
                # A status line came, then the connection broke in its body: SendGrid has
                # said what became of the request, only its reasons are lost.
                errors, headers = [], error.__context__.headers
                last_error = f"SendGrid answered {status} (its reasons cut short)"
            if status == 429:
                self._sleep(self._rate_limit_wait(headers, attempt))
            elif status >= 500:
                self._sleep(self._backoff(attempt))
            else:
                return BatchOutcome(accepted=False, error=last_error), status, errors
        failure = f"gave up after {self.max_attempts} attempts: {last_error}"
        return BatchOutcome(accepted=False, error=failure), None, []

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # jitter spreads out many senders' retries

    def _rate_limit_wait(self, headers, attempt: int) -> float:
        reset = (headers or {}).get("X-RateLimit-Reset")
        try:
            wait = float(reset) - self._clock()
        except (TypeError, ValueError):
            return self._backoff(attempt)
        return min(self.max_delay, max(0.0, wait) + random.uniform(0, 0.25))


def _json_text(body: dict) -> str:
    """The request's JSON. python_http_client would write it with json.dumps: 6 ms a request
    of 1,000 personalizations, held under Python's lock by a sender thread while the others
    and the ledger wait; orjson takes a twentieth of that. What orjson will not write as
    json.dumps does (integers past 64 bits, lone surrogates, times and dataclasses, which it
    has spellings of its own for) is left to json.dumps, to be written or refused as before."""
    try:
        return orjson.dumps(
            body, option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
        ).decode()
    except orjson.JSONEncodeError:
        return json.dumps(body)


def _personalization(message: Message) -> dict:
    personalization = {
        "to": [_address(message.to_email, message.to_name)],
        "dynamic_template_data": {**message.data, "subject": message.subject},
        "custom_args": message.custom_args,
    }
    if message.headers:
        personalization["headers"] = dict(message.headers)
    if message.send_at is not None:
        # Each recipient's own local hour: SendGrid holds the message until then.
        personalization["send_at"] = int(message.send_at.timestamp())
    return personalization


# What _personalization adds around its values: its keys, quotes and separators, a send_at
# of up to 20 digits (under 400 bytes)
_PERSONALIZATION_FRAME_BYTES = 512


def _personalization_bytes_at_most(message: Message) -> int:
    """Over the length of the message's personalization as JSON, without building it. JSON
    spells a character in at most 12 bytes (\\ud83d\\ude00 for one beyond the BMP), and
    spells a value of the template data in at most 12 bytes a character of its repr (quotes,
    digits, separators alike; `default=str` serves only times, durations and bytes)."""
    chars = (
        len(repr(message.data))
        + len(repr(message.headers))
        + 2 * len(message.campaign)  # custom_args' campaign and journey
        + len(message.contact_id)
        + len(message.send_id)
        + len(message.occasion)
        + len(message.to_email)
        + len(message.to_name or "")
        + len(message.subject)
        + len(message.step or "")
        + len(message.variant or "")
        + len(message.topic or "")
    )
    return 12 * chars + _PERSONALIZATION_FRAME_BYTES


def _address(email: str, name: str | None) -> dict:
    return {"email": email, "name": name} if name else {"email": email}


def _errors(error: HTTPError) -> list[dict]:
    try:
        errors = json.loads(error.body or b"{}").get("errors") or []
    except (ValueError, AttributeError):
        return []
    return [e for e in errors if isinstance(e, dict)]


def _describe(status: int, errors: list[dict]) -> str:
    # SendGrid's messages may quote an address; they end up in the ledger, logs and the UI.
    detail = redact("; ".join(str(e.get("message")) for e in errors))
    return f"SendGrid answered {status}" + (f": {detail}" if detail else "")


def _status_before_the_cut(error: Exception) -> int | None:
    """The 4xx/5xx status of an answer whose body broke off: the client raises the cut
    while reading the error body, inside its handling of urllib's HTTPError."""
    context = error.__context__
    return context.code if isinstance(context, urllib.error.HTTPError) else None


# An error about one personalization (its index); about its recipient's address when the
# field is to/cc/bcc or one of their emails (not their display names). Its send_at is
# Nightjar's doing, not the message's: such an error, and any other field, is the request's.
_PERSONALIZATION_FIELD = re.compile(
    r"^personalizations\.(\d+)(?!\.send_at)(?:\.((?:to|cc|bcc)(?:\.\d+(?:\.email)?)?$))?"
)


def _refused_personalizations(
    errors: list[dict], messages: list[Message]
) -> dict[str, tuple[str, bool]]:
    """send_id -> (reason, for its address) when every error names a personalization; else
    {} (the request is at fault, not a message in it)."""
    refused: dict[str, tuple[str, bool]] = {}
    for error in errors:
        match = _PERSONALIZATION_FIELD.match(str(error.get("field") or ""))
        if not match or int(match.group(1)) >= len(messages):
            return {}
        reason = f"SendGrid refused: {redact(str(error.get('message')))}"
        refused[messages[int(match.group(1))].send_id] = (reason, match.group(2) is not None)
    return refused


def _classify(outcome: BatchOutcome, status: int | None, errors: list[dict]) -> None:
    """A refused request that names no personalization: refused whatever it holds (stop the
    campaign), or for something unnamed in it (split it to find the message)."""
    if status is None:
        return  # 5xx or 429 past the retries: the next run sends it again
    if status in (401, 403):
        outcome.stop = True
        outcome.error += (
            " — check SENDGRID_API_KEY (Mail Send permission) and the campaign's from_email "
            "(a verified sender)"
        )
    elif status in (400, 413) and not any(e.get("field") for e in errors):
        outcome.splittable = True  # too large, or no field named: a message in it?
    else:
        # a field of the request itself (the template, the sender ...), or an endpoint
        # that is not SendGrid's mail send (404, 405, 415): so is every other batch
        outcome.stop = True


def _unknown(error: Exception) -> BatchOutcome:
    return BatchOutcome(
        accepted=False,
        fate_unknown=True,
        error=f"no answer from SendGrid ({type(error).__name__}: {redact(str(error))}); "
        "the batch may or may not have been accepted",
    )
