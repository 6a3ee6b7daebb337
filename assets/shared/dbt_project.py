"""The dbt project as dagster-dbt sees it, and the dbt CLI resource the nightly build runs."""

import contextlib
import os
from collections.abc import Iterator, Mapping
from functools import cache

from dagster_dbt import DbtCliResource, DbtProject
from packaging import version

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


class NightjarDbtCliResource(DbtCliResource):
    """dagster-dbt 0.29 spends about 5 s a run on two things Nightjar does not use: asking
    `dbt --version` in a subprocess, and loading a dbt adapter in-process, which only serves
    `fetch_row_counts`/`fetch_column_metadata`. Those would also open the DuckDB file from
    this process and keep it open, which DuckDB's one-writer rule forbids here."""

    def _initialize_dbt_core_adapter(self, args):
        return None

    @property
    def _cli_version(self) -> version.Version:
        # dbt-core is one of Nightjar's own dependencies: the dbt that runs is this one.
        from dbt.version import __version__

        return version.parse(__version__)
