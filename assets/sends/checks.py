"""The gate before any message leaves: sanity checks on the night's warehouse that block the
send assets (never the loading) until they pass or someone releases them.

A night whose data looks wrong (a cohort that jumps, mailable contacts that vanish, spend
that collapses, no contacts at all, a day missing from the landing) is far more likely a
broken export than a real change; sending from it cannot be undone. Each check compares the
night with the last night that passed the gate (`nightjar.night_metrics`,
`nightjar.cohort_snapshots`): assets/sends/gate.py.

The gate also decides a first night (nothing ever sent or recorded): every current member of
every cohort would be messaged, however old their occasion, so it refuses to send until told
either to record a baseline (every current occasion served, no one messaged) or to send the
backlog: assets/sends/first_night.py.
"""

import datetime as dt
from typing import Any

import duckdb
from dagster import AssetExecutionContext, AssetKey, Failure, MaterializeResult, asset

from assets.sends.first_night import Refusal, first_night_plan, record_baseline
from assets.sends.gate import (
    CheckResult,
    approvals,
    blocked_message,
    journey_steps,
    landing_gap,
    night_metrics,
    run_checks,
    state_behind,
)
from assets.sends.reputation import reputation_checks
from assets.shared.owners import OWNERS
from assets.shared.partitions import (
    ONE_RUN_PER_DATE,
    WAREHOUSE_POOL,
    business_date,
    nightly_partitions,
)
from assets.shared.resources import NightjarResource
from assets.shared.state_store import synced as state_synced
from assets.shared.warehouse import connect, ensure_schema, transaction
from models.campaigns import Campaign
from models.landing import record_night
from models.settings import Settings
from senders.channels import make_sender
from senders.cohort import DecisionsNotCurrent, past_date_reason

DESCRIPTION = (
    "The gate before any message leaves: blocks every send when a cohort "
    "moves by more than NIGHTJAR_MAX_COHORT_CHANGE (30%) against the last night that "
    "passed, the mailable share of contacts or the total spend drops by more than 20%, "
    "there are no contacts at all, or a date between the first landed folder and this "
    "one never landed (landing_gap), or the state is older than the last night run "
    "(state_behind), or the spam-report or bounce rate of the last 7 days "
    "(sender_reputation), over all mail or a campaign's, exceeds NIGHTJAR_MAX_SPAM_RATE "
    "(0.1%) or NIGHTJAR_MAX_BOUNCE_RATE (2%): spam_rate, bounce_rate, spam_rate:<campaign>, "
    "bounce_rate:<campaign>. Release a check with `nightjar run --date D "
    "--approve CHECK` (recorded in nightjar.approvals). On a first night (nothing ever "
    "sent) it refuses to send unless told `--baseline` (record every current occasion as "
    "served, message no one) or `--send-backlog` (NIGHTJAR_FIRST_NIGHT)."
)


def build_send_checks_asset(campaigns: list[Campaign]):
    @asset(
        name="send_checks",
        group_name="sends",
        owners=OWNERS["sends"],
        deps=[
            AssetKey(["customer_360"]),
            AssetKey(["send_decisions"]),
            AssetKey(["sender_reputation"]),
            *[AssetKey([c.cohort]) for c in campaigns],
        ],
        partitions_def=nightly_partitions,
        kinds={"duckdb"},
        pool=WAREHOUSE_POOL,
        backfill_policy=ONE_RUN_PER_DATE,
        description=DESCRIPTION,
    )
    def _send_checks(
        context: AssetExecutionContext, nightjar: NightjarResource
    ) -> MaterializeResult:
        settings = nightjar.settings()
        day = business_date(context)
        # with PostgreSQL's state: pulled first, the approvals and metrics pushed after
        with state_synced(settings), connect(settings.warehouse) as con:
            ensure_schema(con)
            skipped = past_date_reason(con, settings, day)
            if skipped:  # nothing will be sent: nothing to guard, nothing to record
                return MaterializeResult(metadata={"skipped_reason": skipped})
            metadata = _guard_the_night(context, nightjar, con, settings, campaigns, day)
        return MaterializeResult(metadata=metadata)

    return _send_checks


