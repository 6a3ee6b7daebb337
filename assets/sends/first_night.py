"""A first night (nothing ever sent or recorded): every current member of every cohort
would be messaged, however old their occasion, so the send checks refuse to send until told
either to record a baseline (every current occasion served, no one messaged) or to send the
backlog. An empty state beside traces of nights sent is a lost state, not a first night.
Nothing here imports Dagster: the send checks (assets/sends/checks.py) turn a refusal into
the run's failure.
"""

import datetime as dt
from dataclasses import dataclass

import duckdb

from models.campaigns import Campaign
from models.landing import list_folders, nights_recorded
from models.settings import Settings
from senders.cohort import DecisionsNotCurrent
from senders.ledger import Ledger, send_id

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
    (models/landing.NIGHTS_RECORDED) that this state does not hold. With the ledger and
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
    # list_folders gives them oldest first
    written = [f for f in list_folders(settings.outbox) if any(f.path.glob("*.jsonl"))]
    if written:
        traces.append(
            f"the outbox holds messages of {len(written)} night(s) (the last "
            f"{written[-1].business_date})"
        )
    forgotten = forgotten_nights(con, settings)
    if forgotten:
        traces.append(
            f"the landing saw a state record {len(forgotten)} night(s) this one does not hold "
            f"(the last {forgotten[-1]})"
        )
    return traces


def forgotten_nights(con: duckdb.DuckDBPyConnection, settings: Settings) -> list[dt.date]:
    """The nights the landing saw a state record (models/landing.NIGHTS_RECORDED) that this
    state does not hold, oldest first."""
    held = con.execute("select business_date from nightjar.night_metrics").fetchall()
    return sorted(nights_recorded(settings.landing) - {row[0] for row in held})


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


def record_baseline(con: duckdb.DuckDBPyConnection, campaigns: list[Campaign], day: dt.date) -> int:
    """Record the occasion of every member of every cohort tonight as `baseline`, without
    messaging anyone: each began before Nightjar, so from the next night on only occasions
    that begin then are sent. Every decision, not only 'send': an opted-out member who opts
    in next month is not owed a message for a lapse of years ago either. Erased contacts
    are never messaged and get no row. Returns how many were recorded; DecisionsNotCurrent
    when send_decisions is another night's."""
    (built_for,) = con.execute("select max(as_of_date) from main.send_decisions").fetchall()[0]
    if built_for is not None and built_for != day:
        raise DecisionsNotCurrent(
            f"send_decisions was built for {built_for}, not {day}: materialize "
            f"the warehouse for {day} before recording its baseline."
        )
    rows = con.execute(
        """
        select campaign, contact_id, occasion, step from main.send_decisions
        where decision <> 'deleted' and campaign in (select unnest($campaigns::varchar[]))
        """,
        {"campaigns": [c.name for c in campaigns]},
    ).fetchall()
    # No message, no channel, no variant, no send time. An occasion the ledger holds
    # already (the baseline night run again) keeps its row. A journey step's baseline ends
    # its instance (journey_progress: end_reason baseline).
    Ledger(con).plan(
        ((send_id(*row[:3]), *row[:3], None, None, row[3]) for row in rows),
        day,
        "none",
        "baseline",
        BASELINE_NOTE,
    )
    return len(rows)


def first_night_plan(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    day: dt.date,
    policy: str,
    baseline_asked: bool,
    policy_asked: bool = False,
) -> tuple[bool, Refusal | None, str]:
    """(record a baseline tonight, why tonight may not send, what the metadata says), given
    the run's first night `policy` (refuse, baseline or send_backlog) and whether the run
    asked for a baseline or the backlog (nightjar run --baseline / --send-backlog)."""
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
    if baseline_asked or policy_asked:
        return False, late_flag_refusal(con, baseline_asked), "not a first night"
    return False, None, "no"
