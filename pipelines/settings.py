"""Nightjar's settings, read from the environment (and a `.env` file) when asked for."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dotenv import find_dotenv, load_dotenv

TRUE_WORDS = {"1", "true", "yes", "on"}


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
    )


def _choice(name: str, choices: tuple[str, ...]) -> str:
    value = (os.environ.get(name) or choices[0]).strip().lower()
    if value not in choices:
        raise ValueError(f"{name}={value!r}: must be one of {', '.join(choices)}")
    return value