def _guard_the_night(
    context: AssetExecutionContext,
    nightjar: NightjarResource,
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    campaigns: list[Campaign],
    day: dt.date,
) -> dict[str, Any]:
    """Run the checks and decide the first night: a blocked or refused night fails (a dry
    run only says so); one that may send is recorded as passed, with its baseline if any.
    Returns the asset's metadata."""
    results = [
        *run_checks(con, settings, campaigns, day),
        landing_gap(con, settings.landing, day),
        state_behind(con, settings, day),
        *journey_steps(con, campaigns, day),
        *reputation_checks(con, settings),
    ]
    released = _released(con, nightjar, day, results)
    blocked = [r for r in results if not r.passed and r.name not in released]
    baseline, refusal, first_night = _first_night(con, nightjar, settings, day)
    metadata: dict[str, Any] = {
        f"check_{r.name}": ("pass" if r.passed else "fail") for r in results
    }
    metadata["released"] = ", ".join(sorted(released)) or "none"
    metadata["first_night"] = first_night
    if nightjar.dry_run:
        _tell_the_dry_run(context, blocked, refusal, baseline)
        return metadata
    if blocked or refusal:
        raise Failure(description=blocked_message(day, blocked, refusal), metadata=metadata)
    if baseline and not make_sender(settings).records_sends:
        # SendGrid's sandbox is a rehearsal: it writes nothing to the ledger.
        context.log.warning(
            "SendGrid sandbox: the baseline is not recorded (a rehearsal records "
            "nothing), so the sandbox gets every current member's message and "
            "delivers none; the real run with --baseline sends none"
        )
        baseline = False
    _record_the_pass(con, settings, campaigns, day, baseline, metadata)
    return metadata


def _released(
    con: duckdb.DuckDBPyConnection,
    nightjar: NightjarResource,
    day: dt.date,
    results: list[CheckResult],
) -> set[str]:
    """The checks released for `day`: earlier, or by this run (recorded, unless a dry run,
    when it releases something: from the CLI or run config)."""
    failing = {r.name for r in results if not r.passed}
    if not nightjar.dry_run:
        by = nightjar.approved_by or "Dagster run config"
        for name in sorted(failing & set(nightjar.approve)):
            con.execute(
                "insert or replace into nightjar.approvals values (?, ?, now(), ?)",
                [day, name, by],
            )
    return approvals(con, day) | set(nightjar.approve)


def _first_night(
    con: duckdb.DuckDBPyConnection, nightjar: NightjarResource, settings: Settings, day: dt.date
) -> tuple[bool, Refusal | None, str]:
    """first_night_plan with this run's flags; flags that exclude each other fail the run."""
    try:
        policy = nightjar.first_night_policy(settings)
    except ValueError as error:
        raise Failure(description=str(error)) from None
    return first_night_plan(con, settings, day, policy, nightjar.baseline, nightjar.send_backlog)


def _tell_the_dry_run(
    context: AssetExecutionContext,
    blocked: list[CheckResult],
    refusal: Refusal | None,
    baseline: bool,
) -> None:
    for r in blocked:
        context.log.warning(f"dry run: sending would be blocked by {r.name}: {r.detail}")
    if refusal:
        context.log.warning(f"dry run: sending would be refused: {refusal.reason}")
    if baseline:
        context.log.warning(
            "dry run: a real run records tonight's occasions as the baseline and "
            "messages no one; the counts below are what --send-backlog would send"
        )


def _record_the_pass(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    campaigns: list[Campaign],
    day: dt.date,
    baseline: bool,
    metadata: dict[str, Any],
) -> None:
    """The night passed the gate: its figures (what the next night is compared with), its
    baseline if it records one, and the landing's note that the state recorded it."""
    contacts, mailable, spend = night_metrics(con)
    # The baseline and the gate's pass are one: a night that passed always has it.
    try:
        with transaction(con):
            if baseline:
                metadata["baseline_recorded"] = record_baseline(con, campaigns, day)
            con.execute(
                "insert or replace into nightjar.night_metrics values (?, ?, ?, ?)",
                [day, contacts, mailable, spend],
            )
    except DecisionsNotCurrent as error:
        raise Failure(description=str(error)) from None
    # The landing's note that a state recorded this night: beside an empty state, it tells a
    # lost (or mistaken) state from a first night (first_night.traces_of_a_lost_state).
    record_night(settings.landing, day)
