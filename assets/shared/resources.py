"""Dagster resources: Nightjar's settings and the sender they choose."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from models.settings import Settings, load_settings


class NightjarResource(ConfigurableResource):
    """Paths and switches, read from the environment at run time; fields set here win.

    The SendGrid API key is only ever read from the environment, never from run config.
    """

    landing: str | None = None
    warehouse: str | None = None
    outbox: str | None = None
    # Render and count every message, send none and record nothing (nightjar run --dry-run).
    dry_run: bool = False
    # Send checks released for this run (nightjar run --approve CHECK); recorded when used.
    approve: list[str] = Field(default_factory=list)
    approved_by: str | None = None  # who released them (the CLI says which user)
    # Rebuild dbt's incremental models from all the history (nightjar run --full-refresh);
    # Nightjar does so by itself whenever it cannot vouch for them (assets/warehouse/publish.py).
    full_refresh: bool = False
    # What a first night does (nothing ever sent or recorded), overriding NIGHTJAR_FIRST_NIGHT:
    # nightjar run --baseline records every current occasion as served and messages no one;
    # --send-backlog sends to every current member (assets/sends/checks.py).
    baseline: bool = False
    send_backlog: bool = False
    # Campaigns and journeys paused for this run (nightjar run --pause NAME), as if their
    # block said `enabled: false`: decided `paused`, nothing sent or recorded.
    pause: list[str] = Field(default_factory=list)

    def settings(self) -> Settings:
        base = load_settings()
        overrides = {
            name: Path(value).resolve()
            for name, value in (
                ("landing", self.landing),
                ("warehouse", self.warehouse),
                ("outbox", self.outbox),
            )
            if value
        }
        return base.model_copy(update=overrides)

    def first_night_policy(self, settings: Settings) -> str:
        """`refuse`, `baseline` or `send_backlog`: this run's flag, else the setting."""
        if self.baseline and self.send_backlog:
            raise ValueError(
                "--baseline and --send-backlog exclude each other: a first night either "
                "records every current occasion without messaging anyone, or sends them all."
            )
        if self.baseline:
            return "baseline"
        if self.send_backlog:
            return "send_backlog"
        return settings.first_night
