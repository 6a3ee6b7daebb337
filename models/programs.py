"""Every program the dbt project declares: the cohorts' campaign blocks and the entry
models' journey blocks, read from the manifest (docs/contract.md §3, §15)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from models.campaigns import Campaign, CampaignConfigError, meta_block, parse_campaign
from models.dbt_vars import did_you_mean
from models.journeys import parse_journey, where_of
from models.settings import project_vars

_CUSTOMER_VIEW = "customer_360"
_MEMBERSHIP_SOURCE = "source.nightjar.nightjar.cohort_membership"


def campaigns_from_manifest(
    manifest: Mapping[str, Any],
    describe: Callable[[Mapping[str, Any]], str] | None = None,
    topics: Sequence[str] | None = None,
) -> list[Campaign]:
    """Every campaign and journey the dbt project declares, sorted by name; names must be
    unique over both, and each names one of `topics` (the project's var `topics` when
    None). `describe` renders a model's description (with tonight's thresholds: see
    models/descriptions.py); dbt's own rendering without it."""
    known_topics = project_topics() if topics is None else list(topics)
    nodes = [n for n in manifest.get("nodes", {}).values() if n.get("resource_type") == "model"]
    readable = _customer_view_columns(nodes)
    campaigns: dict[str, Campaign] = {}
    for node in nodes:
        campaign_block, journey_block = meta_block(node, "campaign"), meta_block(node, "journey")
        if campaign_block is None and journey_block is None:
            continue
        description = describe(node) if describe else node.get("description", "")
        where = where_of(node["name"], node)
        if campaign_block is not None and journey_block is not None:
            raise CampaignConfigError(f"{where}: declare a campaign or a journey, not both")
        if campaign_block is not None:
            campaign = parse_campaign(node["name"], campaign_block, description)
        else:
            depends = node.get("depends_on", {}).get("nodes", [])
            campaign = parse_journey(
                node["name"],
                journey_block,
                description,
                where=where,
                readable_columns=readable,
                records_membership=_MEMBERSHIP_SOURCE in depends,
            )
        if campaign.topic not in known_topics:
            raise CampaignConfigError(
                f"{where}: topic {campaign.topic!r} is not one of the project's topics "
                f"({', '.join(known_topics)}{did_you_mean(campaign.topic, known_topics)}): "
                "declare it in dbt_project.yml's var topics"
            )
        if campaign.name in campaigns:
            raise CampaignConfigError(
                f"{where}: the name {campaign.name!r} is declared by both "
                f"{campaigns[campaign.name].cohort} and {campaign.cohort}"
            )
        campaigns[campaign.name] = campaign
    return [campaigns[name] for name in sorted(campaigns)]


def _customer_view_columns(nodes: list[Mapping[str, Any]]) -> list[str] | None:
    """customer_360's columns as its YAML documents them (all of them: a test keeps the list
    whole), which a journey's conditions may read; None for a project without it."""
    for node in nodes:
        if node.get("name") == _CUSTOMER_VIEW:
            return list(node.get("columns", {}))
    return None


def project_topics() -> list[str]:
    """The topics a recipient may unsubscribe from one by one (dbt_project.yml's var
    `topics`): every campaign and journey names one of them."""
    topics = project_vars().get("topics") or []
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        raise CampaignConfigError("dbt_project.yml: var topics must be a list of plain words")
    return topics
