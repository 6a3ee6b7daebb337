"""Campaign results: what a marketer reads on the results assets after two nights, and the
nightly figures the other assets carry (cohort entries and exits, mailable contacts, a
masked preview, column types)."""

from __future__ import annotations

import datetime as dt
import struct

import pytest
from dagster import AssetKey, DagsterInstance

from models.lift import lift
from tests.support.landing import contact, land_events, order, write_folder

D, NEXT_DAY = "2025-11-20", "2025-11-21"
MEMBERS = [f"m{n:02d}" for n in range(40)]  # birthdays on D: the birthday cohort of D


def test_the_lift_interval_is_newcombes_hybrid_score_interval():
    # Newcombe (1998), Statistics in Medicine 17, table II, method 10.
    for (a, m, b, n), (low, high) in {
        (56, 70, 48, 80): (0.0524, 0.3339),
        (9, 10, 3, 10): (0.1705, 0.8090),
        (5, 56, 0, 29): (-0.0381, 0.1926),
        (0, 10, 0, 20): (-0.1611, 0.2775),
    }.items():
        result = lift(a, m, b, n)
        assert (round(result.low, 4), round(result.high, 4)) == (low, high)
        assert result.difference == pytest.approx(a / m - b / n)
    assert lift(3, 10, 0, 0) is None  # no control group: no lift to state


@pytest.fixture(scope="module")
def two_nights(module_workspace, tmp_path_factory):
    workspace = module_workspace
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("dagster_home")
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        mp.setenv("DAGSTER_HOME", str(home))  # materializations kept, as under `dagster dev`
        # a 1-day window: D's sends have had all of it by D+1
        mp.setenv("NIGHTJAR_DBT_VARS", "{holdout_share: 0.5, conversion_window_days: 1}")
        mp.setenv("NIGHTJAR_MAX_COHORT_CHANGE", "1")  # the birthday cohort empties on D+1
        members = [
            contact(m, birth_date="1990-11-20", updated_at="2025-11-19T08:00:00Z") for m in MEMBERS
        ]
        members[0]["first_name"] = "Zoë"
        write_folder(workspace.landing, "2025-11-19", members)
        write_folder(workspace.landing, D)
        assert workspace.run(D) == 0
        ledger = dict(workspace.query("select contact_id, status from nightjar.send_ledger"))
        messaged = sorted(c for c, s in ledger.items() if s == "accepted")
        held = sorted(c for c, s in ledger.items() if s == "held_out")
        assert len(messaged) + len(held) == 40 and len(held) >= 10 and len(messaged) >= 10
        sends = {m["contact_id"]: m["send_id"] for m in workspace.outbox_lines(D, "birthday")}
        stamp = int(dt.datetime(2025, 11, 21, 12, tzinfo=dt.UTC).timestamp())

        def events(names, who):
            return [
                {"event": name, "email": f"{c}@example.com", "timestamp": stamp,
                 "sg_event_id": f"{name}-{c}", "campaign": "birthday", "contact_id": c,
                 "send_id": sends[c]}
                for name in names for c in who
            ]  # fmt: skip

        land_events(
            workspace.landing,
            NEXT_DAY,
            events(["delivered"], messaged[1:])
            + events(["bounce"], messaged[:1])
            + events(["open"], messaged[1:6])
            + events(["open"], messaged[1:2])  # opened twice: one member who opened
            + events(["click"], messaged[1:3])
            + events(["unsubscribe"], messaged[5:6]),
        )
        at = "2025-11-21T15:00:00Z"
        write_folder(
            workspace.landing,
            NEXT_DAY,
            orders=[order(f"o-{c}", c, at, "30") for c in messaged[:6]]
            + [order(f"o2-{c}", c, at, "20") for c in messaged[:1]]  # two orders, one member
            + [order("o-refunded", messaged[7], at, "99", status="refunded")]
            + [order(f"o-{c}", c, at, "30") for c in held[:2]]
            + [order("o-before", held[3], "2025-11-20T15:00:00Z", "30")],  # before the window
        )
        assert workspace.run(NEXT_DAY) == 0
        yield workspace, home, messaged, held


def _latest(home, key: str) -> dict:
    with DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(AssetKey.from_user_string(key), limit=5).records
    by_date = {r.asset_materialization.partition: r.asset_materialization for r in records}
    return {k: v.value for k, v in by_date[NEXT_DAY].metadata.items()} | {
        "_previous": {k: v.value for k, v in by_date[D].metadata.items()} if D in by_date else {}
    }


