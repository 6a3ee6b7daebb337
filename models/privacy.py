"""Secrets and addresses never reach a log line, an error or a metadata value.

Secrets come only from the environment (settings.py), so they are known by name: every
variable whose name says it holds one. `redact` replaces their values and masks every email
address; `install` applies it to every log record any logger makes (Dagster's `context.log`
included), whatever code made it: a library that logs a request or an error is covered too.
"""

from __future__ import annotations

import logging
import os
import re

# SENDGRID_API_KEY, a future *_TOKEN, *_PASSWORD, *_SECRET, or an alert webhook URL (a Slack
# webhook URL is a credential). SENDGRID_WEBHOOK_PUBLIC_KEY is public, but harmless to hide.
# (after an underscore: the shell's PWD is a folder, not a password)
_SECRET_NAME = re.compile(r"_(KEY|TOKEN|SECRET|PASSWORD|PASS|PWD|DSN|CREDENTIALS|WEBHOOK_URL)$")
# a password inside any URL (https://user:password@host)
_URL_PASSWORD = re.compile(r"(\w+://[^/\s:@]+:)[^/\s@]+@")
_SHORTEST_SECRET = 8  # shorter values (a flag, a port) would redact ordinary words
REDACTED = "[redacted]"

# Each match starts where a run of its characters starts (the look-behind): tried from every
# position inside a long run without an "@", the pattern backtracked over the rest of it each
# time, and a 10 MB value took hours. The matches are the same.
_EMAIL_IN_TEXT = re.compile(
    r"(?<![^\s@\"'`,;:<>()\[\]])[^\s@\"'`,;:<>()\[\]]+@[^\s@\"'`,;:<>()\[\]]+"
)


# An address's local part before "@" or its URL encoding "%40" (?email=jane%40example.com),
# its first character kept as mask_email keeps it. A polars pattern too (ingest_files).
LOCAL_PART = r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@|%40)"
_LOCAL_PART = re.compile(r"(?<![A-Za-z0-9._%+-])" + LOCAL_PART)  # polars has no look-behind


def mask_emails_in(text: str) -> str:
    """Any address inside free text (a provider's error, a parser's message, a URL),
    masked."""
    if "@" not in text and "%40" not in text:
        return text  # every pattern needs one: most log lines hold neither (dbt's SQL ...)
    text = _EMAIL_IN_TEXT.sub(lambda match: mask_email(match.group(0)), text)
    return _LOCAL_PART.sub(r"\1***\2", text)


def mask_email(address: str) -> str:
    """`jane@example.com` -> `j***@example.com`: enough to recognise, not to harvest."""
    local, at, domain = address.partition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def secret_values() -> tuple[str, ...]:
    """The environment's secrets, longest first (so one that contains another goes whole).

    Every log record asks (5,000 a night): they are worked out again only when the
    environment differs from the one they were worked out for, which the comparison of its
    dict (os.environ's own, undecoded) tells in microseconds where decoding and matching its
    every variable took a hundred."""
    global _secrets_of
    environment = getattr(os.environ, "_data", None)
    if environment is None:  # pragma: no cover - CPython's os.environ keeps one
        return _secrets_in(os.environ.items())
    seen, values = _secrets_of
    if environment != seen:
        # the secrets of one copy, kept with that copy: had they been read from os.environ
        # itself, a change landing meanwhile (another thread) would be in the copy kept and
        # not in the secrets, and no later comparison would tell
        seen = dict(environment)
        name, value = os.environ.decodekey, os.environ.decodevalue
        values = _secrets_in((name(k), value(v)) for k, v in seen.items())
        _secrets_of = (seen, values)  # one assignment: a reader gets both or neither
    return values


def _secrets_in(variables) -> tuple[str, ...]:
    values = {
        value.strip()
        for name, value in variables
        if _SECRET_NAME.search(name.upper()) and len(value.strip()) >= _SHORTEST_SECRET
    }
    return tuple(sorted(values, key=len, reverse=True))


_secrets_of: tuple[dict, tuple[str, ...]] = ({}, ())


def redact(text: str) -> str:
    for secret in secret_values():
        text = text.replace(secret, REDACTED)
    if "@" in text:  # a password in a URL comes before one
        text = _URL_PASSWORD.sub(rf"\1{REDACTED}@", text)
    return mask_emails_in(text)


_base_factory = logging.getLogRecordFactory()


def _redacting_factory(*args, **kwargs) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # a malformed %-format is the logging module's to report
        return record
    redacted = redact(message)
    if redacted != message:
        record.msg, record.args = redacted, ()
    if record.exc_info:
        # a handler prints exc_text as it finds it: the traceback's values, redacted
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    return record


def install() -> None:
    """Redact every log record from now on, in this process (idempotent)."""
    if logging.getLogRecordFactory() is not _redacting_factory:
        logging.setLogRecordFactory(_redacting_factory)
