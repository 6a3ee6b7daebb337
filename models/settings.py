"""Nightjar's settings, read from the environment (and a `.env` file) when asked for."""

from __future__ import annotations

import difflib
import math
import os
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from dotenv import find_dotenv, load_dotenv

from models.landing import EARLIEST_BUSINESS_DATE

# NIGHTJAR_DBT_PROJECT_DIR points Nightjar at another copy of the project (tests use it to
# prove that a campaign is only SQL and YAML). Read once, as Nightjar is imported.
DBT_PROJECT_DIR = Path(
    os.environ.get("NIGHTJAR_DBT_PROJECT_DIR")
    or Path(__file__).resolve().parents[1] / "dbt_project"
).resolve()

TRUE_WORDS = {"1", "true", "yes", "on"}
# Every environment variable Nightjar reads, the one list of them (README "Settings" and
# .env.example describe them; tests/test_one_source_of_truth.py holds them to it). These
# are read by load_settings (DAGSTER_HOME by `nightjar run`); tests/conftest.py empties them
# for every test.
SETTING_NAMES = (
    "NIGHTJAR_LANDING",
    "NIGHTJAR_WAREHOUSE",
    "NIGHTJAR_OUTBOX",
    "NIGHTJAR_BASE_CURRENCY",
    "NIGHTJAR_DEFAULT_TIMEZONE",
    "SENDGRID_API_KEY",
    "SENDGRID_API_HOST",
    "SENDGRID_SANDBOX",
    "SENDGRID_WEBHOOK_PUBLIC_KEY",
    "NIGHTJAR_WEBHOOK_HOST",
    "NIGHTJAR_WEBHOOK_PORT",
    "NIGHTJAR_SETTLE_GRACE_HOURS",
    "NIGHTJAR_UNSETTLED_POLICY",
    "NIGHTJAR_SETTLE_WAIT_SECONDS",
    "NIGHTJAR_SEND_LOCK_WAIT_SECONDS",
    "NIGHTJAR_RUN_LOCK_WAIT_SECONDS",
    "NIGHTJAR_MAX_DECISION_AGE_MINUTES",
    "NIGHTJAR_STATE",
    "NIGHTJAR_STATE_URL",
    "NIGHTJAR_DBT_VARS",
    "NIGHTJAR_QUARANTINE_MAX_SHARE",
    "NIGHTJAR_CRM_EXPORT",
    "NIGHTJAR_MAX_COHORT_CHANGE",
    "NIGHTJAR_MAX_MAILABLE_SHARE_DROP",
    "NIGHTJAR_MAX_TOTAL_SPEND_DROP",
    "NIGHTJAR_REPORTS",
    "NIGHTJAR_EXTRACTS_DUE_HOUR",
    "NIGHTJAR_FIRST_NIGHT",
    "NIGHTJAR_FIRST_DATE",
    "NIGHTJAR_ALERT_WEBHOOK_URL",
    "NIGHTJAR_DAGSTER_URL",
    "DAGSTER_HOME",
)
# ... and these where they are used: the dbt project's folder as Nightjar is imported
# (assets/shared/dbt_project.py), DuckDB's memory inside dbt (profiles.yml), and test tooling.
SETTING_NAMES_READ_ELSEWHERE = (
    "NIGHTJAR_DBT_PROJECT_DIR",
    "NIGHTJAR_DUCKDB_MEMORY_LIMIT",
    "NIGHTJAR_CHROMIUM",
    "NIGHTJAR_BENCH_CACHE",
)
KNOWN_SETTING_NAMES = SETTING_NAMES + SETTING_NAMES_READ_ELSEWHERE
# dbt vars Nightjar sets itself each run; NIGHTJAR_DBT_VARS may not override them.
VARS_NIGHTJAR_SETS = (
    "as_of_date",
    "campaigns",
    "send_after",
    "default_timezone",
    "incremental_since",
)
_VAR_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# The project's own vars, with what each must be: (kind, lowest, highest). A value out of
# range would not fail loudly in SQL: quiet hours of 1260 simply never apply.
KNOWN_DBT_VARS: dict[str, tuple[type, float | None, float | None]] = {
    "spend_window_days": (int, 1, None),
    "web_page_view_window_days": (int, 1, None),
    "cart_window_days": (int, 1, None),
    "loyalty_max_days_since_purchase": (int, 0, None),
    "loyalty_min_spend_730d": (float, 0, None),
    "reactivation_min_days_since_purchase": (int, 0, None),
    "birthday_offset_days": (int, -366, 366),
    "max_messages_per_day": (int, 0, None),
    "max_messages_per_7_days": (int, 0, None),
    "holdout_share": (float, 0, 1),
    "holdout_salt": (str, None, None),
    "send_hour": (int, 0, 23),
    "quiet_hours_start": (int, 0, 23),
    "quiet_hours_end": (int, 0, 23),
    "conversion_window_days": (int, 1, None),
    "results_window_days": (int, 1, None),
}
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
    # How long a second `nightjar run` of the warehouse waits for the first (pipelines/
    # run_lock.py). 0: a night takes minutes, and a second run of it started meanwhile is
    # nearly always a mistake; it stops at once, naming the first.
    run_lock_wait_seconds: float = 0.0
    # A send refuses decisions older than this: unsubscribes and send times have moved on.
    max_decision_age_minutes: float = 60.0
    # Business thresholds and the contact policy are dbt vars (dbt_project.yml); these
    # override them for this installation, e.g. {"holdout_share": 0.05}.
    dbt_vars: dict = field(default_factory=dict)
    # A file with more than this share of its rows in quarantine fails the night.
    quarantine_max_share: float = 0.005
    # What the CRM exports each night: `changes` (a day may bring none) or full `snapshot`s
    # (then an empty file is a failed export).
    crm_export: str = "changes"
    # The send checks (assets/sends/checks.py): the largest change tolerated against the last
    # night that passed before sending is blocked.
    max_cohort_change: float = 0.3
    max_mailable_share_drop: float = 0.2
    max_total_spend_drop: float = 0.2
    # Where the campaign results' charts are written (one folder per business date).
    reports: Path = field(default_factory=lambda: Path("data/reports").resolve())
    # Nightjar's own state (send ledger, cohort history, approvals, suppressions, erasures),
    # kept apart from the warehouse, which may be deleted and rebuilt from the landing.
    # None: state.duckdb beside the warehouse.
    state: Path | None = None
    # PostgreSQL, when set (a postgresql:// URL, a credential): the authoritative state; the
    # state file is then its replica (assets/shared/state_store.py).
    state_url: str | None = None

    @property
    def state_path(self) -> Path:
        return self.state or self.warehouse.with_name("state.duckdb")

    # A business date's extracts are due the next day at this local hour (freshness checks).
    extracts_due_hour: int = 6
    # Where a failed run is announced (Slack-compatible incoming webhook); None: nowhere.
    alert_webhook_url: str | None = None
    # The Dagster UI's address, for links in alerts.
    dagster_url: str = "http://127.0.0.1:3000"
    # What a first night (nothing ever sent or recorded) does: `refuse` to send until told,
    # record a `baseline` (message no one), or `send_backlog` to every current member.
    first_night: str = "refuse"
    # The first business date the nightly partitions have; None: the first landed folder's.
    first_date: date | None = None

    @property
    def uses_sendgrid(self) -> bool:
        return bool(self.sendgrid_api_key)


