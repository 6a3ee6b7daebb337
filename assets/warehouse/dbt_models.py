"""Warehouse assets: the dbt project (staging, intermediate, marts, cohorts) run as of the
partition's business date, with dbt tests as Dagster asset checks. dbt builds into the
`build` schema; the night's tables are published to `main` only when the whole build passed."""

import contextlib
import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from uuid import uuid4

import duckdb
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    Failure,
    MetadataValue,
    Output,
)
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    dbt_assets,
)
from dagster_dbt.asset_utils import (
    get_asset_check_key_for_test,
    get_subset_selection_for_context,
)

from assets.shared import dbt_runner
from assets.shared.dbt_project import dbt_project, environment
from assets.shared.partitions import (
    ONE_RUN_PER_DATE,
    WAREHOUSE_POOL,
    business_date,
    nightly_partitions,
)
from assets.shared.resources import NightjarResource
from assets.shared.spark_files import missing_for_spark
from assets.shared.warehouse import connect, ensure_schema, memory_limit, state_path_for
from assets.warehouse.model_metadata import Night, measure, with_nightjar_metadata
from assets.warehouse.publish import (
    PUBLISHED_SCHEMA,
    UnpublishedBuild,
    begin_build,
    incremental_models,
    is_published,
    models_fingerprint,
    publish,
    published_models,
    tables_in,
    unpublished_models,
)
from models.descriptions import current_vars, describe_model, vars_record
from models.manifest import campaigns_var, load_manifest
from models.programs import campaigns_from_manifest
from models.settings import Settings, effective_dbt_vars


class NightjarDbtTranslator(DagsterDbtTranslator):
    """Groups and owners are dagster-dbt's own reading of dbt_project.yml's `+meta` (cohorts,
    the send decisions, campaign outcomes and the warehouse); this adds where readers find a
    published table and descriptions with this installation's thresholds.

    `dbt_vars`: what the descriptions state (models.descriptions.current_vars)."""

    def __init__(self, dbt_vars: Mapping[str, Any], settings: DagsterDbtTranslatorSettings):
        super().__init__(settings)
        self.dbt_vars = dbt_vars

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        metadata = dict(super().get_metadata(dbt_resource_props))
        if is_published(dbt_resource_props):  # where readers find it, not dbt's build schema
            database = dbt_resource_props.get("database")
            metadata["dagster/table_name"] = ".".join(
                p for p in (database, PUBLISHED_SCHEMA, dbt_resource_props["alias"]) if p
            )
        return metadata

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        # A cohort's rule with the thresholds this installation applies (NIGHTJAR_DBT_VARS).
        if dbt_resource_props.get("resource_type") != "model":
            return super().get_description(dbt_resource_props)
        return describe_model(dbt_resource_props, self.dbt_vars) or super().get_description(
            dbt_resource_props
        )


