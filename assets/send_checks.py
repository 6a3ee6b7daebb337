"""The gate before any message leaves: sanity checks on the night's warehouse that block the
send assets (never the loading) until they pass or someone releases them.

A night whose data looks wrong (a cohort that jumps, mailable contacts that vanish, spend
that collapses, no contacts at all, a day missing from the landing) is far more likely a
broken export than a real change; sending from it cannot be undone. Each check compares the
night with the last night that passed the gate (`nightjar.night_metrics`,
`nightjar.cohort_snapshots`).

The gate also decides a first night (nothing ever sent or recorded): every current member of
every cohort would be messaged, however old their occasion, so it refuses to send until told
either to record a baseline (every current occasion served, no one messaged) or to send the
backlog.
"""

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
from dagster import AssetExecutionContext, AssetKey, Failure, MaterializeResult, asset

from assets.campaigns import Campaign
from assets.sends import past_date_reason
from pipelines.freshness import missing_dates, name_dates
from pipelines.landing import (
    complete_folders_through,
    list_folders,
    nights_recorded,
    record_night,
)
from pipelines.owners import OWNERS
from pipelines.partitions import ONE_RUN_PER_DATE, WAREHOUSE_POOL, nightly_partitions
from pipelines.resources import NightjarResource, make_sender
from pipelines.settings import Settings
from pipelines.state_postgres import synced as state_synced
from pipelines.warehouse import connect, ensure_schema, transaction
from senders.ledger import Ledger, send_id

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


LANDING_GAP = "landing_gap"


def landed_dates(con: duckdb.DuckDBPyConnection, landing: Path, day: dt.date) -> set[dt.date]:
    """Dates up to `day` whose data is in: a complete landing folder, or loaded before (a
    folder pruned or being exported again after its load still has its rows in raw)."""
    loaded = con.execute(
        "select distinct business_date from raw.loaded_files where business_date <= ?", [day]
    ).fetchall()
    return {f.business_date for f in complete_folders_through(landing, day)} | {
        row[0] for row in loaded
    }


def landing_gap(con: duckdb.DuckDBPyConnection, landing: Path, day: dt.date) -> CheckResult:
    """Days missing between the first landed folder and `day`. The load takes every complete
    folder there is and skips a missing day without a word, so a night would send from a
    history with a hole in it: orders not counted, a lapse or an entry misjudged."""
    landed = landed_dates(con, landing, day)
    first = min(landed, default=day)
    # A gap released on an earlier night was named then; the later nights judge only what
    # came after it, or the same hole would block every night until it is filled.
    released_on = con.execute(
        "select max(business_date) from nightjar.approvals "
        "where check_name = ? and business_date < ?",
        [LANDING_GAP, day],
    ).fetchall()[0][0]
    since = max(first, released_on + dt.timedelta(days=1)) if released_on else first
    missing = missing_dates(landed, since, day - dt.timedelta(days=1))
    if not missing:
        return CheckResult(LANDING_GAP, True, f"every date from {first} to {day} has landed")
    return CheckResult(
        LANDING_GAP,
        False,
        f"{len(missing)} date(s) between the first landed folder ({first}) and {day} never "
        f"landed complete (no folder, or no _SUCCESS): {name_dates(missing)}. Their orders, "
        "contacts and events are not in the warehouse; land them and run again",
    )


def approvals(con: duckdb.DuckDBPyConnection, day: dt.date) -> set[str]:
    rows = con.execute(
        "select check_name from nightjar.approvals where business_date = ?", [day]
    ).fetchall()
    return {row[0] for row in rows}


# What Nightjar has recorded before a night (sending_history)
FIRST_NIGHT = "first night"  # nothing at all: no ledger row, no cohort history
BASELINE_NIGHT = "baseline night"  # only this very date's baseline: the baseline run again
LATER_NIGHT = "later night"

BASELINE_NOTE = "current on the baseline night: served before Nightjar, never sent"


