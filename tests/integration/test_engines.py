"""The same dbt project on PostgreSQL and on Spark as on DuckDB (make test-spark).

Two real nights run on DuckDB from a generated landing (two thousand contacts, 400 days,
journeys, predictions, SendGrid events between the nights). The last night's raw tables, and
Nightjar's state as the night before left it (what the last night's build reads), are loaded
into a PostgreSQL server the test starts and into a local Spark (pyspark, dbt-spark's session
method); `dbt build` runs on each with the night's vars, the predictions fitted in Python
between its two halves (models/clv_engine.py), and every table Nightjar publishes, with the
predictions' inputs, must equal DuckDB's row for row (tests/support/engines.py normalises the
types). A negative control changes one row on the engine and must be told apart. The dbt
unit tests run on each engine too.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import Workspace, isolate
from tests.support import engines

pytestmark = pytest.mark.engines

END = dt.date(2025, 11, 22)
BEFORE = END - dt.timedelta(days=1)


@dataclass
class Nights:
    inputs: list[engines.Table]
    dbt_vars: dict  # the last night's, for a full build
    before_vars: dict  # the night before's
    duckdb: dict[str, pl.DataFrame]  # DuckDB's tables of a full build of the last night
    names: list[str]
    root: Path
    generated: Path  # the landing of every night, END's included
    pipeline: Workspace  # where the two nights ran on DuckDB


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> Nights:
    from pipelines.demo.engagement import write_demo_events
    from pipelines.demo.sample_data import generate_landing

    root = tmp_path_factory.mktemp("engines")
    with pytest.MonkeyPatch.context() as mp:
        workspace = isolate(mp, root)
        full = root / "generated"
        generate_landing(full, contacts=2000, days=400, end=END, seed=7)
        for folder in full.iterdir():
            if folder.name != END.isoformat():
                shutil.copytree(folder, workspace.landing / folder.name)
        assert workspace.run(BEFORE.isoformat()) == 0
        # the messages of the night before are delivered, opened, bounced...
        outbox = workspace.outbox / BEFORE.isoformat()
        assert write_demo_events(outbox, workspace.landing, BEFORE, seed=3)
        # the state the last night's build reads: as the night before left it
        state = shutil.copy(workspace.state, root / "state-before-the-last-night.duckdb")
        shutil.copytree(full / END.isoformat(), workspace.landing / END.isoformat())
        assert workspace.run(END.isoformat()) == 0

        dbt_vars, before_vars = engines.night_vars(END, None), engines.night_vars(BEFORE, None)
        names = engines.compared_models()
        warehouse, state_copy = engines.duckdb_copy(workspace.warehouse, state, root / "duck")
        paths = {"NIGHTJAR_WAREHOUSE": str(warehouse), "NIGHTJAR_STATE": str(state_copy)}
        with engines.environment(paths):
            engines.dbt(
                "local", root / "duck-target", "build", "--exclude-resource-type", "unit_test",
                "--vars", json.dumps(dbt_vars),
            )  # fmt: skip
        return Nights(
            inputs=engines.read_inputs(workspace.warehouse, state),
            dbt_vars=dbt_vars,
            before_vars=before_vars,
            duckdb=engines.duckdb_tables(warehouse, "build", names),
            names=names,
            root=root,
            generated=full,
            pipeline=workspace,
        )


def test_the_nights_exercise_what_is_compared(nights: Nights):
    """Tables of rows, not of nothing: journeys, predictions, events, decisions."""
    sizes = {name: frame.height for name, frame in nights.duckdb.items()}
    for name in ("customer_360", "journey_progress", "send_decisions", "suppression_list",
                 "sender_reputation", "campaign_outcomes", "product_recommendations",
                 "int_contacts_clv_inputs", "journey_abandoned_cart"):  # fmt: skip
        assert sizes[name] > 0, name
    assert nights.duckdb["clv_fits"]["status"].to_list() == ["fitted"]
    decisions = set(nights.duckdb["send_decisions"]["decision"].to_list())
    assert {"send", "holdout"} <= decisions


def test_postgresql_builds_every_table_as_duckdb_does(nights: Nights):
    import psycopg

    from tests.support.postgres_server import PostgresServer

    with PostgresServer() as server:
        url = server.new_database()
        engines.load_postgres(url, nights.inputs)

        def inputs_of_fit() -> pl.DataFrame:
            with psycopg.connect(url) as con:
                cursor = con.execute("select * from build.int_contacts_clv_inputs")
                return engines.typed_frame([c.name for c in cursor.description], cursor.fetchall())

        def write_predictions(tables: dict[str, pl.DataFrame]) -> None:
            engines.load_postgres(
                url, [engines.table_of("nightjar_predictions", n, f) for n, f in tables.items()]
            )

        target = nights.root / "postgres-target"
        with engines.environment(engines.postgres_environment(url)):
            # the night before in full, then the last night incrementally: delete+insert
            # must leave what a full build leaves
            engines.build("postgres", target, nights.before_vars, write_predictions, inputs_of_fit)
            incremental = {**nights.dbt_vars, "incremental_since": BEFORE.isoformat()}
            engines.build("postgres", target, incremental, write_predictions, inputs_of_fit)
            engines.unit_tests("postgres", target, END.isoformat())
        built = engines.postgres_tables(url, "build", nights.names)
        assert engines.differences(nights.duckdb, built) == []

        # the negative control: one figure of one contact changed on PostgreSQL
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(
                "update build.customer_360 set spend_730d = spend_730d + 1 "
                "where contact_id = (select min(contact_id) from build.customer_360)"
            )
        changed = engines.postgres_tables(url, "build", nights.names)
    found = engines.differences(nights.duckdb, changed)
    assert len(found) == 1 and found[0].startswith("customer_360: "), found


@pytest.fixture(scope="module")
def spark(nights: Nights):
    session = engines.spark_session(nights.root / "spark")
    yield session
    session.stop()


def test_spark_builds_every_table_as_duckdb_does_night_after_night(nights: Nights, spark):
    from assets.shared import spark_engine

    engines.load_spark(spark, nights.inputs)
    target = nights.root / "spark-target"
    # two nights in a row, as a night with NIGHTJAR_ENGINE=spark builds (the fit between two
    # halves): on plain parquet tables every model is rebuilt whole, and its keys stay unique
    # (the unique and unique_together tests of `dbt build` pass)
    incremental = {**nights.dbt_vars, "incremental_since": BEFORE.isoformat()}
    for dbt_vars in (nights.before_vars, incremental):
        args = ["build", "--exclude-resource-type", "unit_test", "--vars", json.dumps(dbt_vars)]
        result = spark_engine.build(spark, nights.root / "spark", args, None, target)
        assert result.failure is None, result.failure
    engines.unit_tests("spark", target, END.isoformat())
    built = engines.spark_tables(spark, "build", nights.names)
    assert engines.differences(nights.duckdb, built) == []

    # the negative control: one row of the reputation written twice on Spark
    spark.sql("insert into build.sender_reputation select * from build.sender_reputation limit 1")
    found = engines.differences(nights.duckdb, engines.spark_tables(spark, "build", nights.names))
    assert len(found) == 1 and found[0].startswith("sender_reputation: "), found


# ---- the pipeline on Spark ------------------------------------------------------------------


@pytest.fixture(scope="module")
def spark_pipeline(nights: Nights, spark) -> Workspace:
    """The same two nights as `nights`, run by `nightjar run` with NIGHTJAR_ENGINE=spark: the
    same landing, the same SendGrid events between them."""
    from pipelines.demo.engagement import write_demo_events

    with pytest.MonkeyPatch.context() as mp:
        workspace = isolate(mp, nights.root / "spark-pipeline")
        mp.setenv("NIGHTJAR_ENGINE", "spark")
        for folder in nights.generated.iterdir():
            if folder.name != END.isoformat():
                shutil.copytree(folder, workspace.landing / folder.name)
        assert workspace.run(BEFORE.isoformat()) == 0
        assert write_demo_events(
            workspace.outbox / BEFORE.isoformat(), workspace.landing, BEFORE, seed=3
        )
        shutil.copytree(nights.generated / END.isoformat(), workspace.landing / END.isoformat())
        assert workspace.run(END.isoformat()) == 0
    return workspace


# When a message is scheduled follows the moment its night ran (var send_after: never in the
# past), which two runs of the same night do not share.
_RUN_TIME = ("send_at", "send_at_unix")


def _messages(workspace: Workspace, day: dt.date) -> dict[str, list[dict]]:
    """Each campaign's messages of `day` in the outbox, as sent but for their send time."""
    folder = workspace.outbox / day.isoformat()
    return {
        path.stem: sorted(
            (
                {key: value for key, value in line.items() if key not in _RUN_TIME}
                for line in workspace.outbox_lines(day.isoformat(), path.stem)
            ),
            key=lambda message: message["send_id"],
        )
        for path in sorted(folder.glob("*.jsonl"))
    }


