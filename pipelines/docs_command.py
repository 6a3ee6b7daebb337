"""`nightjar docs`: dbt's documentation site as one static page, built from copies of the
warehouse and the state so that a night may start while it runs."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

from assets.shared.warehouse import state_path_for
from models.manifest import campaigns_var, dbt_executable, load_manifest
from models.settings import DBT_PROJECT_DIR, Settings
from pipelines.run import latest_runnable_date

DOCS_COPY_MAX_BYTES = 1024**3


def docs(args: argparse.Namespace, settings: Settings) -> int:
    """dbt's documentation site as one static page: every model, column, test and the
    lineage, with this installation's thresholds in the descriptions and, once a night has
    run, each column's type from the warehouse."""
    scratch = Path(tempfile.mkdtemp(prefix="nightjar-docs-"))
    try:
        catalog, why_not = _catalog_copy(settings.warehouse, scratch)
        if why_not:
            print(f"nightjar docs: no column types in the docs: {why_not}")
        return _generate_docs(settings, catalog, _state_copy(settings.warehouse, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _catalog_copy(warehouse: Path, scratch: Path) -> tuple[str, str | None]:
    """A copy of the warehouse for dbt's catalog (the column types): dbt opens its database
    for writing, and must not hold the live file's lock while a night may start."""
    if not warehouse.exists():
        return ":memory:", f"{warehouse} does not exist yet (make demo)"
    if warehouse.stat().st_size > DOCS_COPY_MAX_BYTES:
        return ":memory:", f"{warehouse} is larger than 1 GB, too large to copy"
    try:
        duckdb.connect(str(warehouse), read_only=True).close()  # not being written now
    except duckdb.Error:
        return ":memory:", f"{warehouse} is being written (a run in progress?)"
    copy = scratch / warehouse.name
    for source in (warehouse, warehouse.with_name(warehouse.name + ".wal")):
        if source.exists():
            shutil.copy2(source, scratch / source.name)
    return str(copy), None


def _state_copy(warehouse: Path, scratch: Path) -> str:
    """A copy of Nightjar's state for dbt to attach (its sources): a run may be writing the
    live one. An empty one before any night ran."""
    live, copy = state_path_for(warehouse), scratch / "state" / "state.duckdb"
    copy.parent.mkdir()
    for source in (live, live.with_name(live.name + ".wal")):
        if source.exists():
            shutil.copy2(source, copy.parent / source.name)
    duckdb.connect(str(copy)).close()  # creates an empty one where there was none
    return str(copy)


def _generate_docs(settings: Settings, catalog: str, state_copy: str) -> int:
    env = {**os.environ, "NIGHTJAR_WAREHOUSE": catalog, "NIGHTJAR_STATE": state_copy}
    variables = {
        **settings.dbt_vars,
        "as_of_date": latest_runnable_date().isoformat(),  # the SQL shown is last night's
        "default_timezone": settings.default_timezone,
        "campaigns": campaigns_var(load_manifest()),
    }
    # A target of its own: the nightly runs' manifest stays as `dbt parse` made it.
    command = [
        dbt_executable(), "docs", "generate", "--static", "--quiet",
        "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", "target/docs",
        "--vars", json.dumps(variables),
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=DBT_PROJECT_DIR, env=env, check=False)
    if completed.returncode:
        print("nightjar docs: dbt docs generate failed (above)", file=sys.stderr)
        return 1
    page = DBT_PROJECT_DIR / "target" / "docs" / "static_index.html"
    print(f"nightjar docs: open {page} in a browser (one file, no server needed)")
    return 0
