"""The send checks: sanity checks on the night's warehouse against the last night that passed
the gate (`nightjar.night_metrics`, `nightjar.cohort_snapshots`), and on the landing's
history. A night whose data looks wrong (a cohort that jumps, mailable contacts that vanish,
spend that collapses, no contacts at all, a day missing from the landing) is far more likely
a broken export than a real change; sending from it cannot be undone. Nothing here imports
Dagster: the send checks asset (assets/sends/checks.py) runs them and blocks the sends.
"""

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb

from assets.sends.first_night import Refusal, forgotten_nights
from models.campaigns import Campaign
from models.freshness import missing_dates, name_dates
from models.landing import complete_folders_through
from models.settings import Settings

# Cohorts (and warehouses) smaller than this the night before are not judged: 3 -> 5 is not
# a broken export.
MIN_TO_JUDGE = 50


@dataclass(frozen=True)
class CheckResult:
    name: str  # what --approve takes
    passed: bool
    detail: str


def night_metrics(con: duckdb.DuckDBPyConnection) -> tuple[int, int, float]:
    """(contacts, mailable contacts, total spend) in customer_360: what the gate compares
    with the last night that passed, and records for the next."""
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
    contacts, mailable, spend = night_metrics(con)
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
    released_on = _released_before(con, LANDING_GAP, day)
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


STATE_BEHIND = "state_behind"


def state_behind(con: duckdb.DuckDBPyConnection, settings: Settings, day: dt.date) -> CheckResult:
    """Nights the landing saw a state record (models/landing.NIGHTS_RECORDED) later than the
    last this state holds: a state restored from an older backup, or NIGHTJAR_STATE naming
    another file. Its ledger does not know what those nights sent, so this night would send
    it again. (An empty state is first_night.py's to judge.)"""
    (latest,) = con.execute("select max(business_date) from nightjar.night_metrics").fetchall()[0]
    if latest is None:
        return CheckResult(STATE_BEHIND, True, "no night recorded yet")
    later = [night for night in forgotten_nights(con, settings) if night > latest]
    if not later:
        return CheckResult(STATE_BEHIND, True, f"the state holds every night up to {latest}")
    return CheckResult(
        STATE_BEHIND,
        False,
        f"the state ({settings.state_path}) holds nights up to {latest}, but the landing saw a "
        f"state record {name_dates(later)} as well: this state is older than the nights "
        "that ran (restored from an older backup?), and what they sent would be sent again. "
        "Restore the latest backup (nightjar state import --from DIR); release this only if "
        "there is none",
    )


def journey_steps(
    con: duckdb.DuckDBPyConnection, campaigns: list[Campaign], day: dt.date
) -> list[CheckResult]:
    """Per journey, steps its active instances were sent that its YAML no longer names. A
    step is known by its name: a renamed step is a new one, and would go again to everyone
    who had it, with the steps after it; a removed one moves its instances on. Released once
    (journey_steps:<journey>), a journey is judged again only on what was sent after."""
    journeys = [c for c in campaigns if c.is_journey]
    released = {j.name: _released_before(con, f"journey_steps:{j.name}", day) for j in journeys}
    # one read of the ledger for every journey: at a million contacts it is the large table
    rows = con.execute(
        """
        select ledger.campaign, ledger.step, ledger.business_date, count(*)
        from nightjar.send_ledger as ledger
        inner join nightjar.journey_instances as instance
            on instance.journey = ledger.campaign
            and instance.contact_id = ledger.contact_id
            and ledger.occasion = instance.occasion || '#' || ledger.step
        where instance.status = 'active' and list_contains($journeys, ledger.campaign)
            and not list_contains($known, ledger.campaign || '#' || ledger.step)
        group by all
        """,
        {"journeys": [j.name for j in journeys],
         "known": [f"{j.name}#{s.name}" for j in journeys for s in j.steps]},
    ).fetchall()  # fmt: skip
    results = []
    for journey in journeys:
        name = f"journey_steps:{journey.name}"
        since = released[journey.name] or dt.date.min
        unknown: dict[str, int] = {}
        for campaign, step, sent_on, count in rows:
            if campaign == journey.name and sent_on > since:
                unknown[step] = unknown.get(step, 0) + count
        if not unknown:
            results.append(CheckResult(name, True, "every step sent is still defined"))
            continue
        steps = ", ".join(
            f"{step} ({count:,} active instance(s))" for step, count in sorted(unknown.items())
        )
        results.append(
            CheckResult(
                name,
                False,
                f"journey {journey.name}'s active instances had steps its YAML no longer "
                f"names: {steps}. A renamed step is a new step, and would go again to those "
                "who had it; name it as before, or release this if the step was removed",
            )
        )
    return results


def _released_before(con: duckdb.DuckDBPyConnection, check: str, day: dt.date) -> dt.date | None:
    """The last night before `day` on which `check` was released, if any."""
    return con.execute(
        "select max(business_date) from nightjar.approvals "
        "where check_name = ? and business_date < ?",
        [check, day],
    ).fetchall()[0][0]


def approvals(con: duckdb.DuckDBPyConnection, day: dt.date) -> set[str]:
    rows = con.execute(
        "select check_name from nightjar.approvals where business_date = ?", [day]
    ).fetchall()
    return {row[0] for row in rows}


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
