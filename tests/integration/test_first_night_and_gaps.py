"""A first production night does not mail whole cohorts unless told to, and a day missing from
the landing's history blocks the send instead of being skipped without a word."""

from __future__ import annotations

import datetime as dt

import pytest

from models.freshness import lateness
from tests.support.landing import contact, write_folder
from tests.support.scenario import NEXT_DAY, D, suppress, write_all, write_next_day

# The campaigns and the journeys (docs/contract.md §15): what may send on a night.
CAMPAIGNS = (
    "loyalty", "birthday", "welcome", "abandoned_cart", "winback", "vip",
    "first_order_anniversary", "first_purchase_followup",
)  # fmt: skip
NOTHING = {c: [] for c in CAMPAIGNS}
# Every current member of the planted landing's cohorts and journeys' first steps: what a
# first night's backlog sends (`loyal` enters vip too, but loyalty outranks it that night).
BACKLOG = {
    **NOTHING,
    "loyalty": ["guest_buyer", "loyal"],
    "winback": ["lapsed", "lapsed_after_refund"],
    "birthday": ["00017", "bday", "zoe"],
}


@pytest.fixture
def production(workspace, monkeypatch):
    """A workspace as an installation has it: no first-night policy set (tests set one)."""
    monkeypatch.setenv("NIGHTJAR_FIRST_NIGHT", "")
    return workspace


def plant(workspace) -> None:
    """The planted landing of tests/support/scenario.py: history on 2025-11-19, then D."""
    write_all(workspace.landing)
    suppress(workspace.warehouse, "suppressed@example.com")


def sent(workspace, day: str) -> dict[str, list[str]]:
    return {c: [m["contact_id"] for m in workspace.outbox_lines(day, c)] for c in CAMPAIGNS}


def failures(result) -> str:
    """The descriptions of a Dagster run's failed steps, one after the other."""
    return "\n".join(
        e.step_failure_data.user_failure_data.description
        for e in result.all_events
        if e.is_step_failure and e.step_failure_data.user_failure_data
    )


@pytest.mark.slow  # several nights: make test-slow keeps make test within ten minutes
def test_a_first_night_sends_nothing_until_told_and_a_baseline_then_sends_only_new_occasions(
    production, capsys
):
    plant(production)
    assert production.run(D) == 1
    err = capsys.readouterr().err
    assert f"Sending for {D} is refused: this is Nightjar's first night" in err
    assert f"nightjar run --date {D} --baseline " in err
    assert f"nightjar run --date {D} --send-backlog " in err
    assert not (production.outbox / D).exists()
    assert production.query("select count(*) from nightjar.send_ledger") == [(0,)]
    assert production.query("select count(*) from nightjar.cohort_membership") == [(0,)]
    assert production.query("select count(*) from nightjar.night_metrics") == [(0,)]
    # the warehouse is built and published all the same
    assert production.ids("journey_winback") == {"lapsed", "lapsed_after_refund"}
    # A dry run warns of it, and goes on counting what --send-backlog would send.
    result = production.run_with(D, dry_run=True)
    assert result.success, failures(result)
    (gate,) = [
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["send_checks"]
    ]
    assert gate["first_night"].value == "refuse"
    assert production.query("select count(*) from nightjar.send_ledger") == [(0,)]

    # Still a first night, then, for either way on: a baseline messages no one and the next
    # night sends only new occasions.
    result = production.run_with(D, baseline=True)
    assert result.success, failures(result)
    assert sent(production, D) == NOTHING
    ledger = production.query("select campaign, contact_id, status from nightjar.send_ledger")
    assert {status for _, _, status in ledger} == {"baseline"}
    # every member's occasion, mailable or not (an erased contact gets no row)
    members = production.query(
        "select campaign, contact_id from send_decisions where decision <> 'deleted'"
    )
    assert {(c, k) for c, k, _ in ledger} == set(members)
    assert {("winback", "lapsed"), ("loyalty", "loyal_opted_out")} <= set(members)
    # the cohorts are recorded as on any night: tomorrow judges who enters against them; a
    # journey records its entrants as its instances
    assert production.ids("nightjar.cohort_membership") >= {"loyal", "bday"}
    assert production.query(
        "select contact_id from nightjar.journey_instances where journey = 'winback' order by 1"
    ) == [("lapsed",), ("lapsed_after_refund",)]

    # Run again (by hand, without the flag): still the baseline night, no message.
    assert production.run(D) == 0
    assert sent(production, D) == NOTHING

    write_next_day(production.landing)
    assert production.run(NEXT_DAY) == 0  # not a first night: no flag needed
    assert sent(production, NEXT_DAY) == {
        **NOTHING,  # winback's lapses and loyal's vip entry were recorded by the baseline
        "loyalty": ["lapsed"],  # entered loyalty by buying again
        "birthday": ["bday_tomorrow"],  # a birthday that is new tonight
    }
    decisions = dict(
        production.query(
            "select campaign || ':' || contact_id, decision from send_decisions "
            "where contact_id in ('loyal', 'lapsed_after_refund')"
        )
    )
    assert decisions == {"loyalty:loyal": "baseline"}
    # a journey instance whose occasion the baseline recorded exits, with no step due
    assert production.query(
        "select status, end_reason from nightjar.journey_instances "
        "where journey = 'winback' and contact_id = 'lapsed_after_refund'"
    ) == [("exited", "baseline")]


