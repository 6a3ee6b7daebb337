"""The Dagster Definitions load and show the lineage a marketer reads in `dagster dev`."""

from __future__ import annotations

import os
import subprocess
import sys

from dagster import AssetKey, build_sensor_context

from tests.support.landing import write_folder


def test_definitions_load_with_groups_from_extracts_to_results():
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    groups = {
        key.to_user_string(): graph.get(key).group_name for key in graph.materializable_asset_keys
    }
    assert {k for k, g in groups.items() if g == "ingest"} == {
        "raw/crm_contacts",
        "raw/orders",
        "raw/web_events",
        "raw/order_lines",
        "raw/sendgrid_events",
    }
    assert {k for k, g in groups.items() if g == "cohorts"} == {
        "cohort_loyalty",
        "cohort_birthday",
    }
    journeys = (
        "welcome", "abandoned_cart", "winback", "vip", "first_order_anniversary",
        "first_purchase_followup",
    )  # fmt: skip
    assert {k for k, g in groups.items() if g == "journeys"} == {f"journey_{j}" for j in journeys}
    assert {k for k, g in groups.items() if g == "sends"} == {
        "journey_progress",
        "int_campaign_members_unioned",
        "send_decisions",
        "send_checks",
        "send_loyalty",
        "send_birthday",
        *(f"send_{j}" for j in journeys),
    }
    assert {k for k, g in groups.items() if g == "results"} == {
        "campaign_outcomes",
        "global_control_results",
        "results_program",
        "results_loyalty",
        "results_birthday",
        *(f"results_{j}" for j in journeys),
    }
    assert groups["customer_360"] == "warehouse"
    # the optional order lines reach the models a recommender reads, and the report of
    # orders whose lines do not add up
    lines = graph.get(AssetKey("int_order_lines"))
    assert {AssetKey("int_orders_attributed")} <= set(lines.parent_keys)
    assert AssetKey(["raw", "order_lines"]) in _ancestors(graph, AssetKey("int_order_lines"))
    assert AssetKey(["raw", "order_lines"]) in _ancestors(graph, AssetKey("order_lines_mismatched"))


def test_the_groups_read_in_order_every_edge_goes_forward():
    from pipelines.definitions import defs

    order = ["ingest", "warehouse", "cohorts", "journeys", "sends", "results"]
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        for parent in node.parent_keys:
            behind = graph.get(parent).group_name
            assert order.index(behind) <= order.index(node.group_name), (
                f"{parent.to_user_string()} ({behind}) -> {key.to_user_string()} "
                f"({node.group_name})"
            )


def test_lineage_runs_from_each_extract_to_each_send_and_its_results():
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    for campaign, cohort in (
        ("loyalty", "cohort_loyalty"),
        ("winback", "journey_winback"),
        ("birthday", "cohort_birthday"),
    ):
        upstream = _ancestors(graph, AssetKey(f"send_{campaign}"))
        assert {AssetKey(["raw", e]) for e in ("crm_contacts", "orders", "web_events")} <= set(
            upstream
        )
        assert {AssetKey("customer_360"), AssetKey("send_decisions")} <= upstream
        assert AssetKey(cohort) in _ancestors(graph, AssetKey("send_decisions"))
        results = _ancestors(graph, AssetKey(f"results_{campaign}"))
        assert {AssetKey(f"send_{campaign}"), AssetKey("campaign_outcomes")} <= results
        assert AssetKey(["raw", "sendgrid_events"]) in results


def _ancestors(graph, key):
    seen, todo = set(), [key]
    while todo:
        for parent in graph.get(todo.pop()).parent_keys:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def test_dbt_tests_are_asset_checks_and_send_assets_describe_their_rule():
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert ("cohort_loyalty", "assert_cohort_loyalty_rule") in checks
    assert ("customer_360", "unique_customer_360_contact_id") in checks
    description = graph.get(AssetKey("send_loyalty")).description
    assert "cohort_loyalty" in description and "not again within 90 days" in description


