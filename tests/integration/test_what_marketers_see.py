"""Issue 14, part 7: what a marketer reads. A cohort's and a send's materialization lead with
the night's figures in words, with a masked preview of their first 20 members; `nightjar
explain` says why each campaign messaged a contact or not. One night serves every test."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from dagster import FloatMetadataValue, IntMetadataValue

from pipelines.cli import main
from tests.support.landing import contact, order, write_folder
from tests.support.scenario import suppress

D = "2025-11-20"
# 25 lapsed buyers (the winback journey's entrants), the first of them suppressed; half the
# entrants held out
LAPSED = [f"lapsed_{n:02d}" for n in range(25)]
CONTACTS = ["loyal", "nobody", *LAPSED]
DBT_INTERNALS = {"Execution Duration", "unique_id", "invocation_id", "status", "dagster/row_count"}


@pytest.fixture(scope="module")
def night(module_workspace):
    workspace = module_workspace
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NIGHTJAR_DBT_VARS", "{holdout_share: 0.5}")
        write_folder(
            workspace.landing,
            D,
            contacts=[contact(c) for c in CONTACTS],
            orders=[order("o-loyal", "loyal", "2025-11-10T10:00:00Z", "1500")]
            + [order(f"o-{c}", c, "2025-04-01T10:00:00Z", "50") for c in LAPSED],
            events=[],
        )
        suppress(workspace.warehouse, "lapsed_00@example.com")
        result = workspace.run_with(D)
        assert result.success
        metadata = {
            event.asset_key.to_user_string(): event.materialization.metadata
            for event in result.get_asset_materialization_events()
        }
        yield workspace, result, metadata


def plotted(metadata) -> list[str]:
    return [k for k, v in metadata.items() if isinstance(v, IntMetadataValue | FloatMetadataValue)]


def preview_rows(markdown: str) -> list[list[str]]:
    rows = [line.strip("| ").split(" | ") for line in markdown.splitlines() if line[:2] == "| "]
    return [[cell.replace("\\", "") for cell in row] for row in rows[1:]]  # without the header


def test_a_cohort_and_a_send_lead_with_their_figures_in_words(night):
    _, _, metadata = night
    cohort, send = metadata["journey_winback"], metadata["send_winback"]
    assert list(cohort)[:5] == ["cohort size", "entered", "left", "compared with", "preview"]
    assert (cohort["cohort size"].value, cohort["entered"].value, cohort["left"].value) == (
        25,
        25,
        0,
    )
    assert not DBT_INTERNALS & set(cohort) and "vars" in cohort
    assert list(send)[:6] == ["cohort size", "sent", "held out", "suppressed", "failed", "preview"]
    figures = {k: send[k].value for k in ("sent", "held out", "suppressed", "failed")}
    assert sum(figures.values()) == 25 and figures["suppressed"] == 1 and figures["held out"]
    assert "vars" in send
    # Dagster plots every number under its name: words, never an id
    for asset in ("cohort_loyalty", "journey_winback", "send_loyalty", "send_winback"):
        assert all(re.fullmatch("[a-z ]+", label) for label in plotted(metadata[asset])), asset


def test_the_value_model_says_in_words_why_it_predicts_nothing(night):
    _, _, metadata = night
    fits = metadata["clv_fits"]
    # 26 buyers: too few to fit (var clv_min_buyers), and the UI says so
    assert fits["fit"].value == "too few buyers: no predictions"
    assert fits["buyers"].value == 26
    assert all(re.fullmatch("[a-z ]+", label) for label in set(plotted(fits)) - DBT_INTERNALS)


def test_previews_show_at_most_20_members_masked_and_agree_with_the_ledger(night):
    workspace, _, metadata = night
    cohort = metadata["journey_winback"]["preview"].value
    assert cohort.startswith("25 member(s): the first 20 by contact id")
    assert [row[0] for row in preview_rows(cohort)] == LAPSED[:20]
    assert {row[3] for row in preview_rows(cohort)} == {"yes"}  # all entered tonight
    send = preview_rows(metadata["send_winback"]["preview"].value)
    assert [row[0] for row in send] == LAPSED[:20]
    assert {row[1] for row in send} == {"l***@example.com"}
    ledger = dict(
        workspace.query(
            "select contact_id, status from nightjar.send_ledger where campaign = 'winback'"
        )
    )
    expected = {"sent": "accepted", "held out": "held_out", "suppressed": None}
    assert {contact_id: expected[decision] for contact_id, _, decision, _ in send} == {
        c: ledger.get(c) for c in LAPSED[:20]
    }
    assert {row[2] for row in send} == {"sent", "held out", "suppressed"}
    assert send[0][2] == "suppressed" and send[0][3].startswith("the address is suppressed (")
    # no full address anywhere in what the night recorded
    recorded = repr({key: {k: v.value for k, v in m.items()} for key, m in metadata.items()})
    assert "l***@example.com" in recorded
    assert not [c for c in CONTACTS if f"{c}@example.com" in recorded]


def test_the_terminal_summary_counts_the_same_figures(night, capsys):
    from pipelines.summary import print_summary

    _, result, metadata = night
    print_summary(result, D)
    out = capsys.readouterr().out
    held = metadata["send_winback"]["held out"].value
    assert "cohort_loyalty 1 (+1 -0)\n" in out
    assert f"send_winback: {24 - held} sent via outbox; not messaged: {held} holdout, " in out
    # a journey's entrants are counted in its steps tonight: all 25 entered, step 1 due
    assert f"| winback_1 | 25 | {24 - held} | {held} | suppressed 1 |" in out


def explain(capsys, contact_id: str, day: str = D) -> tuple[int, str, str]:
    code = main(["explain", "--date", day, "--contact", contact_id])
    out, err = capsys.readouterr()
    assert not [c for c in CONTACTS if f"{c}@example.com" in out + err]  # masked
    return code, out, err


def test_explain_says_each_campaigns_decision_for_a_contact_and_why(night, capsys):
    workspace, *_ = night
    code, out, _ = explain(capsys, "loyal")
    assert code == 0 and out.startswith(f"Contact loyal (l***@example.com) on {D}\n")
    assert "  loyalty: sent\n    cohort: in cohort_loyalty (occasion 2025-11-20)\n" in out
    assert "    reason: due and mailable; scheduled for " in out
    assert "    ledger: accepted, 1 attempt(s), business date 2025-11-20, no error" in out
    assert "  winback: no step due\n" in out  # a journey: no step of it due for loyal
    assert "its rule: Win-back: contacts with at least one completed purchase" in out

    held = workspace.query(
        "select min(contact_id) from nightjar.send_ledger where status = 'held_out'"
    )[0][0]
    code, out, _ = explain(capsys, held)
    assert code == 0 and "  winback: held out\n" in out
    assert "reason: in the campaign's control group" in out
    assert "send_decisions: decision holdout, variant none, send time none" in out
    # the ledger's note on a hold-out is its reason, not an error
    assert (
        "ledger: held_out, 0 attempt(s), business date 2025-11-20, "
        "reason: in the campaign's control group\n"
    ) in out

    code, out, _ = explain(capsys, "lapsed_00")
    assert "  winback: suppressed\n" in out
    assert "reason: the address is suppressed (suppressed by hand on " in out
    assert "ledger: nothing recorded for this occasion" in out

    code, out, _ = explain(capsys, "nobody")
    assert code == 0
    assert [line for line in out.splitlines() if not line.startswith("    ")] == [
        f"Contact nobody (n***@example.com) on {D}",
        "  customer view: mailable; no completed purchase, spent 0.00 in the last 730 days; "
        "birth date not on record",
        "  abandoned_cart: no step due",
        "  birthday: not in the cohort",
        "  first_order_anniversary: no step due",
        "  first_purchase_followup: no step due",
        "  loyalty: not in the cohort",
        "  vip: no step due",
        "  welcome: no step due",
        "  winback: no step due",
    ]


def test_explain_refuses_an_unknown_contact_or_date_in_one_sentence(night, capsys):
    from pipelines.run_lock import run_lock

    workspace, *_ = night
    code, out, err = explain(capsys, "ghost")
    assert code != 0 and out == ""
    assert err == (
        "nightjar explain: No contact 'ghost' in the warehouse: no loaded CRM extract has it "
        "and no night decided anything for it (contact ids compare exactly).\n"
    )
    code, out, err = explain(capsys, "loyal", "2025-11-19")
    assert code != 0 and out == ""
    assert err == (
        f"nightjar explain: No night ran for 2025-11-19 in this warehouse (its latest night "
        f"is {D}).\n"
    )
    # it reads the warehouse read-only: a run holding it does not stop it
    with run_lock(workspace.warehouse, dt.date.fromisoformat(D), 0):
        assert explain(capsys, "loyal")[0] == 0
