"""The results group: one asset per campaign, its sends against its control group; the whole
program against the global control group; and the experiments asset when an A/B test
declares a winner rule."""

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import Definitions

from assets.results.campaign_results import build_results_asset
from assets.results.experiments import build_experiments_asset, experiments_of
from assets.results.program_results import build_program_results_asset
from models.campaigns import Campaign


def definitions(campaigns: Sequence[Campaign], dbt_vars: Mapping[str, Any]) -> Definitions:
    """`dbt_vars`: what the descriptions state (models.descriptions.current_vars)."""
    assets = [build_results_asset(c, dict(dbt_vars)) for c in campaigns]
    assets.append(build_program_results_asset(list(campaigns)))
    if experiments_of(list(campaigns)):
        assets.append(build_experiments_asset(list(campaigns)))
    return Definitions(assets=assets)