def test_cohort_and_send_descriptions_state_the_thresholds_this_installation_applies(
    monkeypatch,
):
    from models import descriptions
    from pipelines.definitions import build_definitions

    monkeypatch.setenv(
        "NIGHTJAR_DBT_VARS", "{loyalty_min_spend_730d: 1500, holdout_share: 0.05, send_hour: 9}"
    )
    descriptions.current_vars.cache_clear()
    try:
        graph = build_definitions().resolve_asset_graph()
    finally:
        descriptions.current_vars.cache_clear()
    loyalty = graph.get(AssetKey("cohort_loyalty")).description
    assert "less than 90 days old and who spent more than 1500 on completed orders" in loyalty
    send = graph.get(AssetKey("send_loyalty")).description
    assert "5% of the cohort is held out" in send and "9:00 local time" in send
    assert "spent more than 1500" in send
    birthday = graph.get(AssetKey("cohort_birthday")).description
    assert "birthday is 0 day(s) after the business date" in birthday


def test_the_job_schedule_and_sensor_are_defined():
    from pipelines.definitions import defs

    job = defs.resolve_job_def("nightly_job")
    assert job.partitions_def is not None
    assert defs.resolve_schedule_def("nightly_schedule").job_name == "nightly_job"
    assert defs.resolve_sensor_def("landing_sensor")


def test_the_sensor_starts_one_run_for_the_newest_complete_folder(workspace):
    from pipelines.jobs import landing_sensor

    write_folder(workspace.landing, "2025-11-19")
    write_folder(workspace.landing, "2025-11-20")
    write_folder(workspace.landing, "2025-11-21", complete=False)
    context = build_sensor_context()
    request = landing_sensor(context)
    assert (request.run_key, request.partition_key) == ("2025-11-20", "2025-11-20")
    assert context.cursor == "2025-11-20"

    again = build_sensor_context(cursor=context.cursor)
    assert "No new complete folder" in landing_sensor(again).skip_message

    (workspace.landing / "2025-11-21" / "_SUCCESS").touch()
    later = build_sensor_context(cursor=context.cursor)
    assert landing_sensor(later).run_key == "2025-11-21"


def test_definitions_load_as_dagster_dev_loads_them_without_dbt_on_path():
    # `dagster dev` starts a code server with DAGSTER_IS_DEV_CLI set, from an unactivated
    # virtualenv: dbt must be found beside the interpreter, not on PATH.
    env = {**os.environ, "DAGSTER_IS_DEV_CLI": "1", "PATH": "/usr/bin:/bin"}
    completed = subprocess.run(
        [sys.executable, "-c", "from pipelines.definitions import defs; print(len(defs.assets))"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]


def test_the_schedule_runs_the_previous_business_date():
    import datetime as dt

    from dagster import build_schedule_context

    from pipelines.definitions import defs

    schedule = defs.resolve_schedule_def("nightly_schedule")
    tick = dt.datetime(2025, 11, 21, 6, 0, tzinfo=dt.UTC)
    requests = schedule.evaluate_tick(build_schedule_context(scheduled_execution_time=tick))
    assert [r.partition_key for r in requests.run_requests] == ["2025-11-20"]


def test_every_asset_names_who_answers_for_it():
    from assets.shared.owners import OWNERS
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners == OWNERS[node.group_name], key.to_user_string()
    assert graph.get(AssetKey("customer_360")).owners == ["team:analytics"]
    assert graph.get(AssetKey("send_loyalty")).owners == ["team:marketing"]


def test_a_manifest_dbt_wrote_without_the_campaigns_is_parsed_again():
    # `dbt build` by hand writes a fresh manifest in which the cohorts feed no send decision
    from models.manifest import _knows_the_campaigns, load_manifest

    manifest = load_manifest()
    assert _knows_the_campaigns(manifest)
    (union,) = [
        n for n in manifest["nodes"].values() if n["name"] == "int_campaign_members_unioned"
    ]
    union["depends_on"]["nodes"] = []
    assert not _knows_the_campaigns(manifest)
