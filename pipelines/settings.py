"""Nightjar's settings, read from the environment (and a `.env` file) when asked for."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from dotenv import find_dotenv, load_dotenv

TRUE_WORDS = {"1", "true", "yes", "on"}
# dbt vars Nightjar sets itself each run; NIGHTJAR_DBT_VARS may not override them.
NIGHTJAR_OWNED_VARS = ("as_of_date", "campaigns", "send_after", "default_timezone")
_VAR_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SAFE_TEXT = re.compile(r"^[A-Za-z0-9_.:+/ -]*$")


@dataclass(frozen=True)
class Settings:
    landing: Path
    warehouse: Path
    outbox: Path
    sendgrid_api_key: str | None
    sendgrid_api_host: str
    sendgrid_sandbox: bool
    base_currency: str
    default_timezone: str
    webhook_public_key: str | None = None
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8026
    # Exactly once (README "Sending"): how long a message of unknown fate waits for SendGrid's
    # events, what then happens to it, how long a run waits for its own, and for another run.
    settle_grace_hours: float = 24.0
    unsettled_policy: str = "give_up"
    settle_wait_seconds: float = 30.0
    send_lock_wait_seconds: float = 60.0
    # Business thresholds and the contact policy are dbt vars (dbt_project.yml); these
    # override them for this installation, e.g. {"holdout_share": 0.05}.
    dbt_vars: dict = field(default_factory=dict)

    @property
    def uses_sendgrid(self) -> bool:
        return bool(self.sendgrid_api_key)


def _path(name: str, default: str) -> Path:
    # Absolute, because dbt runs in its own folder and must see the same files.
    return Path(os.environ.get(name) or default).expanduser().resolve()


def load_settings() -> Settings:
    # The .env of the directory nightjar runs in (or above it), never the package's own.
    load_dotenv(find_dotenv(usecwd=True), override=False)
    return Settings(
        landing=_path("NIGHTJAR_LANDING", "data/landing"),
        warehouse=_path("NIGHTJAR_WAREHOUSE", "data/warehouse.duckdb"),
        outbox=_path("NIGHTJAR_OUTBOX", "data/outbox"),
        sendgrid_api_key=os.environ.get("SENDGRID_API_KEY") or None,
        sendgrid_api_host=os.environ.get("SENDGRID_API_HOST") or "https://api.sendgrid.com",
        sendgrid_sandbox=(os.environ.get("SENDGRID_SANDBOX", "").strip().lower() in TRUE_WORDS),
        base_currency=(os.environ.get("NIGHTJAR_BASE_CURRENCY") or "USD").strip().upper(),
        default_timezone=os.environ.get("NIGHTJAR_DEFAULT_TIMEZONE") or "UTC",
        webhook_public_key=os.environ.get("SENDGRID_WEBHOOK_PUBLIC_KEY") or None,
        webhook_host=os.environ.get("NIGHTJAR_WEBHOOK_HOST") or "127.0.0.1",
        webhook_port=int(os.environ.get("NIGHTJAR_WEBHOOK_PORT") or 8026),
        settle_grace_hours=float(os.environ.get("NIGHTJAR_SETTLE_GRACE_HOURS") or 24),
        unsettled_policy=_choice("NIGHTJAR_UNSETTLED_POLICY", ("give_up", "resend")),
        settle_wait_seconds=float(os.environ.get("NIGHTJAR_SETTLE_WAIT_SECONDS") or 30),
        send_lock_wait_seconds=float(os.environ.get("NIGHTJAR_SEND_LOCK_WAIT_SECONDS") or 60),
        dbt_vars=parse_dbt_vars(os.environ.get("NIGHTJAR_DBT_VARS") or ""),
    )


def parse_dbt_vars(text: str) -> dict:
    """NIGHTJAR_DBT_VARS: a YAML (or JSON) mapping of dbt var names to plain values. The
    values end up in SQL, so only numbers, booleans and short plain words are accepted."""
    name = "NIGHTJAR_DBT_VARS"
    if not text.strip():
        return {}
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"{name}: not a YAML mapping ({error.problem})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{name}: must be a mapping such as {{holdout_share: 0.05}}")
    for key, value in values.items():
        if not isinstance(key, str) or not _VAR_NAME.match(key):
            raise ValueError(f"{name}: {key!r} is not a dbt var name")
        if key in NIGHTJAR_OWNED_VARS:
            raise ValueError(f"{name}: {key} is set by Nightjar itself")
        plain = isinstance(value, int | float | bool) or (
            isinstance(value, str) and len(value) <= 64 and _SAFE_TEXT.match(value)
        )
        if not plain:
            raise ValueError(
                f"{name}: {key} must be a number, true/false or a plain word, not {value!r}"
            )
    return values


def _choice(name: str, choices: tuple[str, ...]) -> str:
    value = (os.environ.get(name) or choices[0]).strip().lower()
    if value not in choices:
        raise ValueError(f"{name}={value!r}: must be one of {', '.join(choices)}")
    return value