def _ledger(workspace: Workspace) -> list[tuple]:
    return workspace.query(
        "select business_date, campaign, step, contact_id, occasion, variant, status "
        "from nightjar.send_ledger order by all"
    )


def test_two_nights_on_spark_send_what_duckdb_sends(nights: Nights, spark_pipeline: Workspace):
    for day in (BEFORE, END):
        on_duckdb, on_spark = _messages(nights.pipeline, day), _messages(spark_pipeline, day)
        assert sum(len(lines) for lines in on_duckdb.values()) > 0, day
        assert sorted(on_spark) == sorted(on_duckdb), day
        for campaign, lines in on_duckdb.items():
            assert on_spark[campaign] == lines, (day, campaign)
    assert _ledger(spark_pipeline) == _ledger(nights.pipeline)


def test_two_nights_on_spark_keep_every_key_unique(spark_pipeline: Workspace, spark):
    """Spark's own tables after its second night, not only the copies published from them:
    each key the project's `unique` and `unique_together` tests declare (incremental models
    among them) holds each value once."""
    manifest = json.loads((engines.PROJECT_DIR / "target" / "manifest.json").read_text())
    keys = {}
    for node in manifest["nodes"].values():
        test = node.get("test_metadata") or {}
        if test.get("name") in ("unique", "unique_together"):
            model = node["attached_node"].split(".")[-1]
            kwargs = test["kwargs"]
            keys[model] = kwargs.get("columns") or [kwargs["column_name"]]
    assert {"customer_360", "send_decisions", "int_orders_resolved"} <= set(keys), keys
    for model, columns in sorted(keys.items()):
        key = ", ".join(columns)  # a null is a value here: sender_reputation's all-mail row
        twice = spark.sql(
            f"select {key} from build.{model} group by {key} having count(*) > 1"
        ).collect()
        assert twice == [], (model, twice[:3])
        rows = spark.table(f"build.{model}").count()
        assert rows > 0 or model in ("order_lines_mismatched", "global_control_results"), model


def test_a_deleted_spark_folder_is_written_again_and_nothing_goes_twice(
    nights: Nights, spark_pipeline: Workspace, spark
):
    """An operator deletes NIGHTJAR_SPARK_DIR and runs the last night again: the raw rows go
    to Spark again from the warehouse, and the ledger keeps every message from going twice."""
    sent = _messages(spark_pipeline, END)
    ledger = _ledger(spark_pipeline)
    shutil.rmtree(spark_pipeline.root / "spark")
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp, spark_pipeline.root)
        mp.setenv("NIGHTJAR_ENGINE", "spark")
        assert spark_pipeline.run(END.isoformat()) == 0
    assert len(list((spark_pipeline.root / "spark" / "raw" / "orders").glob("*.parquet"))) == 400
    assert _messages(spark_pipeline, END) == sent
    assert _ledger(spark_pipeline) == ledger
