"""What each kind of setting accepts (models/settings.py declares the settings with these),
and how a refusal of one is said: in one line, naming the variable."""

from __future__ import annotations

import re
import zoneinfo
from datetime import date
from functools import cache
from pathlib import Path
from typing import Annotated, Any, get_args

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings

TRUE_WORDS = {"1", "true", "yes", "on"}


def setting(
    env: str,
    default: Any,
    meaning: str,
    *,
    must_be: str | None = None,
    when_unset: str | None = None,
    read_by: str | None = None,
    **bounds: Any,
) -> Any:
    """One setting: its variable, default and meaning (README's table row), the rule a bad
    value is told it breaks, what applies when it is unset (when not the default itself),
    and where it is used when load_settings only reads it along."""
    extra = {"must_be": must_be, "when_unset": when_unset, "read_by": read_by}
    return Field(
        default,
        validation_alias=env,
        description=meaning,
        json_schema_extra={key: value for key, value in extra.items() if value},
        **bounds,
    )


class Quoted(ValueError):
    """A refusal that quotes the value after the variable's name. Any other names only the
    variable: its value may be a credential, or a whole YAML mapping."""


def _absolute(path: Path | None) -> Path | None:
    # Absolute, because dbt runs in its own folder and must see the same files.
    return path.expanduser().resolve() if path is not None else None


def _word(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _true_word(value: Any) -> Any:
    # Any other word is false, as it always was.
    return _word(value) in TRUE_WORDS if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


@cache
def _iana_names() -> frozenset[str]:
    # Read from the tz database on disk: 10 ms, and settings are loaded ~30 times a night.
    return frozenset(zoneinfo.available_timezones())


def _time_zone(value: Any) -> Any:
    # It reaches SQL and every send time: an IANA name or nothing.
    text = value.strip() if isinstance(value, str) else value
    if text not in _iana_names():
        raise Quoted("not an IANA time zone name (e.g. Europe/Paris)")
    return text


def _digits(value: Any) -> Any:
    # "6.0" or "+6" would pass as a number; an hour is written in digits.
    if isinstance(value, str) and not value.strip().isdigit():
        raise Quoted("must be a whole hour from 0 to 23")
    return value


def _iso_date(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise Quoted("must be a date YYYY-MM-DD") from None


def _postgres_url(value: Any) -> Any:
    text = value.strip() if isinstance(value, str) else value
    if text and not re.match(r"^postgres(ql)?://\S*$", text):
        raise ValueError("must be a postgresql:// URL (value not shown)")
    return text or None


def _web_url(value: Any) -> Any:
    text = value.strip() if isinstance(value, str) else value
    if text and (not re.match(r"^https?://[^\s/]+", text) or re.search(r"\s", text)):
        raise ValueError("must be an http:// or https:// URL (value not shown)")
    return text or None


def _topic_groups(value: Any) -> Any:
    # "lifecycle=101, promotions=102": a topic (a plain word) and its unsubscribe group id.
    if not isinstance(value, str):
        return value
    groups: dict[str, int] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        topic, _, group = (piece.strip() for piece in entry.partition("="))
        plain = re.fullmatch(r"[a-z][a-z0-9_]*", topic) and re.fullmatch(r"[1-9][0-9]{0,9}", group)
        if not plain:
            raise Quoted(
                f"{entry!r} is not topic=group_id (a plain word, then SendGrid's unsubscribe "
                "group id), as in lifecycle=101,promotions=102"
            )
        if topic in groups or group in map(str, groups.values()):
            raise Quoted(f"{entry!r}: each topic and each group id may appear once")
        groups[topic] = int(group)
    return groups


def _secret(value: Any) -> Any:
    text = value.strip() if isinstance(value, str) else value
    if text and len(text) < 32:
        # An HMAC key a guess could find forges unsubscribes for anyone.
        raise ValueError(
            "must be at least 32 characters (value not shown), as `openssl rand -hex 32` makes"
        )
    return text or None


def _https_url(value: Any) -> Any:
    text = _web_url(value)
    return text.rstrip("/") if text else text


AbsolutePath = Annotated[Path, AfterValidator(_absolute)]
# A choice (a Literal) is read in any case, around spaces: " Resend" is resend.
Choice = BeforeValidator(_word)
Flag = Annotated[bool, BeforeValidator(_true_word)]
Upper = Annotated[str, BeforeValidator(_upper)]
TimeZone = Annotated[str, BeforeValidator(_time_zone)]
WholeHour = Annotated[int, BeforeValidator(_digits)]
IsoDate = Annotated[date | None, BeforeValidator(_iso_date)]
# Credentials: what is wrong with one is said without quoting it.
PostgresUrl = Annotated[str | None, BeforeValidator(_postgres_url)]
WebUrl = Annotated[str | None, BeforeValidator(_web_url)]
NoTrailingSlash = Annotated[str, BeforeValidator(lambda v: v.rstrip("/"))]
TopicGroups = Annotated[dict[str, int], BeforeValidator(_topic_groups)]
Secret = Annotated[str | None, BeforeValidator(_secret)]
BaseUrl = Annotated[str | None, BeforeValidator(_https_url)]


def one_line(error: ValidationError, model: type[BaseSettings]) -> str:
    """pydantic lists every failure over several lines, quoting every value; Nightjar names
    the first bad variable in one line, quoting no credential (the CLI prints it as is)."""
    first = error.errors()[0]
    env = str(first["loc"][0])
    field = next(
        (f for name, f in model.model_fields.items() if env in (name, f.validation_alias)),
        None,
    )
    env = str(field.validation_alias) if field else env
    value = first["input"]
    said = f"{env}={(value.strip() if isinstance(value, str) else str(value))!r}"
    cause = first.get("ctx", {}).get("error")
    if cause is not None:  # a check above said what is wrong
        return f"{said}: {cause}" if isinstance(cause, Quoted) else f"{env}: {cause}"
    if first["type"] == "literal_error" and field:
        return f"{said}: must be one of {', '.join(get_args(field.annotation))}"
    extra = field.json_schema_extra if field and isinstance(field.json_schema_extra, dict) else {}
    rule = extra.get("must_be")
    return f"{said}: must be {rule}" if rule else f"{said}: {first['msg']}"
