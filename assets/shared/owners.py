"""Who answers for each group of assets, as the Dagster UI shows it beside each asset.

dbt_project.yml names each folder's group and owners (`+meta: {dagster: {group, owners}}`),
which dagster-dbt reads for the models; the assets Nightjar writes in Python join those
groups with the same owners, read here from the manifest. Only the groups without a dbt
model are named below."""

from collections.abc import Iterator, Mapping
from typing import Any

from models.manifest import load_manifest

# Data engineers run the night and its inputs; analysts own the SQL models and cohort rules;
# marketers own what is sent and to whom (the three users the README names).
_WITHOUT_DBT_MODELS = {"ingest": ["team:data-engineering"]}


def group_owners(manifest: dict[str, Any]) -> dict[str, list[str]]:
    """Every group's owners: those of its dbt models (one list per group), then ours."""
    owners: dict[str, list[str]] = {}
    for node in manifest["nodes"].values():
        dagster = (node["config"].get("meta") or {}).get("dagster") or {}
        if node["resource_type"] != "model" or "group" not in dagster:
            continue
        named = owners.setdefault(dagster["group"], list(dagster.get("owners") or []))
        if named != list(dagster.get("owners") or []):
            raise ValueError(
                f"dbt model {node['name']}: the models of group {dagster['group']} name "
                f"different owners; give the group one list in dbt_project.yml"
            )
    return {**owners, **_WITHOUT_DBT_MODELS}


class _GroupOwners(Mapping[str, list[str]]):
    """group -> owners, read from the manifest when asked (not when imported)."""

    def __getitem__(self, group: str) -> list[str]:
        return group_owners(load_manifest())[group]

    def __iter__(self) -> Iterator[str]:
        return iter(group_owners(load_manifest()))

    def __len__(self) -> int:
        return len(group_owners(load_manifest()))


OWNERS: Mapping[str, list[str]] = _GroupOwners()
