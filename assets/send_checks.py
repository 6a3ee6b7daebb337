"""The gate before any message leaves: sanity checks on the night's warehouse that block the
send assets (never the loading) until they pass or someone releases them.

A night whose data looks wrong (a cohort that jumps, mailable contacts that vanish, spend
that collapses, no contacts at all) is far more likely a broken export than a real change;
sending from it cannot be undone. Each check compares the night with the last night that
passed the gate (`nightjar.night_metrics`, `nightjar.cohort_snapshots`).
"""

import datetime as dt
from dataclasses import dataclass

import duckdb
from dagster import AssetExecutionContext, AssetKey, Failure, MaterializeResult, asset

from assets.campaigns import Campaign
from assets.sends import past_date_reason
from pipelines.owners import OWNERS
from pipelines.partitions import ONE_RUN_PER_DATE, WAREHOUSE_POOL, nightly_partitions
from pipelines.resources import NightjarResource
from pipelines.settings import Settings
from pipelines.warehouse import connect, ensure_schema

# Cohorts (and warehouses) smaller than this the night before are not judged: 3 -> 5 is not
# a broken export.
MIN_TO_JUDGE = 50


@dataclass(frozen=True)
class CheckResult:
    name: str  # what --approve takes
    passed: bool
    detail: str


def _metrics(con: duckdb.DuckDBPyConnection) -> tuple[int, int, float]:
    contacts, mailable, spend = con.execute(
        "select count(*), count(*) filter (where is_mailable), coalesce(sum(total_spend), 0) "
        "from main.customer_360"
    ).fetchall()[0]
    return contacts, mailable, float(spend)


def _drop(now: float, before: float) -> float:
    return (before - now) / before if before else 0.0


def run_checks(
    con: duckdb.DuckDBPyConnection, settings: Settings, campaigns: list[Campaign], day: dt.date
) -> list[CheckResult]:
    contacts, mailable, spend = _metrics(con)
    results = [CheckResult("no_contacts", contacts > 0, f"{contacts:,} contacts in customer_360")]
    previous = con.execute(
        "select business_date, contacts, mailable, total_spend from nightjar.night_metrics "
        "where business_date < ? order by business_date desc limit 1",
        [day],
    ).fetchall()
    if previous and previous[0][1] >= MIN_TO_JUDGE:
        then, old_contacts, old_mailable, old_spend = previous[0]
        share_now = mailable / contacts if contacts else 0.0
        share_then = old_mailable / old_contacts if old_contacts else 0.0
        mailable_drop = _drop(share_now, share_then)
        results.append(
            CheckResult(
                "mailable_share",
                mailable_drop <= settings.max_mailable_share_drop,
                f"mailable share {share_now:.1%}, was {share_then:.1%} on {then} "
                f"(at most a {settings.max_mailable_share_drop:.0%} drop)",
            )
        )
        spend_drop = _drop(spend, float(old_spend))
        results.append(
            CheckResult(
                "total_spend",
                spend_drop <= settings.max_total_spend_drop,
                f"total spend {spend:,.2f}, was {float(old_spend):,.2f} on {then} "
                f"(at most a {settings.max_total_spend_drop:.0%} drop)",
            )
        )
    for campaign in campaigns:
        size = con.execute(f'select count(*) from main."{campaign.cohort}"').fetchall()[0][0]
        before = con.execute(
            "select business_date, member_count from nightjar.cohort_snapshots "
            "where cohort = ? and business_date < ? order by business_date desc limit 1",
            [campaign.cohort, day],
        ).fetchall()
        if not before or before[0][1] < MIN_TO_JUDGE:
            continue
        then, old = before[0]
        change = (size - old) / old
        results.append(
            CheckResult(
                f"cohort_size:{campaign.cohort}",
                abs(change) <= settings.max_cohort_change,
                f"{campaign.cohort} has {size:,} members, {change:+.0%} against {old:,} on "
                f"{then} (at most ±{settings.max_cohort_change:.0%})",
            )
        )
    return results


def approvals(con: duckdb.DuckDBPyConnection, day: dt.date) -> set[str]:
    rows = con.execute(
        "select check_name from nightjar.approvals where business_date = ?", [day]
    ).fetchall()
    return {row[0] for row in rows}


def build_send_checks_asset(campaigns: list[Campaign]):
    @asset(
        name="send_checks",
        group_name="sends",
        owners=OWNERS["sends"],
        deps=[
            AssetKey(["customer_360"]),
            AssetKey(["send_decisions"]),
            *[AssetKey([c.cohort]) for c in campaigns],
        ],
        partitions_def=nightly_partitions,
        kinds={"duckdb"},
        pool=WAREHOUSE_POOL,
        backfill_policy=ONE_RUN_PER_DATE,
        description="The gate before any message leaves: blocks every send when a cohort "
        "moves by more than NIGHTJAR_MAX_COHORT_CHANGE (30%) against the last night that "
        "passed, the mailable share of contacts or the total spend drops by more than 20%, or "
        "there are no contacts at all. Release a check with `nightjar run --date D --approve "
        "CHECK` (recorded in nightjar.approvals).",
    )
    def _send_checks(
        context: AssetExecutionContext, nightjar: NightjarResource
    ) -> MaterializeResult:
        settings = nightjar.settings()
        day = dt.date.fromisoformat(context.partition_key)
        with connect(settings.warehouse) as con:
            ensure_schema(con)
            skipped = past_date_reason(con, settings, day)
            if skipped:  # nothing will be sent: nothing to guard, nothing to record
                return MaterializeResult(metadata={"skipped_reason": skipped})
            results = run_checks(con, settings, campaigns, day)
            failing = {r.name for r in results if not r.passed}
            if not nightjar.dry_run:
                # A release is recorded when it releases something, from the CLI or run config.
                by = nightjar.approved_by or "Dagster run config"
                for name in sorted(failing & set(nightjar.approve)):
                    con.execute(
                        "insert or replace into nightjar.approvals values (?, ?, now(), ?)",
                        [day, name, by],
                    )
            released = approvals(con, day) | set(nightjar.approve)
            blocked = [r for r in results if not r.passed and r.name not in released]
            metadata = {f"check_{r.name}": ("pass" if r.passed else "fail") for r in results}
            metadata["released"] = ", ".join(sorted(released)) or "none"
            if blocked and not nightjar.dry_run:
                lines = "\n".join(f"  - {r.name}: {r.detail}" for r in blocked)
                names = " ".join(f"--approve {r.name}" for r in blocked)
                raise Failure(
                    description=f"Sending for {day} is blocked by {len(blocked)} check(s); "
                    f"nothing was sent, the warehouse is built.\n{lines}\nIf the change is "
                    f"real, release it: nightjar run --date {day} {names}",
                    metadata=metadata,
                )
            for r in blocked:
                context.log.warning(f"dry run: sending would be blocked by {r.name}: {r.detail}")
            if not nightjar.dry_run:
                contacts, mailable, spend = _metrics(con)
                con.execute(
                    "insert or replace into nightjar.night_metrics values (?, ?, ?, ?)",
                    [day, contacts, mailable, spend],
                )
        return MaterializeResult(metadata=metadata)

    return _send_checks
