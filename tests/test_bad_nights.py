"""A bad night changes nothing a customer could notice: yesterday's tables stay, nothing is
sent; a few bad rows are quarantined and the night goes on."""

from __future__ import annotations

from tests.corpus import CASES, good_folder

YESTERDAY, TODAY = "2025-11-19", "2025-11-20"
KEPT_TABLES = ("customer_360", "cohort_loyalty", "cohort_reactivation", "cohort_birthday",
               "send_decisions", "nightjar.send_ledger")  # fmt: skip


def snapshot(workspace) -> dict[str, list]:
    return {t: sorted(map(str, workspace.query(f"select * from {t}"))) for t in KEPT_TABLES}


def case(name: str):
    (found,) = [c for c in CASES if c.name == name]
    return found


def test_a_truncated_orders_file_fails_the_night_and_leaves_yesterday_as_it_was(workspace, capsys):
    good_folder(workspace.landing, YESTERDAY)
    assert workspace.run(YESTERDAY) == 0
    before = snapshot(workspace)
    assert before["customer_360"] and before["nightjar.send_ledger"]

    case("orders truncated").breaks(good_folder(workspace.landing, TODAY))
    assert workspace.run(TODAY) == 1
    err = capsys.readouterr().err
    assert "orders.csv: 399 rows, fewer than the 400 the exporter recorded" in err
    assert snapshot(workspace) == before
    assert not (workspace.outbox / TODAY).exists()


def test_one_bad_row_in_400_is_quarantined_and_the_night_goes_on(workspace, capsys):
    good_folder(workspace.landing, YESTERDAY)
    case("orders negative amount").breaks(good_folder(workspace.landing, TODAY))
    assert workspace.run(TODAY) == 0
    assert "orders 799 rows (2 folder(s)), 1 quarantined" in capsys.readouterr().out
    assert workspace.query(
        "select business_date::varchar, extract, source_row, column_name, value, action "
        "from raw.quarantine"
    ) == [(TODAY, "orders", 1, "total_amount", "-12.50", "row_quarantined")]
    # loaded + quarantined = rows read
    assert workspace.query("select count(*) from raw.orders where business_date = ?", [TODAY]) == [
        (399,)
    ]
