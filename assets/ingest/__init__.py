"""The ingest group: the extracts landed into `raw`, SendGrid's events, and their freshness."""

from dagster import Definitions

from assets.ingest.extracts import ingest_assets
from assets.ingest.freshness import freshness_checks
from assets.ingest.sendgrid_events import sendgrid_events


def definitions() -> Definitions:
    return Definitions(assets=[*ingest_assets, sendgrid_events], asset_checks=freshness_checks)