@dataclass(frozen=True)
class Refusal:
    """Why a night may not send whatever the checks say, and the runs that would."""

    reason: str
    remedies: tuple[tuple[str, str], ...]  # (flags for nightjar run, what that run does)


def sending_history(con: duckdb.DuckDBPyConnection, day: dt.date) -> str:
    """FIRST_NIGHT, BASELINE_NIGHT or LATER_NIGHT. A dry run and SendGrid's sandbox record
    nothing, so a night after them is still the first."""
    ledger, baselined_today, snapshots, snapshots_today = con.execute(
        """
        select
            (select count(*) from nightjar.send_ledger),
            (select count(*) from nightjar.send_ledger
                where status = 'baseline' and business_date = $day),
            (select count(*) from nightjar.cohort_snapshots),
            (select count(*) from nightjar.cohort_snapshots where business_date = $day)
        """,
        {"day": day},
    ).fetchall()[0]
    if ledger == 0 and snapshots == snapshots_today:
        # Nothing, or only tonight's cohort history: a first night that failed before its
        # first ledger row is still a first night (and still does what it is told).
        return FIRST_NIGHT
    if ledger == baselined_today and snapshots == snapshots_today:
        return BASELINE_NIGHT
    return LATER_NIGHT


def first_night_refusal(con: duckdb.DuckDBPyConnection) -> Refusal:
    (messages,) = con.execute(
        "select count(*) from main.send_decisions where decision = 'send'"
    ).fetchall()[0]
    return Refusal(
        "this is Nightjar's first night (the send ledger and the cohort history are empty), "
        f"so it would message every current member of every cohort, {messages:,} message(s), "
        "however old their occasion: everyone who lapsed at any time in the history, for one.",
        (
            (
                " --baseline",
                "records every current occasion as served and messages no one; from the "
                "next night on only new occasions are sent",
            ),
            (" --send-backlog", "sends to every current member tonight"),
        ),
    )


_NIGHTJAR_SEND_ID = "[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def traces_of_a_lost_state(con: duckdb.DuckDBPyConnection, settings: Settings) -> list[str]:
    """What outlives the state and says Nightjar sent or recorded nights before: SendGrid's
    events of its messages (a send_id of the form Nightjar gives, a version-5 UUID:
    senders/ledger.send_id), the outbox's files, and the nights the landing saw a state record
    (pipelines/landing.NIGHTS_RECORDED) that this state does not hold. With the ledger and
    the cohort history empty, any of them means the state was lost (or NIGHTJAR_STATE or
    NIGHTJAR_WAREHOUSE name the wrong file), not a first night."""
    traces = []
    sent, last = con.execute(
        "select count(distinct send_id), max(event_timestamp)::date "
        "from raw.sendgrid_events where regexp_full_match(send_id, ?)",
        [_NIGHTJAR_SEND_ID],
    ).fetchall()[0]
    if sent:
        traces.append(
            f"SendGrid has reported events for {sent:,} message(s) Nightjar sent (the last "
            f"on {last})"
        )
    written = sorted(f for f in list_folders(settings.outbox) if any(f.path.glob("*.jsonl")))
    if written:
        traces.append(
            f"the outbox holds messages of {len(written)} night(s) (the last "
            f"{written[-1].business_date})"
        )
    held = con.execute("select business_date from nightjar.night_metrics").fetchall()
    forgotten = sorted(nights_recorded(settings.landing) - {row[0] for row in held})
    if forgotten:
        traces.append(
            f"the landing saw a state record {len(forgotten)} night(s) this one does not hold "
            f"(the last {forgotten[-1]})"
        )
    return traces


