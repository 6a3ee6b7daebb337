"""A bad night changes nothing a customer could notice: yesterday's tables stay, nothing is
sent; a few bad rows are quarantined and the night goes on."""

from __future__ import annotations

import pytest

from tests.support.corpus import CASES, good_folder
from tests.support.landing import contact, order, write_folder

YESTERDAY, TODAY = "2025-11-19", "2025-11-20"
KEPT_TABLES = ("customer_360", "cohort_loyalty", "journey_winback", "cohort_birthday",
               "send_decisions", "nightjar.send_ledger", "nightjar.journey_instances")  # fmt: skip


def snapshot(workspace) -> dict[str, list]:
    return {t: sorted(map(str, workspace.query(f"select * from {t}"))) for t in KEPT_TABLES}


def told_at_the_end(capsys, cause: str) -> str:
    """The last five lines the night printed name its cause (the summary comes first on
    stdout, then the failure on stderr); returns stderr."""
    printed = capsys.readouterr()
    lines = printed.out.splitlines() + printed.err.splitlines()
    assert cause in "\n".join(lines[-5:]), "\n".join(lines[-5:])
    return printed.err


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
    told_at_the_end(capsys, "orders.csv: 399 rows, fewer than the 400 the exporter recorded")
    assert snapshot(workspace) == before
    assert not (workspace.outbox / TODAY).exists()


@pytest.mark.slow  # 3 nights: make test-slow keeps make test within ten minutes
def test_a_dbt_build_failing_half_way_publishes_nothing(workspace, dbt_fails_half_way, capsys):
    good_folder(workspace.landing, YESTERDAY)
    assert workspace.run(YESTERDAY) == 0
    before = snapshot(workspace)

    newcomers = [contact(f"n{i:03d}", updated_at=f"{TODAY}T01:00:00Z") for i in range(5)]
    orders = [order(f"on{i:03d}", f"n{i:03d}", f"{TODAY}T09:00:00Z", "2000") for i in range(5)]
    write_folder(workspace.landing, TODAY, contacts=newcomers, orders=orders)
    dbt_fails_half_way(True)
    assert workspace.run(TODAY) == 1
    told_at_the_end(capsys, "send_decisions")
    # dbt did build tonight's customer_360, on the side ...
    assert workspace.query("select count(*) from build.customer_360") == [(405,)]
    # ... but what readers see is yesterday's, whole.
    assert snapshot(workspace) == before
    assert workspace.query("select count(*) from customer_360") == [(400,)]
    assert not (workspace.outbox / TODAY).exists()
    # Nor can a selection of models (as picked in the UI) publish what stands on that build.
    assert "The last dbt build was not published" in _materialize_only("cohort_loyalty", TODAY)
    assert snapshot(workspace) == before

    dbt_fails_half_way(False)
    assert workspace.run(TODAY) == 0
    assert workspace.query("select count(*) from customer_360") == [(405,)]
    assert len(workspace.outbox_lines(TODAY, "loyalty")) == 5


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


@pytest.mark.slow  # several nights: make test-slow (.ci/run)
def test_a_40_percent_cohort_jump_blocks_sending_until_released(workspace, capsys):
    from pipelines.cli import main

    good_folder(workspace.landing, YESTERDAY)  # 400 big spenders: all in loyalty
    assert workspace.run(YESTERDAY) == 0
    newcomers = [contact(f"n{i:03d}", updated_at=f"{TODAY}T01:00:00Z") for i in range(160)]
    orders = [order(f"on{i:03d}", f"n{i:03d}", f"{TODAY}T09:00:00Z", "2000") for i in range(160)]
    write_folder(workspace.landing, TODAY, contacts=newcomers, orders=orders)

    assert main(["run", "--date", TODAY]) == 1
    err = told_at_the_end(capsys, "cohort_loyalty has 560 members, +40%")
    assert f"Sending for {TODAY} is blocked by 1 check(s); nothing was sent" in err
    assert "cohort_loyalty has 560 members, +40% against 400 on 2025-11-19 (at most ±30%)" in err
    assert f"nightjar run --date {TODAY} --approve cohort_size:cohort_loyalty" in err
    assert not (workspace.outbox / TODAY).exists()
    assert workspace.query("select count(*) from cohort_loyalty") == [(560,)]  # built, not sent

    assert main(["run", "--date", TODAY, "--approve", "cohort_size:cohort_loyalty"]) == 0
    assert len(workspace.outbox_lines(TODAY, "loyalty")) == 160  # the newcomers' welcome
    ((check, by),) = workspace.query("select check_name, approved_by from nightjar.approvals")
    assert check == "cohort_size:cohort_loyalty" and by.startswith("nightjar run by ")


