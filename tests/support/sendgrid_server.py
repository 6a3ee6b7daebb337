"""Strict local SendGrid-compatible test server for ``POST /v3/mail/send``."""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import gzip
import hmac
import json
import logging
import random
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import fastjsonschema
import jsonschema.validators
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

__all__ = ["SPEC_PATH", "SendGridTestServer", "load_spec", "validate_mail_send"]

_log = logging.getLogger(__name__)

# Relative to this file, so tests pass whatever the working directory.
SPEC_PATH = Path(__file__).parent / "reference" / "sendgrid-mail-send-openapi.json"
MAIL_SEND_PATH = "/v3/mail/send"

MAX_RECIPIENTS = 1000  # to + cc + bcc over all personalizations of one request
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_SEND_AT_AHEAD_SECONDS = 72 * 3600
# SendGrid rejects messages over 30 MB; refusing early also bounds the memory a bad client
# can make the test server use.
MAX_BODY_BYTES = 30 * 1024 * 1024
RATE_LIMIT_LIMIT = 600  # what X-RateLimit-Limit says on scripted 429s

# Keys that only annotate a schema; dropping them from the compiled copy saves jsonschema
# from iterating over them on every object it visits.
_ANNOTATIONS = frozenset({"description", "title", "example", "examples", "default", "nullable"})

# A pragmatic address check: the spec says `format: email`, and jsonschema's own "email"
# check only looks for an "@", which would accept "@" or "a b@c".
_EMAIL_RE = re.compile(r"[^@\s\"<>(),;:]+@[^@\s\"<>(),;:]+\.[^@\s\"<>(),;:.]+")


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


@functools.cache
def load_spec() -> dict[str, Any]:
    """Parse the vendored OpenAPI document (once per process)."""
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