def lost_state_refusal(settings: Settings, traces: list[str]) -> Refusal:
    # --send-backlog (or NIGHTJAR_FIRST_NIGHT=send_backlog) would mail these people again.
    return Refusal(
        f"the send ledger is empty, but {'; '.join(traces)}: the state was lost or "
        f"NIGHTJAR_STATE names another file ({settings.state_path}). Restore the last backup "
        "before any run (nightjar state import --from DIR); sending the backlog would mail "
        "them again.",
        (
            (
                " --baseline",
                "only if no backup exists: records every current occasion as served and "
                "messages no one",
            ),
        ),
    )


def late_flag_refusal(con: duckdb.DuckDBPyConnection, baseline: bool) -> Refusal:
    (since,) = con.execute(
        """
        select min(business_date) from (
            select business_date from nightjar.send_ledger
            union all
            select business_date from nightjar.cohort_snapshots
        )
        """
    ).fetchall()[0]
    # Ignoring --baseline would send, the opposite of what was asked; ignoring --send-backlog
    # would leave baselined occasions unsent, not what was asked either.
    flag = "--baseline" if baseline else "--send-backlog"
    return Refusal(
        f"{flag} applies to a first night only, and Nightjar has sent or recorded nights "
        f"since {since}.",
        (("", "sends tonight's occasions; those already sent or baselined stay so"),),
    )


def blocked_message(day: dt.date, blocked: list[CheckResult], refusal: Refusal | None) -> str:
    approve = "".join(f" --approve {r.name}" for r in blocked)
    checks = "\n".join(f"  - {r.name}: {r.detail}" for r in blocked)
    if refusal is None:
        return (
            f"Sending for {day} is blocked by {len(blocked)} check(s); nothing was sent, the "
            f"warehouse is built.\n{checks}\nIf the change is real, release it: "
            f"nightjar run --date {day}{approve}"
        )
    text = (
        f"Sending for {day} is refused: {refusal.reason} Nothing was sent or recorded; the "
        "warehouse is built."
    )
    if blocked:
        text += f"\nBlocked as well by {len(blocked)} check(s):\n{checks}"
    runs = [
        (f"nightjar run --date {day}{flags}{approve}", what) for flags, what in refusal.remedies
    ]
    width = max(len(command) for command, _ in runs)
    choose = "Choose one, and run again:" if len(runs) > 1 else "Run again:"
    return "\n".join([text, choose, *(f"  {c:<{width}}  {what}" for c, what in runs)])


def record_baseline(con: duckdb.DuckDBPyConnection, campaigns: list[Campaign], day: dt.date) -> int:
    """Record the occasion of every member of every cohort tonight as `baseline`, without
    messaging anyone: each began before Nightjar, so from the next night on only occasions
    that begin then are sent. Every decision, not only 'send': an opted-out member who opts
    in next month is not owed a message for a lapse of years ago either. Erased contacts
    are never messaged and get no row. Returns how many were recorded."""
    (built_for,) = con.execute("select max(as_of_date) from main.send_decisions").fetchall()[0]
    if built_for is not None and built_for != day:
        raise Failure(
            description=f"send_decisions was built for {built_for}, not {day}: materialize "
            f"the warehouse for {day} before recording its baseline."
        )
    rows = con.execute(
        """
        select campaign, contact_id, occasion from main.send_decisions
        where decision <> 'deleted' and campaign in (select unnest($campaigns::varchar[]))
        """,
        {"campaigns": [c.name for c in campaigns]},
    ).fetchall()
    # No message, no channel, no variant, no send time. An occasion the ledger holds
    # already (the baseline night run again) keeps its row.
    Ledger(con).plan(
        ((send_id(*row), *row, None, None) for row in rows), day, "none", "baseline", BASELINE_NOTE
    )
    return len(rows)