def test_a_folder_dated_in_the_future_stops_the_night(workspace, capsys):
    import datetime as dt

    good_folder(workspace.landing, YESTERDAY)
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    good_folder(workspace.landing, tomorrow)
    assert workspace.run(YESTERDAY) == 1
    told_at_the_end(capsys, f"is dated {tomorrow}, a day that has not ended yet")
    assert workspace.query("select count(*) from raw.loaded_files") == [(0,)]


def test_no_contacts_at_all_blocks_sending(workspace):
    import datetime as dt

    from assets.sends.gate import run_checks
    from assets.shared.warehouse import connect, ensure_schema
    from models.settings import load_settings

    with connect(workspace.warehouse) as con:
        ensure_schema(con)
        con.execute(
            "create table main.customer_360 (is_mailable boolean, total_spend decimal(18, 4))"
        )
        (result,) = run_checks(con, load_settings(), [], dt.date(2025, 11, 20))
    assert (result.name, result.passed, result.detail) == (
        "no_contacts", False, "0 contacts in customer_360"
    )  # fmt: skip


@pytest.mark.slow  # two nights: make test-slow keeps make test within ten minutes
def test_spend_collapsing_overnight_blocks_sending(workspace, capsys):
    good_folder(workspace.landing, YESTERDAY)
    assert workspace.run(YESTERDAY) == 0
    # a quarter of all orders "refunded" at once: an export bug far more often than not
    refunds = [
        order(f"o{i:04d}", f"c{i:04d}", f"{YESTERDAY}T10:00:00Z", "1500.00", status="refunded",
              updated_at=f"{TODAY}T02:00:00Z")
        for i in range(100)
    ]  # fmt: skip
    write_folder(workspace.landing, TODAY, contacts=[contact("c0000")], orders=refunds)
    assert workspace.run(TODAY) == 1
    err = told_at_the_end(capsys, "total spend 450,000.00, was 600,000.00 on 2025-11-19")
    assert "--approve total_spend" in err


def test_a_model_picked_in_the_ui_is_built_without_the_others(workspace, dbt_fails_half_way):
    good_folder(workspace.landing, TODAY)
    assert workspace.run(TODAY) == 0
    dbt_fails_half_way(True)  # send_decisions' SQL now fails; only cohort_loyalty is picked
    result = _materialize("cohort_loyalty", TODAY)
    assert result.success
    assert [m.asset_key.path[-1] for m in result.asset_materializations_for_node(
        "warehouse_models"
    )] == ["cohort_loyalty"]  # fmt: skip


def _materialize(model: str, day: str):
    """Materialize one dbt model as the UI does."""
    from dagster import AssetKey, AssetSelection, DagsterInstance, materialize

    from pipelines.definitions import defs

    return materialize(
        [defs.get_assets_def(AssetKey(model))],
        selection=AssetSelection.assets(AssetKey(model)),
        partition_key=day,
        instance=DagsterInstance.ephemeral(),
        resources=defs.resources,
        raise_on_error=False,
    )


def _materialize_only(model: str, day: str) -> str:
    """Materialize one dbt model as the UI does; returns the failure's description."""
    result = _materialize(model, day)
    (failure,) = [e.step_failure_data for e in result.all_events if e.is_step_failure]
    return failure.user_failure_data.description


