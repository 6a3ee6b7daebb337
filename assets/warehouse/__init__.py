"""The warehouse group: the dbt models (their groups are dbt_project.yml's), built and
published as one asset per model, with dbt's tests as checks."""

from dagster import Definitions

from assets.warehouse.dbt_models import build_warehouse_models


def definitions() -> Definitions:
    return Definitions(assets=[build_warehouse_models()])