def first_night_plan(
    con: duckdb.DuckDBPyConnection, nightjar: NightjarResource, settings: Settings, day: dt.date
) -> tuple[bool, Refusal | None, str]:
    """(record a baseline tonight, why tonight may not send, what the metadata says)."""
    try:
        policy = nightjar.first_night_policy(settings)
    except ValueError as error:
        raise Failure(description=str(error)) from None
    history = sending_history(con, day)
    if history == FIRST_NIGHT:
        traces = traces_of_a_lost_state(con, settings)
        if traces and policy != "baseline":
            return False, lost_state_refusal(settings, traces), "state lost"
        refusal = first_night_refusal(con) if policy == "refuse" else None
        return policy == "baseline", refusal, policy
    if history == BASELINE_NIGHT:
        # The baseline run again (after a failure, or by the same command): it records the
        # members it missed and still messages no one, whatever the flags say.
        return True, None, "baseline (run again)"
    if nightjar.baseline or nightjar.send_backlog:
        return False, late_flag_refusal(con, nightjar.baseline), "not a first night"
    return False, None, "no"


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
        "passed, the mailable share of contacts or the total spend drops by more than 20%, "
        "there are no contacts at all, or a date between the first landed folder and this "
        "one never landed (landing_gap). Release a check with `nightjar run --date D "
        "--approve CHECK` (recorded in nightjar.approvals). On a first night (nothing ever "
        "sent) it refuses to send unless told `--baseline` (record every current occasion as "
        "served, message no one) or `--send-backlog` (NIGHTJAR_FIRST_NIGHT).",
    )
    def _send_checks(
        context: AssetExecutionContext, nightjar: NightjarResource
    ) -> MaterializeResult:
        settings = nightjar.settings()
        day = dt.date.fromisoformat(context.partition_key)
        # with PostgreSQL's state: pulled first, the approvals and metrics pushed after
        with state_synced(settings), connect(settings.warehouse) as con:
            ensure_schema(con)
            skipped = past_date_reason(con, settings, day)
            if skipped:  # nothing will be sent: nothing to guard, nothing to record
                return MaterializeResult(metadata={"skipped_reason": skipped})
            results = [
                *run_checks(con, settings, campaigns, day),
                landing_gap(con, settings.landing, day),
            ]
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
            baseline, refusal, first_night = first_night_plan(con, nightjar, settings, day)
            metadata = {f"check_{r.name}": ("pass" if r.passed else "fail") for r in results}
            metadata["released"] = ", ".join(sorted(released)) or "none"
            metadata["first_night"] = first_night
            if (blocked or refusal) and not nightjar.dry_run:
                raise Failure(description=blocked_message(day, blocked, refusal), metadata=metadata)
            for r in blocked:
                context.log.warning(f"dry run: sending would be blocked by {r.name}: {r.detail}")
            if refusal:
                context.log.warning(f"dry run: sending would be refused: {refusal.reason}")
            if nightjar.dry_run:
                if baseline:
                    context.log.warning(
                        "dry run: a real run records tonight's occasions as the baseline and "
                        "messages no one; the counts below are what --send-backlog would send"
                    )
                return MaterializeResult(metadata=metadata)
            if baseline and not make_sender(settings).records_sends:
                # SendGrid's sandbox is a rehearsal: it writes nothing to the ledger.
                context.log.warning(
                    "SendGrid sandbox: the baseline is not recorded (a rehearsal records "
                    "nothing), so the sandbox gets every current member's message and "
                    "delivers none; the real run with --baseline sends none"
                )
                baseline = False
            contacts, mailable, spend = _metrics(con)
            # The baseline and the gate's pass are one: a night that passed always has it.
            with transaction(con):
                if baseline:
                    metadata["baseline_recorded"] = record_baseline(con, campaigns, day)
                con.execute(
                    "insert or replace into nightjar.night_metrics values (?, ?, ?, ?)",
                    [day, contacts, mailable, spend],
                )
            # The landing's note that a state recorded this night: beside an empty state, it
            # tells a lost (or mistaken) state from a first night (traces_of_a_lost_state).
            record_night(settings.landing, day)
        return MaterializeResult(metadata=metadata)

    return _send_checks