@pytest.mark.slow  # three nights: make test-slow keeps make test within ten minutes
def test_send_backlog_sends_the_first_night_as_before_and_baseline_is_refused_later(production):
    plant(production)
    result = production.run_with(D, send_backlog=True)
    assert result.success, failures(result)
    assert sent(production, D) == BACKLOG
    assert production.query(
        "select count(*) from nightjar.send_ledger where status = 'baseline'"
    ) == [(0,)]

    # --baseline on a later night would hide nothing: refused, rather than sending anyway.
    write_next_day(production.landing)
    result = production.run_with(NEXT_DAY, baseline=True)
    assert not result.success
    assert "--baseline applies to a first night only" in failures(result)
    assert f"nightjar run --date {NEXT_DAY} " in failures(result)
    assert sent(production, NEXT_DAY) == NOTHING
    # ... and so would --send-backlog, which cannot send what a baseline recorded as served.
    result = production.run_with(NEXT_DAY, send_backlog=True)
    assert not result.success
    assert "--send-backlog applies to a first night only" in failures(result)


@pytest.mark.slow  # a night or more after the first: make test-slow
def test_a_first_night_that_failed_before_its_first_message_still_sends_its_backlog(
    production, monkeypatch
):
    """Killed after its cohort history was recorded and before the ledger's first row, a
    --send-backlog night run again sends the backlog: it does not turn into a baseline."""
    from senders.ledger import Ledger

    plant(production)
    real_plan = Ledger.plan_frame  # every row reaches the ledger through it

    def killed(*args, **kwargs):
        raise RuntimeError("killed before the first message")

    monkeypatch.setattr(Ledger, "plan_frame", killed)
    result = production.run_with(D, send_backlog=True)
    assert "killed before the first message" in str(result.all_events)
    assert production.query("select count(*) from nightjar.cohort_snapshots")[0][0] > 0
    assert production.query("select count(*) from nightjar.send_ledger") == [(0,)]
    monkeypatch.setattr(Ledger, "plan_frame", real_plan)

    result = production.run_with(D, send_backlog=True)
    assert result.success, failures(result)
    assert sent(production, D) == BACKLOG


@pytest.mark.slow  # a night or more after the first: make test-slow
def test_a_lost_state_mails_no_one_again_even_told_to_send_a_first_nights_backlog(
    production, monkeypatch, capsys
):
    """NIGHTJAR_FIRST_NIGHT=send_backlog may stay in .env long after the first night; the
    state file lost later, the outbox and the warehouse still say what was sent."""
    monkeypatch.setenv("NIGHTJAR_FIRST_NIGHT", "send_backlog")
    plant(production)
    assert production.run(D) == 0
    before = sent(production, D)
    assert any(before.values())
    write_next_day(production.landing)
    production.state.unlink()  # and no backup

    capsys.readouterr()
    assert production.run(NEXT_DAY) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert (
        f"the send ledger is empty, but the outbox holds messages of 1 night(s) (the last {D}); "
        f"the landing saw a state record 1 night(s) this one does not hold (the last {D}): "
        "the state was lost"
    ) in err
    assert not (production.outbox / NEXT_DAY).exists()
    assert sent(production, D) == before


@pytest.mark.slow  # several nights: make test-slow keeps make test within ten minutes
def test_a_missing_middle_folder_blocks_the_send_naming_the_dates_until_released(workspace, capsys):
    from pipelines.cli import main

    write_folder(workspace.landing, "2025-11-16", contacts=[contact("early")])
    write_folder(workspace.landing, "2025-11-17", contacts=[contact("half")], complete=False)
    # 2025-11-18: no folder at all
    plant(workspace)  # 2025-11-19 and 2025-11-20
    assert main(["run", "--date", D]) == 1
    err = capsys.readouterr().err
    assert (
        f"landing_gap: 2 date(s) between the first landed folder (2025-11-16) and {D} never "
        "landed complete (no folder, or no _SUCCESS): 2025-11-17, 2025-11-18." in err
    )
    assert f"nightjar run --date {D} --approve landing_gap" in err
    assert not (workspace.outbox / D).exists()
    assert workspace.ids("customer_360") >= {"early", "loyal"}  # built, not sent

    assert main(["run", "--date", D, "--approve", "landing_gap"]) == 0
    assert sent(workspace, D)["loyalty"] == ["guest_buyer", "loyal"]
    ((check, by),) = workspace.query("select check_name, approved_by from nightjar.approvals")
    assert check == "landing_gap" and by.startswith("nightjar run by ")

    # Released once, the same hole does not block every later night.
    write_next_day(workspace.landing)
    assert main(["run", "--date", NEXT_DAY]) == 0
    assert sent(workspace, NEXT_DAY)["loyalty"] == ["lapsed"]


def test_the_freshness_check_reports_gaps_over_the_whole_history(tmp_path):
    now = dt.datetime(2025, 11, 21, 9, tzinfo=dt.UTC)  # 2025-11-20 is due
    write_folder(tmp_path, "2025-11-01")
    for day in range(14, 21):  # the last week landed; 12 days before it never did
        write_folder(tmp_path, f"2025-11-{day}")
    late = lateness(tmp_path, "orders", now, 6, "UTC")
    assert late.overdue == [] and not late.ok
    assert late.gaps == [dt.date(2025, 11, day) for day in range(2, 14)]
    assert (
        "Missing from the history: 2025-11-02, 2025-11-03, 2025-11-04, 2025-11-05, 2025-11-06, "
        "2025-11-07, 2025-11-08, 2025-11-09, 2025-11-10, 2025-11-11 and 2 more (12 date(s)"
    ) in late.describe(6, "UTC")
