"""Shared fixtures: isolated settings per test, a prepared dbt manifest, a way to run a date."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

# Before any test module imports the partitions: they start at the first landed date, and
# each test has a landing of its own (tests/integration/test_what_the_ui_shows.py tests that start).
FIRST_DATE = "2020-01-01"
os.environ["NIGHTJAR_FIRST_DATE"] = FIRST_DATE

from models.manifest import ensure_manifest  # noqa: E402
from models.settings import SETTING_NAMES  # noqa: E402  the Settings class's: emptied per test


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    return ensure_manifest()


@dataclass
class Workspace:
    """One isolated Nightjar installation: its landing, warehouse and outbox."""

    root: Path

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    def run(self, business_date: str) -> int:
        from models.settings import load_settings
        from pipelines.cli import run_date

        return run_date(dt.date.fromisoformat(business_date), load_settings())

    def run_with(self, business_date: str, **resource_config):
        """Run a night in-process as `nightjar run` does, with fields of the `nightjar`
        resource set in run config (`baseline=True`, `approve=[...]`); the Dagster result."""
        from dagster import DagsterInstance

        from pipelines.definitions import defs

        return defs.resolve_job_def("nightly_job").execute_in_process(
            partition_key=business_date,
            instance=DagsterInstance.ephemeral(),
            raise_on_error=False,
            run_config={"resources": {"nightjar": {"config": resource_config}}},
        )

    @property
    def state(self) -> Path:
        return self.root / "state.duckdb"

    def query(self, sql: str, params=None) -> list[tuple]:
        """Read the warehouse, with Nightjar's state attached as `nightjar`."""
        with self.reading() as con:
            return con.execute(sql, params or []).fetchall()

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One read-only connection for many queries: opening the warehouse and its state
        takes about 40 ms, and a search of every column would open it hundreds of times."""
        from assets.shared.warehouse import connect

        with connect(self.warehouse, read_only=True) as con:
            yield con

    def ids(self, table: str) -> set[str]:
        return {row[0] for row in self.query(f"select contact_id from {table}")}

    def outbox_lines(self, business_date: str, campaign: str) -> list[dict]:
        import json

        from senders.outbox import outbox_lines

        path = self.outbox / business_date / f"{campaign}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in outbox_lines(path)]


UNSUBSCRIBE_SECRET = "test-secret-that-signs-one-click-unsubscribe-links"


def isolate(mp: pytest.MonkeyPatch, root: Path) -> Workspace:
    workspace = Workspace(root)
    # Empty values (not deletions) so that a developer's .env can never fill them in.
    for name in SETTING_NAMES:
        mp.setenv(name, "")
    # DAGSTER_HOME empty: runs in memory, not in the project's instance; partitions as above.
    mp.setenv("NIGHTJAR_FIRST_DATE", FIRST_DATE)
    mp.setenv("NIGHTJAR_LANDING", str(workspace.landing))
    mp.setenv("NIGHTJAR_WAREHOUSE", str(workspace.warehouse))
    mp.setenv("NIGHTJAR_OUTBOX", str(workspace.outbox))
    mp.setenv("NIGHTJAR_REPORTS", str(workspace.root / "reports"))
    # A run waits this long for SendGrid's events of an unanswered batch; tests say when.
    mp.setenv("NIGHTJAR_SETTLE_WAIT_SECONDS", "0")
    # Tests name who gets a message; the control group has tests of its own (test_holdouts).
    mp.setenv("NIGHTJAR_DBT_VARS", "{holdout_share: 0}")
    # Tests plant a landing and expect its first night to send; a first night's refusal and
    # its baseline have tests of their own (test_first_night_and_gaps).
    mp.setenv("NIGHTJAR_FIRST_NIGHT", "send_backlog")
    # Every message carries a signed one-click unsubscribe link; its refusals have tests of
    # their own (test_deliverability).
    mp.setenv("NIGHTJAR_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)
    mp.setenv("NIGHTJAR_UNSUBSCRIBE_URL", "https://mail.shop.example")
    # and every topic its SendGrid unsubscribe group, should a test send through SendGrid
    mp.setenv("NIGHTJAR_SENDGRID_GROUPS", "lifecycle=101,promotions=102,birthday=103")
    workspace.landing.mkdir(parents=True, exist_ok=True)
    return workspace


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    return isolate(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def module_workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    with pytest.MonkeyPatch.context() as mp:
        yield isolate(mp, tmp_path_factory.mktemp("nightjar"))


def pytest_configure(config: pytest.Config) -> None:
    # Keep Dagster from writing telemetry or a home folder during tests.
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


@pytest.fixture
def dbt_fails_half_way(monkeypatch: pytest.MonkeyPatch):
    """`dbt_fails_half_way(True)`: from then on a run's dbt build fails half way, after
    customer_360 and the cohorts are built, in send_decisions' SQL; `(False)` mends it."""
    import json

    import assets.warehouse.dbt_models

    build_args = assets.warehouse.dbt_models.dbt_build_args

    def breaking(business_date, settings, since, **options):
        args = build_args(business_date, settings, since, **options)
        at = args.index("--vars") + 1
        args[at] = json.dumps({**json.loads(args[at]), "max_messages_per_day": "not_a_column"})
        return args

    def switch(failing: bool) -> None:
        monkeypatch.setattr(
            assets.warehouse.dbt_models, "dbt_build_args", breaking if failing else build_args
        )

    return switch
