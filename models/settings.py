"""Nightjar's settings: one class names every environment variable, with its default, its
bounds and what it means (README "Settings" and .env.example are held to it by
tests/unit/test_settings_documented.py); load_settings reads them, and a `.env` file, when asked."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from dotenv import find_dotenv, load_dotenv
from pydantic import ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.dbt_vars import did_you_mean, parse_dbt_vars
from models.landing import EARLIEST_BUSINESS_DATE
from models.setting_kinds import (
    AbsolutePath,
    BaseUrl,
    Choice,
    Flag,
    IsoDate,
    NoTrailingSlash,
    PostgresUrl,
    Secret,
    TimeZone,
    TopicGroups,
    Upper,
    WebUrl,
    WholeHour,
    one_line,
    setting,
)

# NIGHTJAR_DBT_PROJECT_DIR points Nightjar at another copy of the project (tests use it to
# prove that a campaign is only SQL and YAML). Read once, as Nightjar is imported.
DBT_PROJECT_DIR = Path(
    os.environ.get("NIGHTJAR_DBT_PROJECT_DIR")
    or Path(__file__).resolve().parents[1] / "dbt_project"
).resolve()
SHARE = "a share from 0 to 1 (0.05 = 5%)"


class Settings(BaseSettings):
    """Every environment variable Nightjar reads: the one list of them (SETTING_NAMES)."""

    model_config = SettingsConfigDict(
        case_sensitive=True,
        env_ignore_empty=True,  # every setting reads "" as unset
        enable_decoding=False,  # values are parsed below, never as JSON
        validate_default=True,  # defaults too: paths resolve where nightjar runs
        validate_by_name=True,
        frozen=True,
    )

    landing: AbsolutePath = setting(
        "NIGHTJAR_LANDING", Path("data/landing"), "where the dated extract folders land"
    )
    warehouse: AbsolutePath = setting(
        "NIGHTJAR_WAREHOUSE", Path("data/warehouse.duckdb"), "the DuckDB file"
    )
    outbox: AbsolutePath = setting(
        "NIGHTJAR_OUTBOX", Path("data/outbox"), "where messages go without a SendGrid key"
    )
    base_currency: Upper = setting(
        "NIGHTJAR_BASE_CURRENCY", "USD", "orders in another currency are rejected"
    )
    default_timezone: TimeZone = setting(
        "NIGHTJAR_DEFAULT_TIMEZONE", "UTC", "time zone of contacts without one"
    )
    sendgrid_api_key: str | None = setting(
        "SENDGRID_API_KEY", None, "set it to send through SendGrid"
    )
    sendgrid_api_host: str = setting(
        "SENDGRID_API_HOST", "https://api.sendgrid.com", "another SendGrid-compatible endpoint"
    )
    sendgrid_sandbox: Flag = setting(
        "SENDGRID_SANDBOX",
        False,
        "`true` (or `1`, `yes`, `on`): SendGrid sandbox mode, nothing delivered",
    )
    sendgrid_requests_at_once: int = setting(
        "NIGHTJAR_SENDGRID_REQUESTS_AT_ONCE",
        16,
        "mail-send requests out at once (each up to 1,000 messages): one at a time, a send "
        "waits for each answer, a tenth of a second or more from SendGrid",
        must_be="a whole number from 1 to 32",
        ge=1,
        le=32,
    )
    # Deliverability (README "Going live", docs/contract.md §17): what a recipient unsubscribes
    # from, and how one click does it.
    sendgrid_groups: TopicGroups = setting(
        "NIGHTJAR_SENDGRID_GROUPS",
        {},
        "each topic's SendGrid unsubscribe group, `topic=group_id` comma-separated (as in "
        "`lifecycle=101,promotions=102,birthday=103`); with `SENDGRID_API_KEY` set, every "
        "topic a program sends on needs one",
    )
    one_click: Annotated[Literal["nightjar", "sendgrid"], Choice] = setting(
        "NIGHTJAR_ONE_CLICK",
        "nightjar",
        "who serves one-click unsubscribe (RFC 8058): `nightjar` (the `List-Unsubscribe` "
        "headers point at `nightjar webhook`'s `/unsubscribe/<token>`) or `sendgrid` (its "
        "subscription tracking adds them)",
    )
    unsubscribe_url: BaseUrl = setting(
        "NIGHTJAR_UNSUBSCRIBE_URL",
        None,
        "the public https address of `nightjar webhook`, which the `List-Unsubscribe` link "
        "names (`<url>/unsubscribe/<token>`); with SendGrid it must be https",
        when_unset="the webhook's own `http://NIGHTJAR_WEBHOOK_HOST:NIGHTJAR_WEBHOOK_PORT`",
    )
    unsubscribe_secret: Secret = setting(
        "NIGHTJAR_UNSUBSCRIBE_SECRET",
        None,
        "the key (32 characters or more, a credential) signing each message's unsubscribe "
        "token; needed to send with `NIGHTJAR_ONE_CLICK=nightjar`, and by `nightjar webhook`",
    )
    unsubscribe_mailto: str | None = setting(
        "NIGHTJAR_UNSUBSCRIBE_MAILTO",
        None,
        "an address the `List-Unsubscribe` header also offers (`mailto:`), for mail clients "
        "that only write; its mailbox is yours to act on",
    )
    webhook_public_key: str | None = setting(
        "SENDGRID_WEBHOOK_PUBLIC_KEY",
        None,
        "the Event Webhook verification key; `nightjar webhook` needs it",
    )
    webhook_host: str = setting(
        "NIGHTJAR_WEBHOOK_HOST", "127.0.0.1", "the address `nightjar webhook` listens on"
    )
    webhook_port: int = setting(
        "NIGHTJAR_WEBHOOK_PORT",
        8026,
        "the port `nightjar webhook` listens on",
        must_be="a port number from 0 to 65535",
        ge=0,
        le=65535,
    )
    # Exactly once (README "Sending"): how long a message of unknown fate waits for SendGrid's
    # events, what then happens to it, how long a run waits for its own, and for another run.
    settle_wait_seconds: float = setting(
        "NIGHTJAR_SETTLE_WAIT_SECONDS",
        30.0,
        "how long a run waits for SendGrid's events of an unanswered batch",
        must_be="a number",
    )
    settle_grace_hours: float = setting(
        "NIGHTJAR_SETTLE_GRACE_HOURS",
        24.0,
        "how long an unanswered message may wait for its events",
        must_be="a number",
    )
    unsettled_policy: Annotated[Literal["give_up", "resend"], Choice] = setting(
        "NIGHTJAR_UNSETTLED_POLICY",
        "give_up",
        "after the grace period: `give_up` (never sent) or `resend`",
    )
    send_lock_wait_seconds: float = setting(
        "NIGHTJAR_SEND_LOCK_WAIT_SECONDS",
        60.0,
        "how long a second sender waits for the first",
        must_be="a number",
    )
    run_lock_wait_seconds: float = setting(
        "NIGHTJAR_RUN_LOCK_WAIT_SECONDS",
        0.0,
        "how long a second `nightjar run` of the same warehouse waits for the first before it "
        "stops (a night takes minutes; a second one started meanwhile is nearly always a "
        "mistake)",
        must_be="a number of seconds, 0 or more",
        ge=0,
        allow_inf_nan=False,
    )
    # Unsubscribes and send times move on while decisions wait.
    max_decision_age_minutes: float = setting(
        "NIGHTJAR_MAX_DECISION_AGE_MINUTES",
        60.0,
        "a send refuses decisions older than this (run the date again)",
        must_be="a number above 0",
        gt=0,
        allow_inf_nan=False,
    )
    dagster_home: str | None = setting(
        "DAGSTER_HOME",
        None,
        "where runs are recorded for the UI (`make dev` opens the same); `nightjar run` writes "
        "the project's `dagster.yaml` (telemetry off, the warehouse pool limited to 1, "
        "Dagster's SQLite files written through connections kept open: "
        "`pipelines/dagster_storage.py`) into one that has none, never replacing one. "
        "Set to nothing: runs kept in memory only, with the same settings",
        when_unset="the project's `.dagster`",
        read_by="pipelines/cli.py (set to nothing is not unset there)",
    )
    dbt_project_dir: AbsolutePath | None = setting(
        "NIGHTJAR_DBT_PROJECT_DIR",
        None,
        "another copy of the dbt project (tests use it)",
        when_unset="`dbt_project`",
        read_by="DBT_PROJECT_DIR above, as Nightjar is imported",
    )
    quarantine_max_share: float = setting(
        "NIGHTJAR_QUARANTINE_MAX_SHARE",
        0.005,
        "share of a file's rows that may be quarantined before the night fails (one row "
        "always may, unless 0)",
        must_be=SHARE,
        ge=0,
        le=1,
        allow_inf_nan=False,
    )
    duckdb_memory_limit: str = setting(
        "NIGHTJAR_DUCKDB_MEMORY_LIMIT",
        "1GB",
        "memory DuckDB may use inside dbt before it spills to disk",
        read_by="assets/shared/warehouse.py and dbt_project/profiles.yml, which check it",
    )
    crm_export: Annotated[Literal["changes", "snapshot"], Choice] = setting(
        "NIGHTJAR_CRM_EXPORT",
        "changes",
        "`changes` (a night may bring none), or `snapshot`: the CRM exports everyone each "
        "night, so an empty file is a failed export",
    )
    # The send checks (assets/sends/checks.py): the largest change tolerated against the last
    # night that passed before sending is blocked.
    max_cohort_change: float = setting(
        "NIGHTJAR_MAX_COHORT_CHANGE",
        0.3,
        "a cohort moving more than this against the last good night blocks sending",
        must_be=SHARE,
        ge=0,
        le=1,
        allow_inf_nan=False,
    )
    max_mailable_share_drop: float = setting(
        "NIGHTJAR_MAX_MAILABLE_SHARE_DROP",
        0.2,
        "the share of mailable contacts dropping more than this blocks sending",
        must_be=SHARE,
        ge=0,
        le=1,
        allow_inf_nan=False,
    )
    max_total_spend_drop: float = setting(
        "NIGHTJAR_MAX_TOTAL_SPEND_DROP",
        0.2,
        "the total spend dropping more than this blocks sending",
        must_be=SHARE,
        ge=0,
        le=1,
        allow_inf_nan=False,
    )
    # Reputation (assets/sends/reputation.py): the rates mailbox providers judge a sender by,
    # over the var reputation_window_days (7), per campaign and over all mail.
    max_spam_rate: float = setting(
        "NIGHTJAR_MAX_SPAM_RATE",
        0.001,
        "spam reports per delivered message above this (Google's 0.1%; Gmail and Yahoo "
        "enforce 0.3%) block sending (`spam_rate`)",
        must_be=SHARE,
        ge=0,
        le=1,
        allow_inf_nan=False,
    )
    max_bounce_rate: float = setting(
        "NIGHTJAR_MAX_BOUNCE_RATE",
        0.02,
        "bounces (blocks included) per message tried above this block sending (`bounce_rate`)",
        must_be=SHARE,
        ge=0,
        le=1,
        allow_inf_nan=False,
    )
    reputation_min_messages: int = setting(
        "NIGHTJAR_REPUTATION_MIN_MESSAGES",
        1000,
        "the rates of fewer messages than this in the window are not judged (one report in "
        "a hundred messages is noise, not a reputation)",
        must_be="a whole number, 1 or more",
        ge=1,
    )
    reports: AbsolutePath = setting(
        "NIGHTJAR_REPORTS",
        Path("data/reports"),
        "a folder per date: the campaign results' charts, and each run's log (`run-<run id>.log`)",
    )
    extracts_due_hour: WholeHour = setting(
        "NIGHTJAR_EXTRACTS_DUE_HOUR",
        6,
        "a date's extracts are due the next day at this local hour (`landed_on_time` checks)",
        must_be="a whole hour from 0 to 23",
        ge=0,
        le=23,
    )
    alert_webhook_url: WebUrl = setting(
        "NIGHTJAR_ALERT_WEBHOOK_URL",
        None,
        "a Slack-compatible incoming webhook for failed runs; a credential, never logged",
    )
    dagster_url: NoTrailingSlash = setting(
        "NIGHTJAR_DAGSTER_URL",
        "http://127.0.0.1:3000",
        "the Dagster UI's address, for the link in alerts",
    )
    dbt_vars: dict[str, Any] = setting(
        "NIGHTJAR_DBT_VARS",
        {},
        "dbt vars for this installation, a YAML mapping of vars declared in "
        "`dbt_project/dbt_project.yml` (another name is refused with the nearest: `did you "
        "mean loyalty_min_spend_730d?`), never those Nightjar sets (`as_of_date`, `campaigns`, "
        "`send_after`, `default_timezone`, `incremental_since`); the project's own vars are "
        "checked for kind and range (hours 0 to 23, shares 0 to 1, …), an analyst's added vars "
        "must be plain values",
    )
    # Kept apart from the warehouse, which may be deleted and rebuilt from the landing.
    state: AbsolutePath | None = setting(
        "NIGHTJAR_STATE",
        None,
        "Nightjar's own state (send ledger, cohort history, approvals, suppressions, "
        "erasures); keep it (`nightjar state export`), the warehouse may be rebuilt",
        when_unset="`state.duckdb` beside the warehouse",
    )
    state_url: PostgresUrl = setting(
        "NIGHTJAR_STATE_URL",
        None,
        "a `postgresql://` URL (a credential, never logged): the state lives in that "
        'PostgreSQL database, `NIGHTJAR_STATE` is then its replica (see "The state on '
        'PostgreSQL")',
    )
    first_date: IsoDate = setting(
        "NIGHTJAR_FIRST_DATE",
        None,
        f"the first business date the nightly partitions (and the UI) have, from "
        f"{EARLIEST_BUSINESS_DATE} (a history of any era loads and replays); a date before it "
        "is refused in one line",
        must_be=f"{EARLIEST_BUSINESS_DATE} or later",
        when_unset="the first landed folder's date",
        ge=EARLIEST_BUSINESS_DATE,
    )
    first_night: Annotated[Literal["refuse", "baseline", "send_backlog"], Choice] = setting(
        "NIGHTJAR_FIRST_NIGHT",
        "refuse",
        "a first night (nothing ever sent): `refuse` to send, record a `baseline` (message no "
        "one), or `send_backlog`; `nightjar run --baseline` / `--send-backlog` win over it",
    )

    # The engine the dbt project builds on (docs/contract.md §18): DuckDB in the warehouse
    # file, or Spark, which reads the raw rows as parquet and whose published tables come back
    # to the warehouse file, where the sends read them beside the state.
    engine: Annotated[Literal["duckdb", "spark"], Choice] = setting(
        "NIGHTJAR_ENGINE",
        "duckdb",
        "where the dbt project builds: `duckdb` (the warehouse file) or `spark` (needs the "
        '`spark` extra and Java; see "The models on Spark")',
    )
    spark_dir: AbsolutePath | None = setting(
        "NIGHTJAR_SPARK_DIR",
        None,
        "with `NIGHTJAR_ENGINE=spark`, Spark's tables: the raw rows as parquet, the state the "
        "build reads, dbt's tables; rebuilt from the warehouse file if deleted",
        when_unset="`spark` beside the warehouse",
    )
    spark_master: str = setting(
        "NIGHTJAR_SPARK_MASTER",
        "local[2]",
        "with `NIGHTJAR_ENGINE=spark`, the Spark master the build's session connects to",
    )

    @property
    def spark_path(self) -> Path:
        return self.spark_dir or self.warehouse.with_name("spark")

    @property
    def state_path(self) -> Path:
        return self.state or self.warehouse.with_name("state.duckdb")

    @property
    def uses_sendgrid(self) -> bool:
        return bool(self.sendgrid_api_key)

    @property
    def topic_of_group(self) -> dict[int, str]:
        """A group unsubscribe's topic, from its SendGrid group id."""
        return {group: topic for topic, group in self.sendgrid_groups.items()}

    @property
    def unsubscribe_base_url(self) -> str:
        return self.unsubscribe_url or f"http://{self.webhook_host}:{self.webhook_port}"

    @field_validator("dbt_vars", mode="before")
    @classmethod
    def _dbt_vars(cls, value: Any) -> Any:
        return parse_dbt_vars(value, project_vars) if isinstance(value, str) else value


