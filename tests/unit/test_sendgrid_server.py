"""Tests for the local SendGrid test server, driven by the real sendgrid client."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from python_http_client.exceptions import (
    BadRequestsError,
    InternalServerError,
    NotFoundError,
    ServiceUnavailableError,
    TooManyRequestsError,
    UnauthorizedError,
)
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Category,
    CustomArg,
    From,
    Mail,
    MailSettings,
    Personalization,
    SandBoxMode,
    To,
)

from tests.support import sendgrid_server
from tests.support.sendgrid_server import SendGridTestServer, validate_mail_send

API_KEY = "SG.test-key"
REPO_ROOT = Path(__file__).resolve().parents[2]
MESSAGE_ID_RE = re.compile(r"[A-Za-z0-9_-]{22}")


@pytest.fixture
def server():
    with SendGridTestServer(API_KEY) as running:
        yield running


@pytest.fixture
def sg(server: SendGridTestServer) -> SendGridAPIClient:
    return SendGridAPIClient(API_KEY, host=server.url)


def template_body(**overrides: Any) -> dict[str, Any]:
    """A minimal valid dynamic-template request."""
    body: dict[str, Any] = {
        "from": {"email": "news@example.com", "name": "Nightjar"},
        "template_id": "d-0123456789abcdef0123456789abcdef",
        "personalizations": [
            {"to": [{"email": "ann@example.com"}], "dynamic_template_data": {"first": "Ann"}}
        ],
    }
    body.update(overrides)
    return body


def post_invalid(sg: SendGridAPIClient, body: Any) -> list[dict[str, Any]]:
    """Send a raw body (bypassing the Mail helper); expect a 400 and return its errors."""
    with pytest.raises(BadRequestsError) as info:
        sg.client.mail.send.post(request_body=body)
    assert info.value.status_code == 400
    errors = info.value.to_dict["errors"]
    assert errors, "a 400 must say what is wrong"
    for error in errors:
        assert set(error) == {"message", "field", "help"}
        assert error["help"] is None
    return errors


def fields(errors: list[dict[str, Any]]) -> list[str | None]:
    return [error["field"] for error in errors]


# ---------------------------------------------------------------------------------------
# Accepted requests
# ---------------------------------------------------------------------------------------


def test_dynamic_template_request_with_several_personalizations_is_accepted(server, sg):
    mail = Mail(from_email=From("news@example.com", "Nightjar"))
    mail.template_id = "d-0123456789abcdef0123456789abcdef"
    mail.category = [Category("lifecycle"), Category("winback")]
    mail.custom_arg = CustomArg("run_id", "2026-11-22")
    mail.mail_settings = MailSettings(sandbox_mode=SandBoxMode(False))
    for n in range(3):
        personalization = Personalization()
        personalization.add_to(To(f"customer{n}@example.com", f"Customer {n}"))
        personalization.dynamic_template_data = {"first_name": f"C{n}", "points": n * 10}
        personalization.add_custom_arg(CustomArg("customer_id", str(n)))
        personalization.add_custom_arg(CustomArg("cohort", "lapsed-90d"))
        mail.add_personalization(personalization)

    response = sg.send(mail)

    assert response.status_code == 202
    assert response.body == b""
    message_id = response.headers["X-Message-Id"]
    assert MESSAGE_ID_RE.fullmatch(message_id)
    assert server.message_ids == [message_id]
    assert server.rejected == []
    sent = json.loads(json.dumps(mail.get()))
    assert server.accepted == [sent]
    # Mail.add_personalization inserts at the front: the last one added is sent first.
    recipients = [p["to"][0]["email"] for p in server.accepted[0]["personalizations"]]
    assert recipients == [f"customer{n}@example.com" for n in (2, 1, 0)]
    assert server.accepted[0]["custom_args"] == {"run_id": "2026-11-22"}
    assert server.accepted[0]["personalizations"][0]["custom_args"] == {
        "customer_id": "2",
        "cohort": "lapsed-90d",
    }


def test_message_ids_are_unique_and_recorded_in_order(server, sg):
    ids = [
        sg.client.mail.send.post(request_body=template_body()).headers["X-Message-Id"]
        for _ in range(5)
    ]
    assert server.message_ids == ids
    assert len(set(ids)) == 5
    assert len(server.accepted) == 5


@pytest.mark.parametrize("example", ["MailSendDynamicTemplate", "MailSendNoTemplate"])
def test_the_specs_own_examples_are_valid(example):
    spec = sendgrid_server.load_spec()
    content = spec["components"]["requestBodies"]["PostMailSend"]["content"]
    body = content["application/json"]["examples"][example]["value"]
    assert validate_mail_send(body) == []


def test_gzip_body_is_accepted(server):
    # The spec documents Content-Encoding: gzip for request bodies.
    import gzip

    request = urllib.request.Request(
        f"{server.url}/v3/mail/send",
        data=gzip.compress(json.dumps(template_body()).encode()),
        headers={
            "Authorization": f"Bearer {API_KEY}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 202
    assert server.accepted == [template_body()]


# ---------------------------------------------------------------------------------------
# Rejected requests: one rule each
# ---------------------------------------------------------------------------------------


def test_rejects_empty_personalizations(server, sg):
    errors = post_invalid(sg, template_body(personalizations=[]))
    assert fields(errors) == ["personalizations"]
    assert "at least one personalization" in errors[0]["message"]
    assert server.accepted == []
    assert [status for status, _, _ in server.rejected] == [400]


def test_rejects_missing_personalizations(sg):
    body = template_body()
    del body["personalizations"]
    errors = post_invalid(sg, body)
    assert fields(errors) == ["personalizations"]


def test_rejects_personalization_without_to(sg):
    body = template_body(personalizations=[{"dynamic_template_data": {"first": "Ann"}}])
    errors = post_invalid(sg, body)
    assert fields(errors) == ["personalizations.0.to"]
    assert "to array is required" in errors[0]["message"]


def test_rejects_personalization_with_empty_to(sg):
    errors = post_invalid(sg, template_body(personalizations=[{"to": []}]))
    assert fields(errors) == ["personalizations.0.to"]


def test_rejects_1001_personalizations(server, sg):
    personalizations = [{"to": [{"email": f"u{n}@example.com"}]} for n in range(1001)]
    errors = post_invalid(sg, template_body(personalizations=personalizations))
    assert fields(errors) == ["personalizations", "personalizations"]
    too_many_items, too_many_recipients = (error["message"] for error in errors)
    assert "personalizations must contain at most 1000 items, not 1001" in too_many_items
    # ... which is also one recipient too many; both problems are listed.
    assert "at most 1000 recipients" in too_many_recipients
    assert all(len(e["message"]) < 400 for e in errors), "messages must not dump the body"


def test_accepts_exactly_1000_personalizations(server, sg):
    personalizations = [{"to": [{"email": f"u{n}@example.com"}]} for n in range(1000)]
    response = sg.client.mail.send.post(
        request_body=template_body(personalizations=personalizations)
    )
    assert response.status_code == 202


def test_rejects_more_than_1000_recipients_in_fewer_personalizations(sg):
    personalizations = [
        {
            "to": [{"email": f"to{n}@example.com"}],
            "cc": [{"email": f"cc{n}@example.com"}],
        }
        for n in range(501)
    ]
    errors = post_invalid(sg, template_body(personalizations=personalizations))
    assert fields(errors) == ["personalizations"]
    assert "1002" in errors[0]["message"]


def test_rejects_the_same_address_twice(sg):
    body = template_body(
        personalizations=[
            {"to": [{"email": "ann@example.com"}]},
            {"to": [{"email": "bob@example.com"}], "bcc": [{"email": "Ann@Example.com"}]},
        ]
    )
    errors = post_invalid(sg, body)
    assert fields(errors) == ["personalizations.1.bcc.0.email"]
    assert "personalizations.0.to.0.email" in errors[0]["message"]


def test_rejects_non_string_custom_args_value(sg):
    body = template_body(
        personalizations=[{"to": [{"email": "ann@example.com"}], "custom_args": {"n": 7}}]
    )
    errors = post_invalid(sg, body)
    assert fields(errors) == ["personalizations.0.custom_args.n"]
    assert "must be strings, not integer" in errors[0]["message"]


def test_rejects_non_string_message_level_custom_args_value(sg):
    errors = post_invalid(sg, template_body(custom_args={"run": {"id": 1}}))
    assert fields(errors) == ["custom_args.run"]


def test_message_level_custom_args_is_an_object_not_a_string(sg):
    # The spec says string; the API (and Mail.get()) use an object. Patched in the server.
    errors = post_invalid(sg, template_body(custom_args="run=1"))
    assert fields(errors) == ["custom_args"]
    sg.client.mail.send.post(request_body=template_body(custom_args={"run": "1"}))


def test_rejects_custom_args_over_10000_bytes(sg):
    body = template_body(
        custom_args={"pipeline": "x" * 5000},
        personalizations=[
            {"to": [{"email": "ann@example.com"}], "custom_args": {"note": "y" * 5000}}
        ],
    )
    errors = post_invalid(sg, body)
    assert fields(errors) == ["personalizations.0.custom_args"]
    assert "10000 bytes" in errors[0]["message"]


@pytest.mark.parametrize(
    "value",
    ["x", "\x01", '"', "é", "𝄞", 'x\x01é"', "\\"],
    ids=["ascii", "control", "quote", "accent", "astral", "mixed", "backslash"],
)
def test_custom_args_are_refused_exactly_past_10000_bytes_whatever_their_characters(value):
    """Args the server passes on a bound without measuring them are under the limit too:
    around the limit, each size measured as compact JSON is accepted up to 10,000 bytes and
    refused past it."""

    def body(args):
        return template_body(personalizations=[{"to": [{"email": "a@b.co"}], "custom_args": args}])

    def size(args):
        return len(json.dumps(args, ensure_ascii=False, separators=(",", ":")).encode())

    for repeat in range(1, 10_001):
        args = {"note": value * repeat}
        if size(args) > 10_000 - 40:
            break
    verdicts = []
    for more in range(80):
        args = {"note": value * repeat, "pad": "p" * more}
        errors = validate_mail_send(body(args))
        refused = any(e["field"] == "personalizations.0.custom_args" for e in errors)
        verdicts.append((size(args) > 10_000, refused))
    assert all(over == refused for over, refused in verdicts)
    assert {over for over, _ in verdicts} == {True, False}  # both sides of the limit tried


def test_rejects_missing_from(sg):
    body = template_body()
    del body["from"]
    errors = post_invalid(sg, body)
    assert fields(errors) == ["from"]
    assert "from object must be provided" in errors[0]["message"]


def test_rejects_invalid_from_address(sg):
    errors = post_invalid(sg, template_body(**{"from": {"email": "not-an-address"}}))
    assert fields(errors) == ["from.email"]
    assert "valid address" in errors[0]["message"]


def test_rejects_no_content_and_no_template(sg):
    body = template_body(subject="Hello")
    del body["template_id"]
    errors = post_invalid(sg, body)
    assert fields(errors) == ["content"]
    assert "content parameter is required" in errors[0]["message"]


def test_rejects_no_subject_and_no_template(sg):
    body = template_body(content=[{"type": "text/plain", "value": "Hi"}])
    del body["template_id"]
    errors = post_invalid(sg, body)
    assert fields(errors) == ["subject"]
    assert "subject is required" in errors[0]["message"]


def test_subject_in_every_personalization_is_enough(sg):
    body = template_body(content=[{"type": "text/plain", "value": "Hi"}])
    del body["template_id"]
    body["personalizations"][0]["subject"] = "Hello"
    assert sg.client.mail.send.post(request_body=body).status_code == 202


def test_rejects_reply_to_with_reply_to_list(sg):
    body = template_body(
        reply_to={"email": "help@example.com"}, reply_to_list=[{"email": "help2@example.com"}]
    )
    errors = post_invalid(sg, body)
    assert fields(errors) == ["reply_to_list"]


def test_rejects_send_at_more_than_72_hours_ahead(sg):
    too_late = int(time.time()) + 73 * 3600
    body = template_body(send_at=too_late)
    body["personalizations"][0]["send_at"] = too_late
    errors = post_invalid(sg, body)
    assert fields(errors) == ["send_at", "personalizations.0.send_at"]
    sg.client.mail.send.post(request_body=template_body(send_at=int(time.time()) + 3600))


def test_rejects_eleven_categories(sg):
    errors = post_invalid(sg, template_body(categories=[f"c{n}" for n in range(11)]))
    assert fields(errors) == ["categories"]


def test_lists_every_problem_found(sg):
    body = {
        "personalizations": [{"to": [{"email": "a@example.com"}, {"email": "A@example.com"}]}],
        "custom_args": {"n": 1},
    }
    errors = post_invalid(sg, body)
    assert set(fields(errors)) == {
        "from",
        "custom_args.n",
        "personalizations.0.to.1.email",
        "content",
        "subject",
    }


def test_rejects_non_json_content_type(server):
    request = urllib.request.Request(
        f"{server.url}/v3/mail/send",
        data=json.dumps(template_body()).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "text/plain"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 400
    assert "application/json" in json.load(info.value)["errors"][0]["message"]


def test_rejects_malformed_json(sg):
    # A str body with a non-JSON Content-Type is sent as is; give the JSON type per call.
    sg.client.request_headers["Content-Type"] = "application/json; charset=utf-8"
    errors = post_invalid(sg, '{"personalizations": [')
    assert "not valid JSON" in errors[0]["message"]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_rejects_numbers_json_has_no_spelling_of(sg, constant):
    # what json.dumps writes for float("nan"): Python reads it back, SendGrid's parser does not
    sg.client.request_headers["Content-Type"] = "application/json; charset=utf-8"
    body = json.dumps(template_body()).replace('"to": [', f'"n": {constant}, "to": [', 1)
    errors = post_invalid(sg, body)
    assert f"{constant.lstrip('-')} is not JSON" in errors[0]["message"]


# ---------------------------------------------------------------------------------------
# Auth, routing and scripted faults
# ---------------------------------------------------------------------------------------


def test_wrong_api_key_is_401(server):
    sg = SendGridAPIClient("SG.wrong", host=server.url)
    with pytest.raises(UnauthorizedError) as info:
        sg.client.mail.send.post(request_body=template_body())
    assert info.value.status_code == 401
    assert info.value.to_dict == {
        "errors": [
            {
                "message": "The provided authorization grant is invalid, expired, or revoked",
                "field": None,
                "help": None,
            }
        ]
    }
    assert server.accepted == []
    assert server.rejected[0][0] == 401


def test_missing_authorization_is_401(server):
    request = urllib.request.Request(
        f"{server.url}/v3/mail/send",
        data=json.dumps(template_body()).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 401


def test_unknown_path_is_404(sg):
    with pytest.raises(NotFoundError) as info:
        sg.client.mail.batch.post(request_body={})
    assert info.value.status_code == 404


def test_fail_next_429_carries_rate_limit_headers(server, sg):
    server.fail_next(429)
    before = time.time()
    with pytest.raises(TooManyRequestsError) as info:
        sg.client.mail.send.post(request_body=template_body())
    headers = info.value.headers
    assert headers["X-RateLimit-Limit"] == "600"
    assert headers["X-RateLimit-Remaining"] == "0"
    assert before < int(headers["X-RateLimit-Reset"]) <= before + 2
    assert info.value.to_dict["errors"][0]["message"] == "too many requests"
    # Only the next request was scripted; a retry goes through.
    assert sg.client.mail.send.post(request_body=template_body()).status_code == 202
    assert [status for status, _, _ in server.rejected] == [429]
    assert server.rejected[0][1] == template_body()


def test_fail_next_429_header_overrides(server, sg):
    server.fail_next(429, headers={"X-RateLimit-Reset": "1234", "X-RateLimit-Limit": None})
    with pytest.raises(TooManyRequestsError) as info:
        sg.client.mail.send.post(request_body=template_body())
    assert info.value.headers["X-RateLimit-Reset"] == "1234"
    assert "X-RateLimit-Limit" not in info.value.headers


def test_fail_next_500(server, sg):
    server.fail_next(500)
    with pytest.raises(InternalServerError) as info:
        sg.client.mail.send.post(request_body=template_body())
    assert info.value.status_code == 500
    assert info.value.to_dict["errors"][0]["message"] == "internal server error"
    assert server.accepted == []


def test_fail_next_count_and_order(server, sg):
    server.fail_next(503, count=2)
    server.fail_next(429)
    raised = []
    for _ in range(4):
        try:
            sg.client.mail.send.post(request_body=template_body())
            raised.append(None)
        except (ServiceUnavailableError, TooManyRequestsError) as exc:
            raised.append(type(exc))
    assert raised == [ServiceUnavailableError, ServiceUnavailableError, TooManyRequestsError, None]


def test_drop_next_raises_remote_disconnected(server, sg):
    server.drop_next()
    # The server reads the request, then closes the socket without a status line:
    # http.client raises RemoteDisconnected (a ConnectionResetError and a BadStatusLine),
    # and neither urllib nor python_http_client wraps it (python_http_client only converts
    # urllib.error.HTTPError, and urllib only wraps errors raised while *sending*, e.g. a
    # refused connection becomes urllib.error.URLError). A read timeout likewise surfaces
    # as a bare TimeoutError. All of these are OSError subclasses.
    with pytest.raises(http.client.RemoteDisconnected):
        sg.client.mail.send.post(request_body=template_body())
    assert server.accepted == []
    assert server.dropped == [template_body()]
    assert sg.client.mail.send.post(request_body=template_body()).status_code == 202


def test_drop_next_processed_records_the_accepted_mail(server, sg):
    server.drop_next(processed=True)
    with pytest.raises(ConnectionError):
        sg.client.mail.send.post(request_body=template_body())
    # The mail was accepted even though the client never heard back.
    assert server.accepted == [template_body()]
    assert server.dropped == [template_body()]
    assert len(server.message_ids) == 1
    # An invalid request is rejected (and recorded) but still gets no response.
    server.drop_next(processed=True)
    with pytest.raises(ConnectionError):
        sg.client.mail.send.post(request_body=template_body(personalizations=[]))
    assert [status for status, _, _ in server.rejected] == [400]
    assert len(server.dropped) == 2


def test_reset_forgets_requests_and_faults(server, sg):
    sg.client.mail.send.post(request_body=template_body())
    post_invalid(sg, template_body(personalizations=[]))
    server.fail_next(500, count=3)
    server.reset()
    assert (server.accepted, server.rejected, server.message_ids) == ([], [], [])
    assert sg.client.mail.send.post(request_body=template_body()).status_code == 202


def test_fail_next_rejects_non_error_status(server):
    with pytest.raises(ValueError):
        server.fail_next(202)


# ---------------------------------------------------------------------------------------
# Spec, validator and standalone mode
# ---------------------------------------------------------------------------------------


def test_vendored_spec_matches_recorded_checksum():
    readme = (sendgrid_server.SPEC_PATH.parent / "README.md").read_text()
    recorded = re.search(r"\| sha256 \| `([0-9a-f]{64})` \|", readme).group(1)
    assert hashlib.sha256(sendgrid_server.SPEC_PATH.read_bytes()).hexdigest() == recorded


def big_body(n: int = 1000) -> dict[str, Any]:
    return template_body(
        custom_args={"pipeline": "nightjar"},
        categories=["lifecycle"],
        personalizations=[
            {
                "to": [{"email": f"user{i}@example.com", "name": f"User {i}"}],
                "dynamic_template_data": {"first": "Ann", "points": i, "offers": [{"sku": "a"}]},
                "custom_args": {"customer_id": str(i), "campaign": "spring"},
            }
            for i in range(n)
        ],
    )


@pytest.mark.parametrize(
    "body",
    [
        big_body(3),
        {"personalizations": "x", "from": 1, "custom_args": "x", "categories": [1, 1]},
        template_body(
            personalizations=[{"to": [{"email": "bad"}, {}], "cc": "x", "custom_args": {"a": 1}}],
            attachments=[{"content": "", "filename": "a", "disposition": "sideways"}],
            asm={"groups_to_display": list(range(26))},
            ip_pool_name="x",
        ),
        [],
    ],
)
def test_fast_validator_agrees_with_plain_jsonschema(body):
    def verdicts(validator):
        return sorted(
            (list(e.absolute_path), e.validator, e.message) for e in validator.iter_errors(body)
        )

    assert verdicts(sendgrid_server._validator()) == verdicts(sendgrid_server._standard_validator())


def _every_field(schema: dict[str, Any]) -> Any:
    """A value the schema allows with every property it names filled in (one item a list)."""
    if "allOf" in schema:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            merged = {
                **part,
                **merged,
                "properties": {**part.get("properties", {}), **merged.get("properties", {})},
            }
        return _every_field(merged)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        value = {name: _every_field(sub) for name, sub in schema.get("properties", {}).items()}
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and not value:
            value["key"] = _every_field(extra)
        return value
    if kind == "array":
        return [_every_field(schema.get("items", {}))]
    if kind == "string":
        return "someone@example.com" if schema.get("format") == "email" else "text"
    return {"integer": 1, "number": 1.5, "boolean": True, "null": None}.get(kind, "text")


# Each value of a body, replaced by one of these: every JSON type, and the edge cases of the
# keywords the schema uses (lengths, formats, integers written as floats, booleans as ints).
_REPLACEMENTS = [
    None, True, False, 0, 1, -1, 1.0, 1.5, 10**20, "", "x", "someone@example.com", "not mail",
    "a b@example.com", "a@b@example.com", "someone@example.com trailing", "é@example.com",
    "x" * 1001, [], [1], ["x", "x"], {}, {"key": "value"}, {"key": 1},
]  # fmt: skip


def _mutations(value: Any) -> Iterator[Any]:
    """Every value one change away from `value`: each part replaced (_REPLACEMENTS), each
    object given an unknown key or missing one of its own, each list emptied, its items
    repeated, grown past 1000 items."""
    yield from _REPLACEMENTS
    if isinstance(value, dict):
        yield {**value, "not_in_the_spec": "x"}
        for key, part in value.items():
            yield {k: v for k, v in value.items() if k != key}
            for changed in _mutations(part):
                yield {**value, key: changed}
    if isinstance(value, list):
        yield value + value
        if value:
            yield value * 1001
            for index, part in enumerate(value):
                for changed in _mutations(part):
                    yield [*value[:index], changed, *value[index + 1 :]]


def test_the_compiled_schema_passes_exactly_what_jsonschema_passes():
    """The server checks a body with the compiled schema first and walks it with jsonschema
    only when it fails: every body one change away from a full one must get the same
    verdict from both, or the server would let through what SendGrid's spec refuses."""
    standard = sendgrid_server._standard_validator()
    full = _every_field(sendgrid_server.request_schema())
    assert standard.is_valid(full)
    bodies = [full, template_body(), big_body(2)]
    checked = disagreements = 0
    for body in bodies:
        for mutated in _mutations(body):
            checked += 1
            if sendgrid_server._passes_schema(mutated) != standard.is_valid(mutated):
                disagreements += 1
                print("disagree:", json.dumps(mutated, default=str)[:300])
    assert checked > 3000
    assert disagreements == 0


def test_an_item_nested_hundreds_of_lists_deep_gets_the_same_verdict_as_from_jsonschema():
    # fastjsonschema's uniqueItems recurses into each reply_to_list item and runs out of
    # stack where jsonschema does not: the server must still answer, as jsonschema does
    item = {"email": "a@b.co", "x": json.loads("[" * 900 + "]" * 900)}
    body = template_body(reply_to_list=[item])
    assert sendgrid_server._standard_validator().is_valid(body)
    assert validate_mail_send(body) == []


def test_a_full_1000_personalization_body_is_valid():
    # How fast this validates is measured by the benchmarks, never asserted here.
    assert validate_mail_send(big_body(1000)) == []


def test_standalone_mode_serves_until_terminated():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.sendgrid_server", "--port", "0", "--api-key", "KEY"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        response = SendGridAPIClient("KEY", host=url).client.mail.send.post(
            request_body=template_body()
        )
        assert response.status_code == 202
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "1 accepted" in stderr
