"""The dbt project's own tests: unit tests of the tricky rules, and its lint."""

from __future__ import annotations

import os
import subprocess

from models.manifest import dbt_executable
from models.settings import DBT_PROJECT_DIR


def test_dbt_unit_tests_pass(tmp_path):
    # Unit tests need the sources to exist as relations, so build against an empty warehouse.
    from assets.shared.warehouse import connect, ensure_schema

    warehouse = tmp_path / "unit.duckdb"
    with connect(warehouse) as con:
        ensure_schema(con)

    def dbt(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                dbt_executable(), *args, "--profiles-dir", str(DBT_PROJECT_DIR),
                "--vars", "{as_of_date: '2026-01-01'}",
                "--target-path", f"target/unit-{os.getpid()}",
            ],
            cwd=DBT_PROJECT_DIR,
            env={**os.environ, "NIGHTJAR_WAREHOUSE": str(warehouse),
                 "NIGHTJAR_STATE": str(warehouse.with_name("state.duckdb"))},
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip

    # A unit test of an incremental run reads the model's columns from its table: create the
    # incremental models (and the views they read) empty first.
    created = dbt("run", "--empty", "--select", "+config.materialized:incremental")
    assert created.returncode == 0, created.stdout[-3000:]
    completed = dbt("build")
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert "46 unit tests" in completed.stdout
    assert "ERROR=0" in completed.stdout
