"""The dbt project's own tests: unit tests of the tricky rules, its data tests' reach, and its
lint."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from models.manifest import dbt_executable
from models.settings import DBT_PROJECT_DIR

Dbt = Callable[..., subprocess.CompletedProcess]
DEFAULT_VARS = "{as_of_date: '2026-01-01'}"


@pytest.fixture(scope="module")
def empty_build(tmp_path_factory) -> tuple[Dbt, Path]:
    """dbt over a warehouse whose tables exist and are empty, and that warehouse."""
    # Unit tests need the sources to exist as relations, so build against an empty warehouse.
    from assets.shared.warehouse import connect, ensure_schema

    warehouse = tmp_path_factory.mktemp("dbt") / "unit.duckdb"
    with connect(warehouse) as con:
        ensure_schema(con)

    def dbt(*args: str, dbt_vars: str = DEFAULT_VARS) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                dbt_executable(), *args, "--profiles-dir", str(DBT_PROJECT_DIR),
                "--vars", dbt_vars,
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
    return dbt, warehouse


def test_dbt_unit_tests_pass(empty_build):
    dbt, _ = empty_build
    completed = dbt("build")
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert "46 unit tests" in completed.stdout
    assert "ERROR=0" in completed.stdout


def test_an_incremental_night_checks_the_keys_it_wrote_against_the_whole_table(empty_build):
    """int_orders_resolved's key, tested on an incremental night for the orders that night
    wrote (ten million keys a night at a million contacts were a second of every night): an
    older copy of one of them fails it; a repeat among older rows alone is a full build's to
    find."""
    from assets.shared.warehouse import connect

    dbt, warehouse = empty_build
    with connect(warehouse) as con:
        con.execute(
            "insert into build.int_orders_resolved (order_id, written_on) values "
            "('tonight', '2026-01-01'), ('tonight', '2025-12-30'), "
            "('older', '2025-12-29'), ('older', '2025-12-30'), ('once', '2026-01-01')"
        )
    try:
        tonight = dbt(
            "test", "--select", "int_orders_resolved",
            dbt_vars="{as_of_date: '2026-01-01', incremental_since: '2025-12-31'}",
        )  # fmt: skip
        full = dbt("test", "--select", "int_orders_resolved")
    finally:
        with connect(warehouse) as con:  # the warehouse is the module's: left as it was
            con.execute("delete from build.int_orders_resolved")
    assert tonight.returncode == 1, tonight.stdout[-3000:]
    assert "Failure in test unique_together_int_orders_resolved_order_id" in tonight.stdout
    assert "Got 1 result, configured to fail if != 0" in tonight.stdout, tonight.stdout[-3000:]
    assert full.returncode == 1, full.stdout[-3000:]
    assert "Got 2 results, configured to fail if != 0" in full.stdout, full.stdout[-3000:]
