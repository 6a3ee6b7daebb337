"""The sends group: the night's send checks, then one send asset per campaign."""

from collections.abc import Sequence

from dagster import Definitions

from assets.sends.campaigns import build_send_asset
from assets.sends.checks import build_send_checks_asset
from models.campaigns import Campaign


def definitions(campaigns: Sequence[Campaign]) -> Definitions:
    return Definitions(
        assets=[build_send_checks_asset(list(campaigns)), *map(build_send_asset, campaigns)]
    )