def test_a_catch_up_keeps_the_batches_before_a_faulty_folder(workspace, monkeypatch):
    import datetime as dt

    import pytest

    import assets.ingest.extracts
    from models.extracts import ExtractError
    from models.settings import load_settings

    monkeypatch.setattr(
        assets.ingest.extracts, "FOLDERS_PER_CHUNK", 1
    )  # one folder per transaction
    gone = contact("gone", email="gone@example.com", is_deleted="true")
    write_folder(workspace.landing, "2025-11-18", contacts=[contact("c1"), gone])
    write_folder(workspace.landing, "2025-11-19", contacts=[contact("c2")])
    faulty = write_folder(workspace.landing, TODAY, contacts=[contact("c3")])
    (faulty / "_SUCCESS").write_text("crm_contacts.csv 5\n")  # 5 rows exported, 1 landed

    def ingest():
        return assets.ingest.extracts.ingest_extract(
            load_settings(), "crm_contacts", dt.date(2025, 11, 20)
        )

    with pytest.raises(ExtractError, match="truncated"):
        ingest()
    loaded = "select business_date from raw.loaded_files order by 1"
    assert [str(row[0]) for row in workspace.query(loaded)] == ["2025-11-18", YESTERDAY]
    assert workspace.ids("raw.crm_contacts") == {"c1", "gone", "c2"}  # nothing of the faulty file
    # an erasure in a batch that stayed loaded takes effect tonight all the same
    assert workspace.query("select email from raw.crm_contacts where contact_id = 'gone'") == [
        (None,)
    ]
    (faulty / "_SUCCESS").write_text("crm_contacts.csv 1\n")  # exported again
    assert ingest().dates == [dt.date(2025, 11, 20)]  # the next run goes on from there
    assert workspace.ids("raw.crm_contacts") == {"c1", "gone", "c2", "c3"}


@pytest.mark.parametrize("next_chunk", ["valid", "refused"])
def test_a_chunk_whose_write_fails_stops_the_catch_up_there(workspace, monkeypatch, next_chunk):
    """The next chunk is checked while DuckDB writes one: a write that fails is the night's
    error (even when the next chunk is refused meanwhile), nothing after it is written, and
    the chunks before it stay loaded."""
    import datetime as dt

    import duckdb

    import assets.ingest.extracts
    from models.settings import load_settings

    monkeypatch.setattr(assets.ingest.extracts, "FOLDERS_PER_CHUNK", 1)
    for n, day in enumerate(("2025-11-17", "2025-11-18", YESTERDAY, TODAY)):
        write_folder(workspace.landing, day, contacts=[contact(f"c{n}")])
    if next_chunk == "refused":
        (workspace.landing / YESTERDAY / "_SUCCESS").write_text("crm_contacts.csv 5\n")
    replace_rows = assets.ingest.extracts._replace_rows

    def fails_on_the_18th(con, extract, chunk, checked):
        if chunk[0].business_date == dt.date(2025, 11, 18):
            con.execute("insert into raw.loaded_files (business_date) values (null)")
        replace_rows(con, extract, chunk, checked)

    def ingest():
        return assets.ingest.extracts.ingest_extract(
            load_settings(), "crm_contacts", dt.date(2025, 11, 20)
        )

    monkeypatch.setattr(assets.ingest.extracts, "_replace_rows", fails_on_the_18th)
    with pytest.raises(duckdb.ConstraintException, match="NOT NULL") as failed:
        ingest()
    if next_chunk == "refused":  # told beside it, not as its cause
        assert failed.value.__cause__ is None and failed.value.__suppress_context__
        (note,) = failed.value.__notes__
        assert "failed too" in note and "truncated" in note
    assert workspace.ids("raw.crm_contacts") == {"c0"}
    loaded = "select business_date from raw.loaded_files order by 1"
    assert [str(row[0]) for row in workspace.query(loaded)] == ["2025-11-17"]

    monkeypatch.setattr(assets.ingest.extracts, "_replace_rows", replace_rows)
    (workspace.landing / YESTERDAY / "_SUCCESS").write_text("")
    summary = ingest()
    assert [str(d) for d in summary.dates] == ["2025-11-18", YESTERDAY, TODAY]
    assert summary.rows == 3
    assert workspace.ids("raw.crm_contacts") == {"c0", "c1", "c2", "c3"}
