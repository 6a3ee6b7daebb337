"""The dbt project as dagster-dbt sees it, and the dbt CLI resource the nightly build runs."""

import os
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