def env_name(field: str) -> str:
    """The environment variable a field of Settings is read from."""
    return str(Settings.model_fields[field].validation_alias)


# Every environment variable Nightjar reads, the one list of them: the class's. Most are
# read by load_settings; DAGSTER_HOME, the dbt project's folder and DuckDB's memory also
# where they are used. tests/conftest.py empties them for every test.
SETTING_NAMES = tuple(env_name(field) for field in Settings.model_fields)
# Known, so never refused as a misspelling, but read by test tooling alone.
TEST_TOOLING_NAMES = ("NIGHTJAR_CHROMIUM", "NIGHTJAR_BENCH_CACHE")
KNOWN_SETTING_NAMES = SETTING_NAMES + TEST_TOOLING_NAMES


def load_settings() -> Settings:
    # The .env of the directory nightjar runs in (or above it), never the package's own. It
    # goes into the environment, where the settings read elsewhere find it too.
    load_dotenv(find_dotenv(usecwd=True), override=False)
    refuse_unknown_settings(os.environ)
    try:
        return Settings()
    except ValidationError as error:
        refusal = one_line(error, Settings)
    # Raised out here, it carries no trace of pydantic's error, which quotes every value.
    raise ValueError(refusal)


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


def project_vars() -> dict[str, Any]:
    """The vars dbt_project.yml declares, with their defaults (an analyst may add one there
    for a new cohort: it is then a var NIGHTJAR_DBT_VARS may set). A copy of the file's
    reading, which is read again only once the file changed (a night asks some sixty times)."""
    path = DBT_PROJECT_DIR / "dbt_project.yml"
    stat = path.stat()
    return copy.deepcopy(_read_project_vars(path, stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=1)
def _read_project_vars(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text()) or {}
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
