"""The experiments asset: every A/B test that declares a winner rule, judged each night on its
sends so far (campaign_outcomes); once the rule is met the verdict is recorded in
nightjar.experiment_decisions, and from the next night on every send of the test uses the
winner alone (int_campaign_members_unioned). docs/contract.md §17."""

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import duckdb
from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from assets.results.campaign_results import require_built_for
from assets.shared.owners import OWNERS
from assets.shared.partitions import (
    ONE_RUN_PER_DATE,
    WAREHOUSE_POOL,
    business_date,
    nightly_partitions,
)
from assets.shared.previews import markdown_table
from assets.shared.resources import NightjarResource
from assets.shared.state_store import synced as state_synced
from assets.shared.warehouse import connect, ensure_schema
from models.campaigns import Campaign
from models.experiments import Arm, Verdict, WinnerRule, judge
from senders.cohort import past_date_reason

# Who an arm's rate is judged on, and what counts as a success, per metric: a conversion
# only once the member's conversion window is over (an open window would count as a loss).
_JUDGED = {"conversion": "is_window_complete", "click": "true"}
_SUCCESS = {"conversion": "has_converted", "click": "is_clicked"}


@dataclass(frozen=True)
class Experiment:
    campaign: Campaign
    step: str  # '' for a one-shot campaign's test
    rule: WinnerRule
    variants: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.campaign.name}, step {self.step}" if self.step else self.campaign.name


def experiments_of(campaigns: list[Campaign]) -> list[Experiment]:
    """Every A/B test with a winner rule: a campaign's, or a journey step's."""
    found = []
    for campaign in campaigns:
        owners = [(s.name, s) for s in campaign.steps] or [("", campaign)]
        for step, owner in owners:
            if owner.winner:
                variants = tuple(v.name for v in owner.variants)
                found.append(Experiment(campaign, step, owner.winner, variants))
    return found


def build_experiments_asset(campaigns: list[Campaign]):
    experiments = experiments_of(campaigns)

    @asset(
        name="experiments",
        group_name="results",
        owners=OWNERS["results"],
        deps=[
            AssetKey(["campaign_outcomes"]),
            *{AssetKey([e.campaign.asset_name]) for e in experiments},
        ],
        partitions_def=nightly_partitions,
        kinds={"duckdb"},
        pool=WAREHOUSE_POOL,
        backfill_policy=ONE_RUN_PER_DATE,
        description=(
            "Every A/B test that declares a winner rule ("
            + "; ".join(f"{e.label}: {e.rule.describe()}" for e in experiments)
            + "), judged on its sends of the last results_window_days: each arm's members, "
            "successes and posterior probability of being the best (Beta-Binomial). Once the "
            "rule is met the winner is recorded (nightjar.experiment_decisions) and every "
            "later send of the test uses it alone."
        ),
    )
    def _experiments(
        context: AssetExecutionContext, nightjar: NightjarResource
    ) -> MaterializeResult:
        settings = nightjar.settings()
        day = business_date(context)
        metadata: dict[str, Any] = {}
        with state_synced(settings), connect(settings.warehouse) as con:
            ensure_schema(con)
            # only a night that may send decides: a past date's rebuild or a rehearsal judges
            records = not nightjar.dry_run and past_date_reason(con, settings, day) is None
            require_built_for(
                con.execute("select max(as_of_date) from main.campaign_outcomes").fetchall()[0][0],
                day,
            )
            for experiment in experiments:
                status, table = _judge(con, experiment, day, records)
                metadata[experiment.label] = status
                metadata[f"{experiment.label}: arms"] = MetadataValue.md(table)
                context.log.info(f"experiment {experiment.label}: {status}")
        return MaterializeResult(metadata=metadata)

    return _experiments


def _judge(
    con: duckdb.DuckDBPyConnection, experiment: Experiment, day: dt.date, records: bool
) -> tuple[str, str]:
    """The experiment's status tonight in words, and its arms as a table; its verdict
    recorded when the rule is met tonight and `records`."""
    decided = con.execute(
        "select winner, decided_on, probability from nightjar.experiment_decisions "
        "where campaign = ? and step = ?",
        [experiment.campaign.name, experiment.step],
    ).fetchall()
    arms = _arms(con, experiment)
    verdict = judge(experiment.rule, arms, list(experiment.variants), seed=experiment.label)
    table = _arms_table(arms, verdict, experiment.variants)
    if decided and decided[0][0] in experiment.variants:
        winner, on, probability = decided[0]
        return f"decided on {on}: {winner} ({probability:.1%} probability of the best)", table
    # (a winner renamed or removed from the YAML since: the test is judged anew)
    if verdict.winner and records:
        figures = {
            a.variant: {"members": a.members, "successes": a.successes,
                        "probability_best": verdict.probabilities[a.variant]}
            for a in arms
        }  # fmt: skip
        con.execute(
            "insert or replace into nightjar.experiment_decisions "
            "values (?, ?, ?, ?, ?, ?, ?, now())",
            [
                experiment.campaign.name,
                experiment.step,
                verdict.winner,
                experiment.rule.metric,
                verdict.probabilities[verdict.winner],
                json.dumps(figures, sort_keys=True),
                day,
            ],
        )
        return f"decided on {day}: {verdict.reason}; later sends use {verdict.winner}", table
    return verdict.reason, table


def _arms(con: duckdb.DuckDBPyConnection, experiment: Experiment) -> list[Arm]:
    judged, success = _JUDGED[experiment.rule.metric], _SUCCESS[experiment.rule.metric]
    rows = con.execute(
        f"""
        select
            variant,
            count(*) filter (where {judged}),
            count(*) filter (where {judged} and {success})
        from main.campaign_outcomes
        where
            campaign = ? and coalesce(step, '') = ? and audience_group = 'messaged'
            and variant is not null
        group by variant
        """,
        [experiment.campaign.name, experiment.step],
    ).fetchall()
    return [Arm(variant, members, successes) for variant, members, successes in rows]


def _arms_table(arms: list[Arm], verdict: Verdict, variants: tuple[str, ...]) -> str:
    by_name = {a.variant: a for a in arms}
    rows = [
        (
            name,
            f"{(arm := by_name.get(name, Arm(name, 0, 0))).members:,}",
            f"{arm.successes:,}",
            f"{arm.rate:.2%}",
            f"{verdict.probabilities[name]:.1%}",
        )
        for name in variants
    ]
    return markdown_table(("variant", "judged", "successes", "rate", "P(best)"), rows)
