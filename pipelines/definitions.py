"""Nightjar's Dagster Definitions: what `dagster dev` shows and `nightjar run` executes."""

from dagster import AssetSpec, Definitions

from assets import ingest, results, sends, warehouse
from assets.shared.owners import OWNERS
from assets.shared.resources import NightjarResource
from models.descriptions import current_vars, described_campaigns
from models.manifest import load_manifest
from models.privacy import install as redact_logs
from pipelines.alerts import alert_on_overdue_extracts, alert_on_run_failure
from pipelines.jobs import (
    freshness_job,
    freshness_schedule,
    landing_sensor,
    nightly_job,
    nightly_schedule,
)

redact_logs()  # before any run logs a line: secrets and addresses never reach a log


def _state_table(name: str, group: str, description: str) -> AssetSpec:
    return AssetSpec(
        ["nightjar", name],
        group_name=group,
        owners=OWNERS[group],
        kinds={"duckdb"},
        description=description,
    )


# State Nightjar keeps beside the ledger; dbt reads both, the send assets maintain them.
STATE_TABLES = [
    _state_table(
        "send_ledger",
        "journeys",  # its earliest reader: journey_winback (a lapse reactivation messaged)
        "Every message planned, sent, held out or skipped: one row per campaign, "
        "contact and occasion, with its status, variant and send time. What makes each "
        "occasion go exactly once; send_decisions reads it for the frequency cap.",
    ),
    # In the group of the models that read them, so that the lineage reads left to right:
    # ingest -> warehouse -> cohorts -> journeys -> sends -> results.
    _state_table(
        "suppressions",
        "ingest",
        "Addresses suppressed by hand (normalized), beside those SendGrid "
        "reports; both make the suppression_list model.",
    ),
    _state_table(
        "cohort_membership",
        "cohorts",
        "Who was in each cohort on each date it was sent, with the date they "
        "entered it: how loyalty tells a contact who stays from one who enters.",
    ),
    _state_table(
        "cohort_snapshots",
        "cohorts",
        "Each cohort's size on each date it was sent, even when empty: what the "
        "cohort_size send check compares tonight's cohort with.",
    ),
    _state_table(
        "experiment_decisions",
        "sends",
        "Each A/B test whose winner rule was met (the experiments asset): its winner, which "
        "int_campaign_members_unioned gives every later member, with the figures and date.",
    ),
    _state_table(
        "journey_instances",
        "sends",
        "One row per journey instance (journey, contact, occasion): when it entered, whether "
        "it is in the control group (drawn once, at entry), active, finished or exited and "
        "why, its last and next step. Written by each journey's send before any message "
        "leaves; journey_progress reads it.",
    ),
    _state_table(
        "erasures",
        "ingest",
        "Contacts erased (is_deleted), with only a SHA-256 hash of each address "
        "they had: a later order or event with the address is scrubbed on arrival, and an "
        "address that had unsubscribed stays suppressed if its owner registers again.",
    ),
]


def build_definitions() -> Definitions:
    """Each Dagster group's own definitions, and the shell's: the state tables, the jobs,
    schedules, sensors and resources."""
    # One send asset per campaign declared in the dbt YAML: a new campaign needs no Python.
    dbt_vars = current_vars()
    campaigns = described_campaigns(load_manifest(), dbt_vars)
    return Definitions.merge(
        ingest.definitions(),
        warehouse.definitions(),
        sends.definitions(campaigns),
        results.definitions(campaigns, dbt_vars),
        Definitions(
            assets=STATE_TABLES,
            jobs=[nightly_job, freshness_job],
            schedules=[nightly_schedule, freshness_schedule],
            sensors=[landing_sensor, alert_on_run_failure, alert_on_overdue_extracts],
            resources={
                "nightjar": NightjarResource(),
            },
        ),
    )


defs = build_definitions()