def _path(name: str, default: str) -> Path:
    # Absolute, because dbt runs in its own folder and must see the same files.
    return Path(os.environ.get(name) or default).expanduser().resolve()


def load_settings() -> Settings:
    # The .env of the directory nightjar runs in (or above it), never the package's own.
    load_dotenv(find_dotenv(usecwd=True), override=False)
    refuse_unknown_settings(os.environ)
    return Settings(
        landing=_path("NIGHTJAR_LANDING", "data/landing"),
        warehouse=_path("NIGHTJAR_WAREHOUSE", "data/warehouse.duckdb"),
        outbox=_path("NIGHTJAR_OUTBOX", "data/outbox"),
        sendgrid_api_key=os.environ.get("SENDGRID_API_KEY") or None,
        sendgrid_api_host=os.environ.get("SENDGRID_API_HOST") or "https://api.sendgrid.com",
        sendgrid_sandbox=(os.environ.get("SENDGRID_SANDBOX", "").strip().lower() in TRUE_WORDS),
        base_currency=(os.environ.get("NIGHTJAR_BASE_CURRENCY") or "USD").strip().upper(),
        default_timezone=_timezone("NIGHTJAR_DEFAULT_TIMEZONE", "UTC"),
        webhook_public_key=os.environ.get("SENDGRID_WEBHOOK_PUBLIC_KEY") or None,
        webhook_host=os.environ.get("NIGHTJAR_WEBHOOK_HOST") or "127.0.0.1",
        webhook_port=int(os.environ.get("NIGHTJAR_WEBHOOK_PORT") or 8026),
        settle_grace_hours=float(os.environ.get("NIGHTJAR_SETTLE_GRACE_HOURS") or 24),
        unsettled_policy=_choice("NIGHTJAR_UNSETTLED_POLICY", ("give_up", "resend")),
        settle_wait_seconds=float(os.environ.get("NIGHTJAR_SETTLE_WAIT_SECONDS") or 30),
        send_lock_wait_seconds=float(os.environ.get("NIGHTJAR_SEND_LOCK_WAIT_SECONDS") or 60),
        run_lock_wait_seconds=_number(
            "NIGHTJAR_RUN_LOCK_WAIT_SECONDS",
            0,
            lambda v: 0 <= v < math.inf,
            "a number of seconds, 0 or more",
        ),
        max_decision_age_minutes=_positive("NIGHTJAR_MAX_DECISION_AGE_MINUTES", 60),
        dbt_vars=parse_dbt_vars(os.environ.get("NIGHTJAR_DBT_VARS") or ""),
        quarantine_max_share=_share("NIGHTJAR_QUARANTINE_MAX_SHARE", 0.005),
        crm_export=_choice("NIGHTJAR_CRM_EXPORT", ("changes", "snapshot")),
        max_cohort_change=_share("NIGHTJAR_MAX_COHORT_CHANGE", 0.3),
        max_mailable_share_drop=_share("NIGHTJAR_MAX_MAILABLE_SHARE_DROP", 0.2),
        max_total_spend_drop=_share("NIGHTJAR_MAX_TOTAL_SPEND_DROP", 0.2),
        reports=_path("NIGHTJAR_REPORTS", "data/reports"),
        state=_path("NIGHTJAR_STATE", "") if os.environ.get("NIGHTJAR_STATE") else None,
        state_url=_postgres_url("NIGHTJAR_STATE_URL"),
        extracts_due_hour=_hour("NIGHTJAR_EXTRACTS_DUE_HOUR", 6),
        alert_webhook_url=_secret_url("NIGHTJAR_ALERT_WEBHOOK_URL"),
        dagster_url=(os.environ.get("NIGHTJAR_DAGSTER_URL") or "http://127.0.0.1:3000").rstrip("/"),
        first_night=_choice("NIGHTJAR_FIRST_NIGHT", ("refuse", "baseline", "send_backlog")),
        first_date=_first_date("NIGHTJAR_FIRST_DATE"),
    )


