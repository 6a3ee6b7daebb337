"""The dbt project as dagster-dbt sees it (the nightly build runs dbt in-process:
assets/shared/dbt_runner.py)."""

import contextlib
import os
from collections.abc import Iterator, Mapping
from functools import cache

from dagster_dbt import DbtProject

from models.manifest import ensure_manifest
from models.settings import DBT_PROJECT_DIR


@cache
def dbt_project() -> DbtProject:
    """The dbt project. Under `dagster dev` its manifest is refreshed here (what
    `prepare_if_dev` does, but with this environment's dbt); `nightjar` and `make` call
    ensure_manifest themselves."""
    if os.environ.get("DAGSTER_IS_DEV_CLI"):
        ensure_manifest()
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """`values` in the environment for this moment only (dbt's profiles.yml reads them), as
    they were before once it ends: a later night in this process must not inherit them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