def test_results_compare_the_messaged_group_with_the_holdout(two_nights):
    _, home, messaged, held = two_nights
    meta = _latest(home, "results_birthday")
    assert (meta["messaged"], meta["held_out"]) == (len(messaged), len(held))
    assert (meta["delivered"], meta["bounced"]) == (len(messaged) - 1, 1)
    assert (meta["opened"], meta["clicked"], meta["unsubscribed"]) == (5, 2, 1)
    # 6 messaged members bought after the send (one twice; a refund does not count), 2 of
    # the control group (an order on the send's own date does not count)
    assert (meta["conversions_messaged"], meta["conversions_holdout"]) == (6, 2)
    assert meta["revenue_messaged"] == pytest.approx(200.0)
    expected = lift(6, len(messaged), 2, len(held))
    assert meta["lift_pp"] == pytest.approx(100 * expected.difference, abs=1e-3)
    assert meta["lift_ci_low_pp"] == pytest.approx(100 * expected.low, abs=1e-3)
    assert meta["lift_ci_high_pp"] == pytest.approx(100 * expected.high, abs=1e-3)
    assert meta["lift_ci_low_pp"] < meta["lift_pp"] < meta["lift_ci_high_pp"]
    assert "95% CI" in meta["summary"] and "vs holdout" in meta["summary"]
    assert "0 of 40 members' 1-day windows still open" in meta["summary"]
    assert meta["members_window_complete"] == 40
    assert meta["complete_windows_lift_pp"] == meta["lift_pp"]
    assert (
        f"| {D} | {len(messaged)} | {len(messaged) - 1} | 5 | 2 | 6 | {len(held)} | 2 |"
        in (meta["by_send_date"])
    )
    # the first night had nothing to measure yet
    assert meta["_previous"]["messaged"] == 0 and "lift_pp" not in meta["_previous"]
    assert meta["_previous"]["members_window_complete"] == 0


def test_the_results_chart_is_a_png_in_the_reports_folder_and_on_the_asset(two_nights):
    workspace, home, *_ = two_nights
    meta = _latest(home, "results_birthday")
    path = workspace.root / "reports" / NEXT_DAY / "results_birthday.png"
    assert meta["chart_path"] == str(path)
    png = path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (900, 550)
    assert meta["chart"].startswith("![birthday results](data:image/png;base64,")


def test_campaign_outcomes_say_what_became_of_each_member(two_nights):
    workspace, _, messaged, held = two_nights
    rows = dict(
        workspace.query(
            "select contact_id, audience_group || ':' || has_converted::varchar "
            "|| ':' || is_window_complete::varchar from campaign_outcomes"
        )
    )
    assert rows[messaged[0]] == "messaged:true:true"  # the 1 day after D is over
    assert rows[messaged[7]] == "messaged:false:true"  # refunded
    assert rows[held[0]] == "holdout:true:true"
    assert rows[held[3]] == "holdout:false:true"


def test_cohorts_say_who_entered_and_left_and_the_audience_who_may_be_mailed(two_nights):
    _, home, *_ = two_nights
    birthday = _latest(home, "cohort_birthday")
    assert (birthday["cohort size"], birthday["entered"], birthday["left"]) == (0, 0, 40)
    assert birthday["compared with"] == D
    assert birthday["_previous"]["entered"] == 40
    audience = _latest(home, "audience")
    # the bounced address and the one that unsubscribed are suppressed now
    assert (audience["contacts"], audience["mailable contacts"]) == (40, 38)


def test_send_assets_preview_a_message_with_personal_data_masked(two_nights):
    _, home, messaged, _ = two_nights
    first = _latest(home, "send_birthday")["_previous"]
    preview = first["sample message"]
    assert "Happy birthday" in preview and "@example.com" in preview
    assert f"{messaged[0]}@example.com" not in preview
    assert '"first_name": "M***"' in preview or '"first_name": "Z***"' in preview


def test_every_dbt_model_shows_its_column_types_and_descriptions(two_nights):
    _, home, *_ = two_nights
    with DagsterInstance.from_config(str(home)) as instance:
        record = instance.get_latest_materialization_event(AssetKey("customer_360"))
    schema = record.asset_materialization.metadata["dagster/column_schema"].value
    columns = {c.name: c for c in schema.columns}
    assert columns["spend_730d"].type.startswith("decimal")
    assert columns["last_purchase_date"].type == "date"
    assert "730" in (columns["spend_730d"].description or "")