def dbt_build_args(
    business_date: str, settings: Settings, since: dt.date | None, paused: Sequence[str] = ()
) -> list[str]:
    """`since`: the date the incremental models were last built for (assets/warehouse/publish.py),
    or None to rebuild them whole. `paused`: the programs paused for this run."""
    memory_limit()  # profiles.yml reads it too: refuse a bad value before dbt does
    variables = {
        **effective_dbt_vars(settings),  # as the descriptions state them
        "as_of_date": business_date,
        "incremental_since": since.isoformat() if since else None,
        "campaigns": campaigns_var(load_manifest()),
        "paused": list(paused),
        # a group unsubscribe's group id says its topic (suppression_list)
        "sendgrid_groups": {str(group): topic for group, topic in settings.topic_of_group.items()},
        # Send times are scheduled from now: a message is never due in the past.
        "send_after": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    # Unit tests prove the SQL, not the night's data: they run in `make test`, not nightly.
    args = ["build", "--exclude-resource-type", "unit_test", "--vars", json.dumps(variables)]
    return args if since else [*args, "--full-refresh"]


def build_warehouse_models():
    """The dbt models as Dagster assets; built when the Definitions are, so that their
    descriptions state the thresholds of the environment Dagster loads them in."""

    @dbt_assets(
        manifest=dbt_project().manifest_path,
        project=dbt_project(),
        partitions_def=nightly_partitions,
        # a new translator each time: dagster-dbt caches the specs it made per translator
        dagster_dbt_translator=NightjarDbtTranslator(
            current_vars(), settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
        ),
        pool=WAREHOUSE_POOL,
        backfill_policy=ONE_RUN_PER_DATE,
    )
    def warehouse_models(context: AssetExecutionContext, nightjar: NightjarResource):
        yield from _build_and_publish(context, nightjar)

    return warehouse_models


def _profile_paths(settings: Settings):
    """profiles.yml reads the warehouse and state paths from the environment, which
    dagster-dbt copies as it starts dbt (absolute paths: dbt runs in its folder). Set for that
    moment only: a later night in this process (a test, `nightjar demo`) must not inherit
    them as if they were its operator's settings."""
    return environment(
        {
            "NIGHTJAR_WAREHOUSE": str(settings.warehouse),
            "NIGHTJAR_STATE": str(state_path_for(settings.warehouse)),
        }
    )


def _build_and_publish(context: AssetExecutionContext, nightjar: NightjarResource):
    settings = nightjar.settings()
    if settings.engine == "spark" and context.is_subset:
        raise Failure(
            description="NIGHTJAR_ENGINE=spark builds every model each night: materialize all "
            "warehouse models (or run the date with `nightjar run`) instead of a selection."
        )
    manifest = load_manifest()
    fingerprint = models_fingerprint(manifest)
    day = business_date(context)
    since = _begin_build(context, settings, manifest, fingerprint, nightjar.full_refresh)
    args = dbt_build_args(day.isoformat(), settings, since, paused=nightjar.pause)
    if settings.engine == "spark":
        events, failure = _run_dbt_on_spark(context, args, settings, manifest)
    else:
        events, failure = _run_dbt(context, args, settings, manifest)
    if failure:
        # Nothing is published, so no model was materialized tonight; the checks show which
        # dbt test failed.
        yield from (event for event in events if isinstance(event, AssetCheckResult))
        raise failure from None
    built = {_model_name(context, event) for event in events if isinstance(event, Output)}
    whole = None if context.is_subset else (day, fingerprint)
    night = _measure_and_publish(context, settings, manifest, built, whole)
    context.log.info(f"Published {len(night.counts)} table(s) to {PUBLISHED_SCHEMA}")
    # What dbt ran with, read from its own arguments: the UI's descriptions are those of the
    # environment `dagster dev` loaded them in, which may not be this run's.
    ran_with = MetadataValue.json(vars_record(json.loads(args[args.index("--vars") + 1])))
    for event in events:
        if isinstance(event, Output):
            table = _model_name(context, event)
            event = with_nightjar_metadata(event, table, night, ran_with, settings.warehouse.stem)
        yield event


def _begin_build(
    context: AssetExecutionContext,
    settings: Settings,
    manifest: dict[str, Any],
    fingerprint: str,
    full_refresh: bool,
) -> dt.date | None:
    """The date the incremental models may be built from (publish.begin_build), or None."""
    with connect(settings.warehouse) as con:
        ensure_schema(con)
        try:
            since = begin_build(
                con,
                business_date(context),
                context.is_subset,
                fingerprint,
                incremental_models(manifest).values(),
                full_refresh,
            )
        except UnpublishedBuild as error:
            raise Failure(description=str(error)) from None
    context.log.info(
        f"Incremental models: only what is new since {since}"
        if since
        else "Incremental models: rebuilt whole (first build, a date built before, changed "
        "models, or --full-refresh)"
    )
    return since


def _run_dbt(
    context: AssetExecutionContext, args: list[str], settings: Settings, manifest: dict[str, Any]
) -> tuple[list, Failure | None]:
    """dbt in this process (assets/shared/dbt_runner.py), its models' outputs and its tests'
    check results, and the error to raise if the build failed."""
    op_name = context.op_execution_context.op.name
    # A folder of its own while dbt runs (nights of other warehouses may run beside it),
    # then kept as last_nightly: dbt.log, run_results.json, the compiled SQL.
    folder = f"{op_name}-{context.run.run_id[:8]}-{uuid4().hex[:8]}"
    target = dbt_project().project_dir / "target" / folder
    result = dbt_runner.BuildResult()
    try:
        with _profile_paths(settings):
            dbt_runner.invoke([*args, *_selection(context, manifest)], target, result)
    finally:
        kept = keep_as_last_nightly(target, op_name)
    events = list(_dbt_events(context, manifest, result))
    if result.failure:
        return events, Failure(description=f"{result.failure} (dbt's log: {kept / 'dbt.log'})")
    return events, None


def _selection(context: AssetExecutionContext, manifest: dict[str, Any]) -> list[str]:
    """The models and tests picked in the Dagster UI, as dagster-dbt selects them; none (the
    whole project) for a night."""
    if not context.is_subset:
        return []
    selection, indirect = get_subset_selection_for_context(
        context,
        manifest,
        select="fqn:*",
        exclude=None,
        selector=None,
        dagster_dbt_translator=DagsterDbtTranslator(),
        current_dbt_indirect_selection_env=os.environ.get("DBT_INDIRECT_SELECTION"),
    )
    return [*selection, *(["--indirect-selection", indirect] if indirect else [])]


def _run_dbt_on_spark(
    context: AssetExecutionContext, args: list[str], settings: Settings, manifest: dict[str, Any]
) -> tuple[list, Failure | None]:
    """The build on Spark (assets/shared/spark_engine.py), its models' outputs and its tests'
    check results as dagster-dbt gives them on DuckDB, and the error to raise if it failed;
    the night's published tables are then in the warehouse's build schema."""
    missing = missing_for_spark()
    if missing:  # a night started from the UI: `nightjar run` refuses before the load
        raise Failure(description=f"NIGHTJAR_ENGINE=spark needs {' and '.join(missing)}.")
    # Lazy: pyspark is the `spark` extra's, loaded only with this engine.
    from assets.shared import spark_engine

    started = time.monotonic()
    spark = spark_engine.session(settings)
    with connect(settings.warehouse) as con:
        written = spark_engine.sync_inputs(con, spark, settings.spark_path, manifest)
        fits = _published_table(con, "clv_fits")
    synced = time.monotonic()
    context.log.info(
        f"Spark: inputs registered in {synced - started:.1f}s (raw parquet files written "
        f"now, by table: {written})"
    )
    target = dbt_project().project_dir / "target" / f"{LAST_NIGHTLY}_spark"
    result = spark_engine.build(spark, settings.spark_path, args, fits, target)
    events = list(_dbt_events(context, manifest, result))
    if result.failure:
        return events, Failure(description=result.failure)
    built = {_model_name(context, event) for event in events if isinstance(event, Output)}
    tables = sorted(built & published_models(manifest))
    with connect(settings.warehouse) as con:
        spark_engine.bring_back(con, spark, tables)
    context.log.info(
        f"Spark: built in {time.monotonic() - synced:.1f}s, {len(tables)} published table(s) "
        "back in the warehouse"
    )
    return events, None


def _published_table(con: duckdb.DuckDBPyConnection, table: str):
    """A published table as a polars frame, or None before its first night."""
    if table not in tables_in(con, PUBLISHED_SCHEMA):
        return None
    return con.sql(f'select * from {PUBLISHED_SCHEMA}."{table}"').pl()


def _dbt_events(
    context: AssetExecutionContext, manifest: dict[str, Any], result: dbt_runner.BuildResult
) -> Iterator:
    """A model built: its Output; a test run: its check's result (dagster-dbt's names and
    metadata)."""
    # dagster-dbt's own keys: NightjarDbtTranslator changes metadata and descriptions only
    translator = DagsterDbtTranslator()
    outputs = context.op_execution_context.selected_output_names
    checks = context.selected_asset_check_keys
    for unique_id, status in result.statuses.items():
        node = manifest["nodes"].get(unique_id)
        if node is None:
            continue
        if node["resource_type"] in ("model", "seed", "snapshot") and status == "success":
            name = translator.get_asset_spec(manifest, unique_id, None).key.to_python_identifier()
            if name in outputs:
                metadata = {**_dbt_metadata(result, unique_id), "status": status}
                yield Output(None, output_name=name, metadata=metadata)
        elif node["resource_type"] == "test" and status != "skipped":
            key = get_asset_check_key_for_test(manifest, translator, unique_id, None)
            if key in checks:
                yield AssetCheckResult(
                    asset_key=key.asset_key,
                    check_name=key.name,
                    passed=status == "pass",
                    severity=AssetCheckSeverity.WARN
                    if status == "warn"
                    else AssetCheckSeverity.ERROR,
                    metadata={
                        "status": status,
                        **_dbt_metadata(result, unique_id),
                        **_failed_rows(result, unique_id),
                        **_message(result, unique_id),
                    },
                )


def _dbt_metadata(result: dbt_runner.BuildResult, unique_id: str) -> dict[str, Any]:
    """What dagster-dbt records of a model it ran."""
    return {
        "unique_id": unique_id,
        "invocation_id": result.invocation_id,
        "Execution Duration": result.seconds.get(unique_id, 0.0),
    }


def _failed_rows(result: dbt_runner.BuildResult, unique_id: str) -> dict[str, int]:
    failures = result.failures.get(unique_id)
    return {} if failures is None else {"dagster_dbt/failed_row_count": failures}


def _message(result, unique_id: str) -> dict[str, str]:
    message = result.messages.get(unique_id)
    return {"message": message} if message else {}


def _measure_and_publish(
    context: AssetExecutionContext,
    settings: Settings,
    manifest: dict[str, Any],
    built: set[str],
    whole: tuple[dt.date, str] | None,
) -> Night:
    campaigns = {c.cohort: c for c in campaigns_from_manifest(manifest)}
    night = Night(built=built, cohorts=built & set(campaigns))
    with connect(settings.warehouse) as con:
        # Measured before publishing: `main` still holds the night to compare with. They
        # inform; a failure to measure never keeps a good build from being published.
        try:
            measure(con, night, manifest, campaigns, business_date(context))
        except duckdb.Error as error:
            context.log.warning(f"Tonight's figures could not be measured: {error}")
        night.counts = publish(
            con, built & published_models(manifest), unpublished_models(manifest), whole
        )
    return night


# Every night's dbt gets a target folder of its own (warehouse_models-<run id>-<random>:
# dbt.log, run_results.json, compiled SQL; about 5 MB a night): parallel nights cannot share
# one fixed folder. Each night keeps its own while dbt runs and then turns it into
# target/last_nightly, replacing the previous night's.
LAST_NIGHTLY = "last_nightly"
# A folder this old was left by a night killed while dbt ran: no night takes a day.
ABANDONED_AFTER = dt.timedelta(days=1)


def keep_as_last_nightly(target_path: Path, op_name: str) -> Path:
    """Make this invocation's target folder `last_nightly` beside it, replacing the previous
    one, and remove folders abandoned by killed nights. Returns where the artifacts are now.
    Never fails the night: a night running at the same time may take the name first, and
    then its artifacts, as recent as these, are the ones kept."""
    last = target_path.with_name(LAST_NIGHTLY)
    retired = target_path.with_name(f".{LAST_NIGHTLY}-{target_path.name}")
    with contextlib.suppress(OSError):
        last.rename(retired)  # renamed, then removed: last_nightly is never half removed
    shutil.rmtree(retired, ignore_errors=True)
    try:
        target_path.rename(last)
    except OSError:
        shutil.rmtree(target_path, ignore_errors=True)
    cutoff = time.time() - ABANDONED_AFTER.total_seconds()
    for pattern in (f"{op_name}-*", f".{LAST_NIGHTLY}-*"):
        for folder in target_path.parent.glob(pattern):
            with contextlib.suppress(OSError):
                if folder.is_dir() and folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
    return last


def _model_name(context: AssetExecutionContext, event: Output) -> str:
    return context.asset_key_for_output(event.output_name).path[-1]
