"""The dbt project's stages timed on DuckDB, PostgreSQL and Spark from the same inputs, for
docs/scale.md: a generated landing of N contacts runs one DuckDB night (the history load),
then a full build of that night runs on each engine, timed by dbt's run results and summed
by the project's folders, with the predictions' fit (Python) and the copy of the inputs into
the engine apart.

    python -m tests.tools.engines_bench --contacts 100000 --days 180

Needs the `spark` extra (make test-spark installs it), Java and Debian's PostgreSQL server.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

END = dt.date(2025, 11, 22)
STAGES = ("staging", "intermediate", "marts", "intelligence", "predictions", "cohorts",
          "journeys", "decisions", "results")  # fmt: skip


def stage_seconds(target_path: Path, totals: dict[str, float]) -> None:
    """Adds the seconds of each node of the last dbt run to its stage: a model's folder, or
    the data tests."""
    manifest = json.loads((target_path / "manifest.json").read_text())
    results = json.loads((target_path / "run_results.json").read_text())
    for result in results["results"]:
        node = manifest["nodes"].get(result["unique_id"], {})
        if node.get("resource_type") == "model":
            stage = node["fqn"][1] if node["fqn"][1] in STAGES else "other"
        else:
            stage = "data tests"
        totals[stage] += result["execution_time"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--engines", default="duckdb,postgres,spark")
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="nightjar-engines-bench-"))
    os.environ.update(
        {
            "NIGHTJAR_LANDING": str(root / "landing"),
            "NIGHTJAR_WAREHOUSE": str(root / "warehouse.duckdb"),
            "NIGHTJAR_OUTBOX": str(root / "outbox"),
            "NIGHTJAR_REPORTS": str(root / "reports"),
            "NIGHTJAR_FIRST_NIGHT": "send_backlog",
            "NIGHTJAR_SETTLE_WAIT_SECONDS": "0",
            "NIGHTJAR_UNSUBSCRIBE_SECRET": "bench-secret-that-signs-one-click-unsubscribe-links",
            "NIGHTJAR_UNSUBSCRIBE_URL": "https://mail.shop.example",
            "DAGSTER_HOME": "",
        }
    )
    from assets.shared.warehouse import state_path_for
    from models.settings import load_settings
    from pipelines.cli import run_date
    from pipelines.demo.sample_data import generate_landing
    from tests.support import engines

    counts = generate_landing(root / "landing", contacts=options.contacts, days=options.days,
                              end=END, seed=11)  # fmt: skip
    started = time.monotonic()
    assert run_date(END, load_settings()) == 0
    seconds = time.monotonic() - started
    print(f"landing: {counts}; the DuckDB night (history load) took {seconds:.1f} s")
    state = state_path_for(root / "warehouse.duckdb")
    dbt_vars = engines.night_vars(END, None)
    inputs = engines.read_inputs(root / "warehouse.duckdb", state)
    rows = sum(len(table.rows) for table in inputs)
    figures: dict[str, dict[str, float]] = {}
    for engine in options.engines.split(","):
        totals: dict[str, float] = defaultdict(float)
        target = root / f"{engine}-target"
        started = time.monotonic()
        if engine == "duckdb":
            warehouse, state_copy = engines.duckdb_copy(
                root / "warehouse.duckdb", state, root / "duck"
            )
            paths = {"NIGHTJAR_WAREHOUSE": str(warehouse), "NIGHTJAR_STATE": str(state_copy)}
            with engines.environment(paths):
                engines.dbt("local", target, "build", "--exclude-resource-type", "unit_test",
                            "--vars", json.dumps(dbt_vars))  # fmt: skip
            stage_seconds(target, totals)
        else:
            totals.update(_other_engine(engine, inputs, dbt_vars, target, root))
        totals["whole build"] = time.monotonic() - started
        figures[engine] = dict(totals)
        print(engine, json.dumps({k: round(v, 1) for k, v in sorted(totals.items())}), flush=True)
    print(json.dumps({"contacts": options.contacts, "days": options.days, "input_rows": rows,
                      "figures": figures}))  # fmt: skip


def _other_engine(engine, inputs, dbt_vars, target: Path, root: Path) -> dict[str, float]:
    from tests.support import engines

    totals: dict[str, float] = defaultdict(float)
    if engine == "postgres":
        import psycopg

        from tests.support.postgres_server import PostgresServer

        with PostgresServer() as server:
            url = server.new_database()
            started = time.monotonic()
            engines.load_postgres(url, inputs)
            totals["load into the engine"] = time.monotonic() - started

            def read():
                with psycopg.connect(url) as con:
                    cursor = con.execute("select * from build.int_contacts_clv_inputs")
                    return engines.typed_frame(
                        [c.name for c in cursor.description], cursor.fetchall()
                    )

            def write(tables):
                engines.load_postgres(
                    url, [engines.table_of("nightjar_predictions", n, f) for n, f in tables.items()]
                )

            with engines.environment(engines.postgres_environment(url)):
                _build(engine, target, dbt_vars, totals, read, write)
    else:
        spark = engines.spark_session(root / "spark-warehouse")
        spark.sparkContext.setLogLevel("ERROR")
        started = time.monotonic()
        engines.load_spark(spark, inputs)
        totals["load into the engine"] = time.monotonic() - started

        def read():
            frame = spark.table("build.int_contacts_clv_inputs")
            return engines.typed_frame(frame.columns, [tuple(row) for row in frame.collect()])

        def write(tables):
            engines.load_spark(
                spark, [engines.table_of("nightjar_predictions", n, f) for n, f in tables.items()]
            )

        _build(engine, target, dbt_vars, totals, read, write)
        spark.stop()
    return totals


def _build(engine, target, dbt_vars, totals, read_inputs_of_fit, write_predictions) -> None:
    from models.clv_engine import BEFORE_PREDICTIONS, fitted_tables
    from tests.support import engines

    variables = ["--exclude-resource-type", "unit_test", "--vars", json.dumps(dbt_vars)]
    engines.dbt(engine, target, "build", "--select", BEFORE_PREDICTIONS, *variables)
    stage_seconds(target, totals)
    frame = read_inputs_of_fit()
    started = time.monotonic()
    tables = fitted_tables(frame, dbt_vars)
    totals["predictions fit (Python)"] = time.monotonic() - started
    write_predictions(tables)
    engines.dbt(engine, target, "build", "--exclude", BEFORE_PREDICTIONS, *variables)
    stage_seconds(target, totals)


if __name__ == "__main__":
    main()