def refuse_unknown_settings(environ: Mapping[str, str]) -> None:
    """A NIGHTJAR_ name Nightjar does not read is a misspelling: one letter short of
    NIGHTJAR_QUARANTINE_MAX_SHARE, it would leave the default in force without a word."""
    for name in sorted(environ):
        # Set to nothing, a name asks for nothing (every setting reads "" as unset).
        if name.startswith("NIGHTJAR_") and name not in KNOWN_SETTING_NAMES and environ[name]:
            raise ValueError(
                f"{name} is not a Nightjar setting"
                + (did_you_mean(name, KNOWN_SETTING_NAMES) or " (see .env.example)")
            )


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """The suggestion for a misspelled name ("; did you mean X?"), or "" when none is near."""
    nearest = nearest_name(name, known)
    return f"; did you mean {nearest}?" if nearest else ""


def nearest_name(name: str, known: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, sorted(known), n=1)
    return matches[0] if matches else None


def _postgres_url(name: str) -> str | None:
    value = (os.environ.get(name) or "").strip()
    if value and not re.match(r"^postgres(ql)?://\S*$", value):
        # it may hold a password: the error does not quote it
        raise ValueError(f"{name}: must be a postgresql:// URL (value not shown)")
    return value or None


def _secret_url(name: str) -> str | None:
    value = (os.environ.get(name) or "").strip()
    if value and (not re.match(r"^https?://[^\s/]+", value) or re.search(r"\s", value)):
        # the value is a credential: the error does not quote it
        raise ValueError(f"{name}: must be an http:// or https:// URL (value not shown)")
    return value or None


def _hour(name: str, default: int) -> int:
    text = (os.environ.get(name) or "").strip()
    if not text:
        return default
    if not text.isdigit() or not 0 <= int(text) <= 23:
        raise ValueError(f"{name}={text!r}: must be a whole hour from 0 to 23")
    return int(text)


