"""The results group: one asset per campaign, its sends against its control group."""

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import Definitions

from assets.results.campaign_results import build_results_asset
from models.campaigns import Campaign


def definitions(campaigns: Sequence[Campaign], dbt_vars: Mapping[str, Any]) -> Definitions:
    """`dbt_vars`: what the descriptions state (models.descriptions.current_vars)."""
    return Definitions(assets=[build_results_asset(c, dict(dbt_vars)) for c in campaigns])
