"""Dagster's instance on a real PostgreSQL server (deploy/dagster.yaml, make test-postgres): a
night runs with its runs and event log kept there, and a second process reading the same
instance sees the run and the night's materializations."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.support.scenario import D, write_all

DEPLOYED_INSTANCE = Path(__file__).resolve().parents[2] / "deploy" / "dagster.yaml"


@pytest.mark.postgres
def test_a_night_is_recorded_in_a_dagster_instance_on_postgresql(workspace, tmp_path, monkeypatch):
    import psycopg
    from dagster import DagsterInstance, DagsterRunStatus

    from tests.support.postgres_server import PostgresServer

    with PostgresServer() as server:
        url = server.new_database()
        parts = urlparse(url)
        home = tmp_path / "dagster-home"
        home.mkdir()
        shutil.copy(DEPLOYED_INSTANCE, home / "dagster.yaml")
        for name, value in {
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_HOST": parts.hostname,
            "DAGSTER_PG_PORT": str(parts.port),
            "DAGSTER_PG_DB": parts.path.lstrip("/"),
            "DAGSTER_PG_USERNAME": parts.username,
            "DAGSTER_PG_PASSWORD": parts.password,
        }.items():
            monkeypatch.setenv(name, value)
        write_all(workspace.landing)
        assert workspace.run(D) == 0

        # another process's view: the instance as deploy/dagster.yaml describes it
        instance = DagsterInstance.from_config(str(home))
        try:
            (run,) = instance.get_runs()
            assert run.status == DagsterRunStatus.SUCCESS and run.tags["dagster/partition"] == D
            materialized = instance.get_latest_materialization_events(
                [key for key in instance.all_asset_keys() if key.to_user_string() == "customer_360"]
            )
            (event,) = materialized.values()
            assert event.dagster_event.partition == D
        finally:
            instance.dispose()
        with psycopg.connect(url) as con:
            assert con.execute("select count(*) from runs").fetchone()[0] == 1
            assert con.execute("select count(*) from event_logs").fetchone()[0] > 100