def _positive(name: str, default: float) -> float:
    return _number(name, default, lambda v: v > 0 and math.isfinite(v), "a number above 0")


def _share(name: str, default: float) -> float:
    return _number(name, default, lambda v: 0 <= v <= 1, "a share from 0 to 1 (0.05 = 5%)")


def _number(name: str, default: float, fits, rule: str) -> float:
    text = (os.environ.get(name) or "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        value = math.nan
    if not fits(value):
        raise ValueError(f"{name}={text!r}: must be {rule}")
    return value


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
        if key in VARS_NIGHTJAR_SETS:
            raise ValueError(f"{name}: {key} is set by Nightjar itself")
        if key in KNOWN_DBT_VARS:
            check_dbt_var(key, value, name)
            if KNOWN_DBT_VARS[key][0] is int:
                values[key] = int(value)  # 22.0 is 22: a whole hour, not "22.0:00"
            continue
        _require_project_var(key, name)
        plain = isinstance(value, bool) or _finite_number(value) or _plain_word(value)
        if not plain:
            raise ValueError(
                f"{name}: {key} must be a number, true/false or a plain word, not {value!r}"
            )
    return values


def _require_project_var(key: str, where: str) -> None:
    """A var the project does not declare changes nothing: dbt ignores it, so a misspelled
    threshold (loyalty_min_spend) would leave the default in force without a word."""
    declared = set(project_vars()) - set(VARS_NIGHTJAR_SETS)
    if key not in declared:
        raise ValueError(
            f"{where}: {key} is not a var of this project"
            + (did_you_mean(key, declared) or " (see dbt_project.yml)")
        )


def project_vars() -> dict[str, Any]:
    """The vars dbt_project.yml declares, with their defaults (an analyst may add one there
    for a new cohort: it is then a var NIGHTJAR_DBT_VARS may set)."""
    document = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text()) or {}
    return dict(document.get("vars") or {})


def effective_dbt_vars(settings: Settings) -> dict[str, Any]:
    """The dbt vars a night applies: the project's defaults, this installation's overrides,
    and the settings Nightjar passes as vars. The one resolution of them: the nightly build
    passes these to dbt, and every description states them."""
    return {
        **project_vars(),
        **settings.dbt_vars,
        "default_timezone": settings.default_timezone,
    }


def check_dbt_var(key: str, value, where: str) -> None:
    """A value for one of the project's own vars, of the right kind and in range."""
    kind, low, high = KNOWN_DBT_VARS[key]
    if kind is str:
        if not _plain_word(value):
            raise ValueError(f"{where}: {key} must be a plain word, not {value!r}")
        return
    rule = number_rule_broken(value, kind, low, high)
    if rule:
        raise ValueError(f"{where}: {key} {rule}, not {value!r}")


def number_rule_broken(value, kind: type, low, high) -> str | None:
    """The rule `value` breaks ("must be a whole number from 0 to 23"), or None: a finite
    number (whole when kind is int) within [low, high]. Such values reach SQL."""
    ok = _finite_number(value) and (kind is float or value == int(value))
    if ok and (low is None or value >= low) and (high is None or value <= high):
        return None
    noun = "a whole number" if kind is int else "a number"
    bounds = "" if low is None else f" from {low}" + ("" if high is None else f" to {high}")
    return f"must be {noun}{bounds}"


def _finite_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _plain_word(value) -> bool:
    return isinstance(value, str) and len(value) <= 64 and bool(_SAFE_TEXT.match(value))


def _timezone(name: str, default: str) -> str:
    # It reaches SQL and every send time: an IANA name or nothing.
    value = (os.environ.get(name) or default).strip()
    if value not in zoneinfo.available_timezones():
        raise ValueError(f"{name}={value!r}: not an IANA time zone name (e.g. Europe/Paris)")
    return value


def _first_date(name: str) -> date | None:
    text = (os.environ.get(name) or "").strip()
    if not text:
        return None
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: must be a date YYYY-MM-DD") from None
    if value < EARLIEST_BUSINESS_DATE:
        raise ValueError(f"{name}={text!r}: must be {EARLIEST_BUSINESS_DATE} or later")
    return value


def _choice(name: str, choices: tuple[str, ...]) -> str:
    value = (os.environ.get(name) or choices[0]).strip().lower()
    if value not in choices:
        raise ValueError(f"{name}={value!r}: must be one of {', '.join(choices)}")
    return value