def _resolve_pointer(document: Any, ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $refs are supported, got {ref!r}")
    node = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _inline_refs(node: Any, document: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """Return a copy of ``node`` with every local ``$ref`` replaced by its target.

    The mail-send schema is not recursive, so inlining is possible, and it makes validation
    about 25% faster than resolving refs through a ``referencing`` registry at every visit.
    """
    if isinstance(node, list):
        return [_inline_refs(item, document, seen) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        if ref in seen:
            raise ValueError(f"recursive $ref {ref!r} cannot be inlined")
        target = _inline_refs(_resolve_pointer(document, ref), document, (*seen, ref))
        siblings = {k: _inline_refs(v, document, seen) for k, v in node.items() if k != "$ref"}
        if not siblings:
            return target
        # In 2020-12 a $ref applies alongside its sibling keywords, i.e. like an allOf.
        return {**siblings, "allOf": [*siblings.get("allOf", []), target]}
    return {k: _inline_refs(v, document, seen) for k, v in node.items()}


def _strip_annotations(node: Any) -> Any:
    if isinstance(node, list):
        return [_strip_annotations(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "properties":
            # Property names are data, not keywords: never drop them.
            out[key] = {name: _strip_annotations(sub) for name, sub in value.items()}
        elif key not in _ANNOTATIONS:
            out[key] = _strip_annotations(value)
    return out


def request_schema() -> dict[str, Any]:
    """The mail-send request schema from the spec, refs inlined, with the known gaps patched."""
    spec = load_spec()
    body_ref = spec["paths"][MAIL_SEND_PATH]["post"]["requestBody"]
    request_body = _resolve_pointer(spec, body_ref["$ref"]) if "$ref" in body_ref else body_ref
    schema = _strip_annotations(
        _inline_refs(request_body["content"]["application/json"]["schema"], spec)
    )

    string_values = {"type": "string"}
    # Gap: the spec types message-level custom_args as a string, but the API (and the
    # official client's Mail.get()) send an object whose values are strings.
    schema["properties"]["custom_args"] = {"type": "object", "additionalProperties": string_values}
    # Gap: personalization-level custom_args values must be strings too (the spec only says
    # "object"); the live API rejects numbers and nested objects there.
    personalization = schema["properties"]["personalizations"]["items"]
    personalization["properties"]["custom_args"]["additionalProperties"] = string_values
    return schema


def _check_email(instance: object) -> bool:
    return not isinstance(instance, str) or _EMAIL_RE.fullmatch(instance) is not None


# Keywords whose meaning depends on the validator's own schema or resolver scope, i.e. on
# what jsonschema's `descend` sets up (via `evolve`) and `_fast_descend` skips.
_SCOPED_KEYWORDS = frozenset(
    {
        "$ref",
        "$dynamicRef",
        "$recursiveRef",
        "$id",
        "$anchor",
        "$dynamicAnchor",
        "unevaluatedProperties",
        "unevaluatedItems",
    }
)


def _fast_descend(
    validator: Any, instance: Any, schema: Any, path: Any = None, schema_path: Any = None
) -> Iterable[ValidationError]:
    """``Validator.descend`` without its per-call ``evolve``.

    jsonschema builds a new validator object (and resolver scope) for every subschema it
    descends into; that is most of the time spent on a 1000-personalization body. For a
    schema with no refs, ids or unevaluated* keywords (checked when compiling) the keyword
    functions only use ``is_type`` and the format checker, so running them with the parent
    validator gives the same verdicts. Error bookkeeping mirrors ``descend`` (jsonschema
    4.26, pinned in pyproject.toml; ``_set`` is what ``descend`` itself calls).
    """
    if schema is True:
        return
    if schema is False:
        yield from validator.descend(instance, schema, path=path, schema_path=schema_path)
        return
    # Most leaves are a bare {"type": "..."}: when the instance passes (the usual case),
    # skip the generator machinery. is_type is exactly what the "type" keyword checks.
    expected = schema.get("type")
    if len(schema) == 1 and type(expected) is str and validator.is_type(instance, expected):
        return
    for keyword, value in schema.items():
        function = validator.VALIDATORS.get(keyword)
        if function is None:
            continue
        for error in function(validator, value, instance, schema) or ():
            error._set(
                validator=keyword,
                validator_value=value,
                instance=instance,
                schema=schema,
                type_checker=validator.TYPE_CHECKER,
            )
            if keyword not in ("if", "$ref"):
                error.schema_path.appendleft(keyword)
            if path is not None:
                error.path.appendleft(path)
            if schema_path is not None:
                error.schema_path.appendleft(schema_path)
            yield error


# The four applicators the request schema uses, as in jsonschema._keywords but descending
# with _fast_descend.
def _properties(validator: Any, properties: Any, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "object"):
        return
    for name, subschema in properties.items():
        if name in instance:
            yield from _fast_descend(validator, instance[name], subschema, name, name)


def _items(validator: Any, items: Any, instance: Any, schema: Any) -> Any:
    if items is False or "prefixItems" in schema:  # not used by the spec: defer to jsonschema
        yield from _STANDARD_KEYWORDS["items"](validator, items, instance, schema)
        return
    if not validator.is_type(instance, "array"):
        return
    for index, item in enumerate(instance):
        yield from _fast_descend(validator, item, items, index)


def _additional_properties(validator: Any, additional: Any, instance: Any, schema: Any) -> Any:
    if (
        "patternProperties" in schema
        or not validator.is_type(additional, "object")
        or not validator.is_type(instance, "object")
    ):  # not used by the spec (or nothing to check): defer to jsonschema
        yield from _STANDARD_KEYWORDS["additionalProperties"](
            validator, additional, instance, schema
        )
        return
    known = schema.get("properties", {})
    for name, value in instance.items():
        if name not in known:
            yield from _fast_descend(validator, value, additional, name)


def _all_of(validator: Any, all_of: Any, instance: Any, schema: Any) -> Any:
    for index, subschema in enumerate(all_of):
        yield from _fast_descend(validator, instance, subschema, None, index)


_STANDARD_KEYWORDS = Draft202012Validator.VALIDATORS
_FastValidator = jsonschema.validators.extend(
    Draft202012Validator,
    validators={
        "properties": _properties,
        "items": _items,
        "additionalProperties": _additional_properties,
        "allOf": _all_of,
    },
)


def _uses_scoped_keywords(node: Any) -> bool:
    if isinstance(node, list):
        return any(_uses_scoped_keywords(item) for item in node)
    if not isinstance(node, dict):
        return False
    if _SCOPED_KEYWORDS.intersection(node):
        return True
    return any(_uses_scoped_keywords(value) for value in node.values())


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checks("email")(_check_email)
    return checker


@functools.cache
def _standard_validator() -> Draft202012Validator:
    """The plain jsonschema validator for the same schema (the reference for tests)."""
    schema = request_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=_format_checker())


@functools.cache
def _validator() -> Any:
    # Compiled once per process: building it (and inlining the refs) costs far more than
    # validating a typical request.
    schema = request_schema()
    Draft202012Validator.check_schema(schema)
    if _uses_scoped_keywords(schema):  # a future spec with refs left in: stay correct
        return _standard_validator()
    return _FastValidator(schema, format_checker=_format_checker())


# The keywords whose meaning is the same in draft 7, which fastjsonschema compiles, as in
# 2020-12, the spec's; `items` only as one schema for every item (checked when compiling).
_SAME_SINCE_DRAFT_7 = frozenset(
    {
        "type", "enum", "const", "properties", "required", "additionalProperties",
        "minProperties", "maxProperties", "items", "minItems", "maxItems", "uniqueItems",
        "minLength", "maxLength", "pattern", "format", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "allOf", "anyOf", "oneOf", "not",
    }
)  # fmt: skip


def _keywords(node: Any) -> set[str]:
    """Every keyword a schema uses (a property's name is not one); `items` as a list is
    reported as `items[]`."""
    if isinstance(node, list):
        return set().union(*(_keywords(item) for item in node))
    if not isinstance(node, dict):
        return set()
    found = {"items[]" if k == "items" and isinstance(v, list) else k for k, v in node.items()}
    for key, value in node.items():
        values = value.values() if key == "properties" else [value]
        found |= set().union(*(_keywords(sub) for sub in values))
    return found


@functools.cache
def _compiled_verdict() -> Callable[[Any], Any] | None:
    """The schema compiled to Python code (fastjsonschema): whether a body passes it, about
    six times faster than jsonschema's walk. A body it refuses is walked by jsonschema for the
    errors to report, so the verdict alone must be the same: with the same keywords, formats
    and types (tests/unit/test_sendgrid_server.py compares them on every mutation of a body
    the schema allows). The server shares the machine's cores with the sender the bench
    measures; on SendGrid's side none of this is the sender's time. None when the schema uses a
    keyword whose meaning changed since draft 7: jsonschema alone then."""
    schema = request_schema()
    if not _keywords(schema) <= _SAME_SINCE_DRAFT_7:
        return None
    return fastjsonschema.compile(
        schema,
        formats={"email": _check_email},
        use_default=False,  # never write a default into the body it checks
        detailed_exceptions=False,
    )


def _passes_schema(body: Any) -> bool:
    verdict = _compiled_verdict()
    if verdict is None:
        return False
    try:
        verdict(body)
    except (fastjsonschema.JsonSchemaException, RecursionError):
        # RecursionError: fastjsonschema's uniqueItems compares items by recursion, and an
        # item hundreds of lists deep (which the schema allows) exhausts it where jsonschema
        # does not: jsonschema's walk then gives the verdict
        return False
    return True


def _error(message: str, field: str | None) -> dict[str, Any]:
    # SendGrid's error item shape: {"message", "field", "help"}.
    return {"message": message, "field": field, "help": None}


def _field(path: Iterable[Any]) -> str | None:
    # SendGrid names fields with dotted paths, e.g. "personalizations.0.to.1.email".
    joined = ".".join(str(part) for part in path)
    return joined or None


_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}
_REQUIRED_RE = re.compile(r"^'(?P<name>.+)' is a required property$")

# SendGrid's own wording for the missing fields callers get wrong most often.
_REQUIRED_MESSAGES = {
    "from": (
        "The from object must be provided for every email send. It is an object that "
        "requires the email parameter, but may also contain a name parameter."
    ),
    "personalizations": (
        "The personalizations field is required and must have at least one personalization."
    ),
    "to": (
        "The to array is required for all personalization objects, and must have at least "
        "one email object with a valid email address."
    ),
}


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _schema_error(error: ValidationError) -> dict[str, Any]:
    """Turn a jsonschema error into a SendGrid-style error item.

    jsonschema's own messages embed repr(instance), which for a 1001-item personalizations
    array is a wall of text, so most keywords get a message of their own.
    """
    path = list(error.absolute_path)
    keyword = error.validator
    expected = error.validator_value
    instance = error.instance
    where = _field(path) or "The request body"

    if keyword == "required":
        match = _REQUIRED_RE.match(error.message)
        name = match.group("name") if match else None
        field = _field([*path, name]) if name else _field(path)
        default = f"The {field} field is required."
        return _error(_REQUIRED_MESSAGES.get(name or "", default), field)
    if keyword == "type":
        actual = _JSON_TYPES.get(type(instance), type(instance).__name__)
        wanted = " or ".join(expected) if isinstance(expected, list) else expected
        if "custom_args" in path[-2:-1]:
            message = f"{where}: custom_args values must be strings, not {actual}."
        else:
            message = f"{where} must be of type {wanted}, not {actual}."
        return _error(message, _field(path))
    if keyword == "minLength":
        rule = "must not be empty" if expected == 1 else f"must be at least {expected} characters"
        return _error(f"{where} {rule}.", _field(path))
    if keyword == "maxLength":
        return _error(f"{where} must be at most {expected} characters.", _field(path))
    if keyword == "maxItems":
        return _error(
            f"{where} must contain at most {expected} items, not {len(instance)}.", _field(path)
        )
    if keyword == "minItems":
        return _error(f"{where} must contain at least {expected} items.", _field(path))
    if keyword == "maxProperties":
        return _error(f"{where} must have at most {expected} properties.", _field(path))
    if keyword == "uniqueItems":
        return _error(f"{where} must not contain duplicate items.", _field(path))
    if keyword == "enum":
        choices = ", ".join(repr(choice) for choice in expected)
        return _error(f"{where} must be one of {choices}.", _field(path))
    if keyword == "format" and expected == "email":
        return _error(
            f"{where}: {_short_repr(instance)} does not contain a valid address.", _field(path)
        )
    return _error(f"{where}: {_short_repr(error.message, 300)}", _field(path))


def _custom_args_size_over_limit(args: dict[str, Any]) -> int | None:
    """The args' size when it is over the limit, else None. Measured as the compact JSON
    the args travel as (keys and quotes included): a conservative reading of "may not exceed
    10,000 bytes"."""
    if _surely_within_limit(args):
        return None
    size = len(json.dumps(args, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    return size if size > MAX_CUSTOM_ARGS_BYTES else None


def _surely_within_limit(args: dict[str, Any]) -> bool:
    """ASCII keys and values whose JSON cannot reach the limit: JSON spells an ASCII
    character in at most 6 bytes (a control character's \\u escape), and each pair adds 6
    of quotes, colon and comma. Measuring every personalization's args exactly took the
    server more time than its schema check."""
    total = 2
    for key, value in args.items():
        if not (type(key) is str and type(value) is str and key.isascii() and value.isascii()):
            return False
        total += 6 * (len(key) + len(value) + 1)
    return total <= MAX_CUSTOM_ARGS_BYTES


def _prose_errors(body: dict[str, Any], now: float) -> list[dict[str, Any]]:
    """Rules the spec only states in prose. Tolerates malformed input: the schema pass has
    already reported wrong types, so anything unexpected here is skipped, not re-reported."""
    errors: list[dict[str, Any]] = []
    has_template = isinstance(body.get("template_id"), str) and bool(body["template_id"])
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list):
        personalizations = None
    elif not personalizations:
        errors.append(_error(_REQUIRED_MESSAGES["personalizations"], "personalizations"))

    message_args = body.get("custom_args")
    if not isinstance(message_args, dict):
        message_args = {}
    message_args_size = _custom_args_size_over_limit(message_args)
    if message_args_size is not None:
        errors.append(
            _error(
                f"custom_args may not exceed {MAX_CUSTOM_ARGS_BYTES} bytes "
                f"(message-level custom_args take {message_args_size}).",
                "custom_args",
            )
        )

    latest_send_at = now + MAX_SEND_AT_AHEAD_SECONDS
    send_at_message = "send_at cannot be scheduled more than 72 hours in advance."
    send_at = body.get("send_at")
    if type(send_at) is int and send_at > latest_send_at:
        errors.append(_error(send_at_message, "send_at"))

    recipients = 0
    first_seen: dict[str, str] = {}  # lower-cased address -> field where it first appeared
    without_subject: list[int] = []
    for index, personalization in enumerate(personalizations or ()):
        if not isinstance(personalization, dict):
            continue
        prefix = f"personalizations.{index}"
        for kind in ("to", "cc", "bcc"):
            addresses = personalization.get(kind)
            if not isinstance(addresses, list):
                continue
            if kind == "to" and not addresses:
                errors.append(_error(_REQUIRED_MESSAGES["to"], f"{prefix}.to"))
            recipients += len(addresses)
            for position, address in enumerate(addresses):
                email = address.get("email") if isinstance(address, dict) else None
                if not isinstance(email, str):
                    continue
                key = email.lower()
                field = f"{prefix}.{kind}.{position}.email"
                if key in first_seen:
                    errors.append(
                        _error(
                            "Each email address may be used only once per request (to, cc "
                            "and bcc of all personalizations, case-insensitive). We found a "
                            f"duplicate of {email!r}, first used in {first_seen[key]}.",
                            field,
                        )
                    )
                else:
                    first_seen[key] = field

        args = personalization.get("custom_args")
        if isinstance(args, dict) and args:
            # Personalization-level args are merged over the message-level ones, and the
            # limit applies to what ends up on each message. (Read per request, the limit
            # would allow ~10 bytes per personalization in a full batch, which the live API
            # does not enforce.)
            size = _custom_args_size_over_limit({**message_args, **args})
            if size is not None:
                errors.append(
                    _error(
                        f"custom_args may not exceed {MAX_CUSTOM_ARGS_BYTES} bytes per "
                        f"personalization (message-level merged with {prefix}.custom_args "
                        f"take {size}).",
                        f"{prefix}.custom_args",
                    )
                )

        errors.extend(_header_errors(personalization.get("headers"), f"{prefix}.headers"))

        send_at = personalization.get("send_at")
        if type(send_at) is int and send_at > latest_send_at:
            errors.append(_error(send_at_message, f"{prefix}.send_at"))

        subject = personalization.get("subject")
        if not (isinstance(subject, str) and subject):
            without_subject.append(index)

    if recipients > MAX_RECIPIENTS:
        errors.append(
            _error(
                f"The personalizations field may contain at most {MAX_RECIPIENTS} recipients "
                f"(to, cc and bcc of all personalizations combined); this request has "
                f"{recipients}.",
                "personalizations",
            )
        )

    if not has_template:
        content = body.get("content")
        if not content:  # missing, null or empty: the schema has no minItems
            errors.append(
                _error(
                    "Unless a valid template_id is provided, the content parameter is "
                    "required. There must be at least one defined content block.",
                    "content",
                )
            )
        subject = body.get("subject")
        has_subject = isinstance(subject, str) and bool(subject)
        if not has_subject and personalizations and without_subject:
            shown = ", ".join(str(i) for i in without_subject[:10])
            more = ", ..." if len(without_subject) > 10 else ""
            errors.append(
                _error(
                    "The subject is required. You can get around this requirement if you "
                    "use a template with a subject defined or if every personalization has "
                    f"a subject defined; personalizations without one: [{shown}{more}].",
                    "subject",
                )
            )

    errors.extend(_header_errors(body.get("headers"), "headers"))

    if "reply_to" in body and "reply_to_list" in body:
        errors.append(
            _error(
                "The reply_to and reply_to_list parameters cannot be used together.",
                "reply_to_list",
            )
        )
    return errors


# Headers the spec says may not be set (its prose on `headers`); compared case-insensitively.
_RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "x-sg-id", "x-sg-eid", "received", "dkim-signature", "Content-Type",
        "Content-Transfer-Encoding", "To", "From", "Subject", "Reply-To", "CC", "BCC",
    )
)  # fmt: skip


def _header_errors(headers: Any, field: str) -> list[dict[str, Any]]:
    """The spec's prose on `headers`: string values only, none of the reserved names, and
    (as any mail header) no line break that would start a header of its own."""
    if not isinstance(headers, dict):
        return []
    errors = []
    for name, value in headers.items():
        if str(name).lower() in _RESERVED_HEADERS:
            errors.append(_error(f"You may not override the {name} header.", f"{field}.{name}"))
        elif not isinstance(value, str) or "\r" in value or "\n" in value:
            errors.append(
                _error(f"The {name} header must be a string on one line.", f"{field}.{name}")
            )
    return errors


def validate_mail_send(body: Any, *, now: float | None = None) -> list[dict[str, Any]]:
    """Validate a parsed ``/v3/mail/send`` body; return SendGrid-style error items.

    An empty list means the live API would accept the body (as far as the spec and its
    documented prose rules tell). ``now`` (epoch seconds) is the reference for ``send_at``.
    """
    errors = []
    if not _passes_schema(body):  # jsonschema's walk finds what is wrong, and says it
        errors = [_schema_error(error) for error in _validator().iter_errors(body)]
    if isinstance(body, dict):
        errors.extend(_prose_errors(body, time.time() if now is None else now))
    return errors


# --------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fault:
    status: int | None  # None: drop the connection
    headers: dict[str, str | None]
    processed: bool = False  # drop only: handle the request first, then lose the response
    field: str | None = None  # the field the error names
    cut: bool = False  # the connection breaks in the middle of the error body
    holding: str | None = None  # only for a request to this contact (its custom_args)


def _no_json_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


class _RequestError(Exception):
    """A request that is rejected before validation (auth, encoding, JSON)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = [_error(message, field)]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a client that keeps its socket open
    request_queue_size = 128  # benchmarks open many short connections at once
    app: SendGridTestServer


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so keep-alive clients (benchmarks) can reuse connections; every response
    # carries a Content-Length. The sendgrid client itself sends "Connection: close".
    protocol_version = "HTTP/1.1"
    server_version = "nightjar-sendgrid-test"
    server: _HTTPServer

    def do_POST(self) -> None:
        self.server.app._dispatch(self)

    do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.app.verbose:
            super().log_message(format, *args)


def _read_body(handler: _Handler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        total = 0
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            total += size
            if total > MAX_BODY_BYTES:
                raise _RequestError(413, "content too large")
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    if length > MAX_BODY_BYTES:
        raise _RequestError(413, "content too large")
    return handler.rfile.read(length) if length > 0 else b""


def _parse_for_record(raw: bytes) -> Any:
    """Best-effort parse of a body that is recorded without being validated."""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw


def _contacts(body: Any) -> set[str]:
    """The contact_ids a body's personalizations name in their custom_args."""
    personalizations = body.get("personalizations") if isinstance(body, dict) else None
    if not isinstance(personalizations, list):
        return set()
    return {
        str(p["custom_args"].get("contact_id"))
        for p in personalizations
        if isinstance(p, dict) and isinstance(p.get("custom_args"), dict)
    }


class SendGridTestServer:
    """A strict stand-in for SendGrid's ``POST /v3/mail/send`` on 127.0.0.1.

    Use as a context manager; point the real client at it with
    ``SendGridAPIClient(api_key, host=server.url)``.

    - ``accepted``: parsed bodies of accepted (202) requests, in order of acceptance.
    - ``message_ids``: the ``X-Message-Id`` of each accepted request, aligned with
      ``accepted``.
    - ``rejected``: ``(status, body, errors)`` for every other response, scripted faults
      included; ``body`` is the parsed JSON, raw bytes if it did not parse, or None if empty.
    - ``dropped``: bodies of requests whose connection was dropped by ``drop_next`` (with
      ``processed=True`` they are also in ``accepted`` or ``rejected``).

    The lists are only appended to (under a lock) and cleared in place by ``reset()``, so
    references to them stay valid. ``record_bodies=False`` stores None instead of each
    body, for long benchmark runs.
    """

    def __init__(
        self,
        api_key: str = "test-api-key",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        record_bodies: bool = True,
        verbose: bool = False,
        on_accept: Callable[[str, Any], None] | None = None,
        answer_after: float = 0.0,
    ) -> None:
        self.api_key = api_key
        # Seconds each accepted request takes to answer, as SendGrid's do over the internet
        # (the wait costs no CPU here). `most_at_once`: the most requests it held at once.
        self.answer_after = answer_after
        self.most_at_once = 0
        self._at_once = 0
        self.host = host
        self.port = port
        self.record_bodies = record_bodies
        self.verbose = verbose
        self.accepted: list[Any] = []
        self.rejected: list[tuple[int, Any, list[dict[str, Any]]]] = []
        self.message_ids: list[str] = []
        self.dropped: list[Any] = []
        self._faults: collections.deque[_Fault] = collections.deque()
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._expected_auth = f"Bearer {api_key}".encode()
        # Called with (message_id, body) for each accepted request before the 202 goes out,
        # as SendGrid's event pipeline starts before its answer: chaos tests post events here.
        self.on_accept = on_accept
        self._random: random.Random | None = None
        self._rates = (0.0, 0.0, 0.0)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> SendGridTestServer:
        if self._httpd is not None:
            raise RuntimeError("server already started")
        _validator()  # compile before the first request, not during it
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.app = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # quick shutdown in tests
            name=f"sendgrid-test-server:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SendGridTestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}"

    # -- scripting -----------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        count: int = 1,
        headers: dict[str, str | None] | None = None,
        *,
        field: str | None = None,
        cut: bool = False,
        holding: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests with ``status`` (before auth or validation);
        with ``holding``, the next requests to that contact (requests out at once reach the
        server in any order).

        A 429 carries X-RateLimit-Limit/-Remaining (0)/-Reset (the next epoch second);
        ``headers`` add to or override the defaults (a None value removes a header). The
        error names ``field``; with ``cut`` the connection breaks half way through the error
        body (its Content-Length promises more). Faults queue up in call order, together
        with ``drop_next``.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"fail_next needs a 4xx or 5xx status, got {status}")
        if count < 1:
            raise ValueError("count must be at least 1")
        fault = _Fault(
            status=status, headers=dict(headers or {}), field=field, cut=cut, holding=holding
        )
        with self._lock:
            self._faults.extend([fault] * count)

    def drop_next(self, count: int = 1, *, processed: bool = False) -> None:
        """Close the connection of the next ``count`` requests without any response.

        The request body is read first, so the client sees the server hang up while it
        waits for the response (``http.client.RemoteDisconnected`` with the sendgrid
        client). With ``processed=True`` the request is validated and recorded (as
        accepted or rejected) before the response is lost, like a connection that breaks
        after SendGrid accepted the mail: a retry then sends it twice.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        fault = _Fault(status=None, headers={}, processed=processed)
        with self._lock:
            self._faults.extend([fault] * count)

    def random_faults(
        self, *, rate_429: float = 0.0, rate_500: float = 0.0, rate_drop: float = 0.0, seed=None
    ) -> None:
        """When no scripted fault is queued, fail requests at random with these rates; half
        of the dropped connections are processed first (the answer alone is lost)."""
        with self._lock:
            self._random = random.Random(seed)
            self._rates = (rate_429, rate_500, rate_drop)

    def _random_fault(self) -> _Fault | None:
        if self._random is None:
            return None
        draw = self._random.random()
        rate_429, rate_500, rate_drop = self._rates
        if draw < rate_429:
            return _Fault(status=429, headers={})
        if draw < rate_429 + rate_500:
            return _Fault(status=500, headers={})
        if draw < rate_429 + rate_500 + rate_drop:
            return _Fault(status=None, headers={}, processed=self._random.random() < 0.5)
        return None

    def reset(self) -> None:
        """Forget recorded requests and pending faults."""
        with self._lock:
            self.accepted.clear()
            self.rejected.clear()
            self.message_ids.clear()
            self.dropped.clear()
            self._faults.clear()

    # -- request handling --------------------------------------------------------------

    def _record(self, target: list[Any], item: Any) -> None:
        with self._lock:
            target.append(item)

    def _respond(
        self,
        handler: _Handler,
        status: int,
        body: bytes = b"",
        headers: dict[str, str | None] | None = None,
    ) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            if value is not None:
                handler.send_header(name, value)
        if body:
            handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if body and handler.command != "HEAD":
            handler.wfile.write(body)

    def _reject(
        self,
        handler: _Handler,
        status: int,
        body: Any,
        errors: list[dict[str, Any]],
        headers: dict[str, str | None] | None = None,
        respond: bool = True,
    ) -> None:
        self._record(self.rejected, (status, body if self.record_bodies else None, errors))
        if respond:
            payload = json.dumps({"errors": errors}).encode("utf-8")
            self._respond(handler, status, payload, headers)

    def _fault_response(self, handler: _Handler, fault: _Fault, raw: bytes) -> None:
        status = fault.status
        assert status is not None
        headers: dict[str, str | None] = {}
        if status == 429:
            headers = {
                "X-RateLimit-Limit": str(RATE_LIMIT_LIMIT),
                "X-RateLimit-Remaining": "0",
                # The next whole epoch second: in the future, but a retry that honours it
                # waits at most a second, which keeps tests fast.
                "X-RateLimit-Reset": str(int(time.time()) + 1),
            }
        headers.update(fault.headers)
        try:
            message = HTTPStatus(status).phrase.lower()
        except ValueError:  # a status without a standard phrase, e.g. 599
            message = f"error {status}"
        errors = [_error(message, fault.field)]
        if not fault.cut:
            self._reject(handler, status, _parse_for_record(raw), errors, headers)
            return
        self._reject(handler, status, _parse_for_record(raw), errors, respond=False)
        payload = json.dumps({"errors": errors}).encode("utf-8")
        handler.send_response(status)
        for name, value in headers.items():
            if value is not None:
                handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload[: len(payload) // 2])
        handler.close_connection = True

    def _dispatch(self, handler: _Handler) -> None:
        with self._lock:
            self._at_once += 1
            self.most_at_once = max(self.most_at_once, self._at_once)
        try:
            self._answer(handler)
        finally:
            with self._lock:
                self._at_once -= 1

    def _answer(self, handler: _Handler) -> None:
        try:
            try:
                raw = _read_body(handler)
            except _RequestError as exc:
                # Unread body bytes would be taken for the next request: hang up after this.
                handler.close_connection = True
                self._reject(handler, exc.status, None, exc.errors, {"Connection": "close"})
                return
            except (ValueError, OSError):
                handler.close_connection = True
                self._reject(handler, 400, None, [_error("unreadable request body", None)])
                return

            fault = self._next_fault(raw)
            if fault is not None and fault.status is not None:
                self._fault_response(handler, fault, raw)
                return
            if fault is not None and not fault.processed:
                self._drop(handler, _parse_for_record(raw))
                return
            self._handle_mail_send(handler, raw, drop=fault is not None)
        except Exception:
            # A bug in the test server must not look like a SendGrid verdict: log it loudly
            # and answer 500 (which the client raises as InternalServerError).
            _log.exception("sendgrid test server failed on %s %s", handler.command, handler.path)
            handler.close_connection = True
            with contextlib.suppress(OSError):  # the client may be gone already
                self._reject(handler, 500, None, [_error("test server error", None)])

    def _next_fault(self, raw: bytes) -> _Fault | None:
        """The first fault queued that applies to this request (one `holding` a contact
        waits for a request to it, the others pass it in call order); with none queued,
        perhaps a random one."""
        with self._lock:
            if not self._faults:
                return self._random_fault()
            contacts = None
            for index, fault in enumerate(self._faults):
                if fault.holding is not None and contacts is None:
                    contacts = _contacts(_parse_for_record(raw))
                if fault.holding is None or fault.holding in contacts:
                    del self._faults[index]
                    return fault
            return None

    def _drop(self, handler: _Handler, body: Any) -> None:
        self._record(self.dropped, body if self.record_bodies else None)
        # Returning without writing anything; the server then shuts the socket down, so the
        # client reads EOF where it expects a status line.
        handler.close_connection = True

    def _check_request(self, handler: _Handler, raw: bytes) -> Any:
        """Route, authenticate and decode; return the parsed body or raise _RequestError."""
        if urlsplit(handler.path).path.rstrip("/") != MAIL_SEND_PATH:
            raise _RequestError(404, "not found")
        if handler.command != "POST":
            raise _RequestError(405, "method not allowed")

        auth = handler.headers.get("Authorization")
        if not auth:
            raise _RequestError(401, "authorization required")
        if not hmac.compare_digest(auth.strip().encode(), self._expected_auth):
            raise _RequestError(
                401, "The provided authorization grant is invalid, expired, or revoked"
            )

        encoding = (handler.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding == "gzip":  # the spec allows gzip-compressed bodies
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as exc:
                raise _RequestError(400, f"invalid gzip body: {exc}") from None
        elif encoding != "identity":
            raise _RequestError(400, f"Content-Encoding {encoding!r} is not supported.")

        content_type = handler.headers.get("Content-Type") or ""
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise _RequestError(400, "Content-Type should be application/json.")

        try:
            # JSON (RFC 8259) has no NaN or Infinity, which Python's reader would take
            return json.loads(raw.decode("utf-8"), parse_constant=_no_json_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise _RequestError(400, f"Bad Request: the body is not valid JSON ({exc})") from None

    def _handle_mail_send(self, handler: _Handler, raw: bytes, *, drop: bool) -> None:
        try:
            body = self._check_request(handler, raw)
        except _RequestError as exc:
            recorded = _parse_for_record(raw)
            self._reject(handler, exc.status, recorded, exc.errors, respond=not drop)
            if drop:
                self._drop(handler, recorded)
            return

        errors = validate_mail_send(body)
        if errors:
            self._reject(handler, 400, body, errors, respond=not drop)
            if drop:
                self._drop(handler, body)
            return

        # 16 random bytes are 22 url-safe base64 characters, the length of SendGrid's ids.
        message_id = secrets.token_urlsafe(16)
        with self._lock:
            # One lock for both lists keeps accepted[i] and message_ids[i] aligned.
            self.accepted.append(body if self.record_bodies else None)
            self.message_ids.append(message_id)
        if self.on_accept is not None:
            self.on_accept(message_id, body)
        if drop:
            self._drop(handler, body)
            return
        time.sleep(self.answer_after)
        self._respond(handler, 202, b"", {"X-Message-Id": message_id})


# --------------------------------------------------------------------------------------
# Standalone use
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.sendgrid_server",
        description="Serve a strict SendGrid-compatible POST /v3/mail/send until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default="test-api-key", help="expected Bearer token")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    # SIGTERM (e.g. from a benchmark harness) should shut down as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Nobody can read the recorded bodies of a standalone server, so don't keep them.
    server = SendGridTestServer(
        args.api_key, host=args.host, port=args.port, record_bodies=False, verbose=args.verbose
    )
    started = time.monotonic()
    with server:
        try:
            # Inside the try: a harness may send SIGTERM as soon as it has read the URL.
            print(f"api key: {args.api_key}; Ctrl-C to stop", file=sys.stderr, flush=True)
            print(server.url, flush=True)  # alone on the first line, for scripts to read
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            print(
                f"{len(server.accepted)} accepted, {len(server.rejected)} rejected, "
                f"{len(server.dropped)} dropped in {time.monotonic() - started:.1f} s",
                file=sys.stderr,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())


def messages_per_contact(server: SendGridTestServer) -> dict[tuple[str, str], int]:
    """How many messages the server accepted per (campaign, contact)."""
    counts: dict[tuple[str, str], int] = {}
    for body in server.accepted:
        for p in body["personalizations"]:
            key = (p["custom_args"]["campaign"], p["custom_args"]["contact_id"])
            counts[key] = counts.get(key, 0) + 1
    return counts


@contextlib.contextmanager
def sendgrid_for_nightjar(monkeypatch, api_key: str) -> Iterator[SendGridTestServer]:
    """A strict server taking `api_key`, and Nightjar's settings pointing at it."""
    with SendGridTestServer(api_key=api_key) as server:
        monkeypatch.setenv("SENDGRID_API_KEY", api_key)
        monkeypatch.setenv("SENDGRID_API_HOST", server.url)
        yield server
