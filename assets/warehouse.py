"""Warehouse assets: the dbt project (staging, intermediate, marts, cohorts) run as of the
partition's business date, with dbt tests as Dagster asset checks. dbt builds into the
`build` schema; the night's tables are published to `main` only when the whole build passed."""

import contextlib
import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
from dagster import AssetCheckResult, AssetExecutionContext, Failure, MetadataValue, Output
from dagster_dbt import (
    DagsterDbtCliRuntimeError,
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from assets.campaigns import Campaign, campaigns_from_manifest
from pipelines.dbt_setup import campaigns_var, dbt_project, load_manifest
from pipelines.descriptions import current_vars, describe_model, vars_record
from pipelines.figures import audience_figures, cohort_changes, column_schemas
from pipelines.owners import OWNERS
from pipelines.partitions import ONE_RUN_PER_DATE, WAREHOUSE_POOL, nightly_partitions
from pipelines.previews import PREVIEW_ROWS, markdown_table, masked, preview_heading
from pipelines.publish import (
    BUILD_SCHEMA,
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
from pipelines.resources import NightjarResource
from pipelines.settings import Settings, effective_dbt_vars
from pipelines.warehouse import connect, ensure_schema, memory_limit, state_path_for


class NightjarDbtTranslator(DagsterDbtTranslator):
    """Cohort models form the `cohorts` group, the send decisions join the `sends`, campaign
    outcomes the `results`; every other model is the `warehouse`.

    `dbt_vars`: what the descriptions state (pipelines.descriptions.current_vars)."""

    def __init__(self, dbt_vars: Mapping[str, Any], settings: DagsterDbtTranslatorSettings):
        super().__init__(settings)
        self.dbt_vars = dbt_vars

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        if "cohorts" in fqn:
            return "cohorts"
        if "decisions" in fqn:
            return "sends"
        if "results" in fqn:
            return "results"
        return "warehouse"

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return OWNERS[self.get_group_name(dbt_resource_props)]

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


def dbt_build_args(business_date: str, settings: Settings, since: dt.date | None) -> list[str]:
    """`since`: the date the incremental models were last built for (pipelines/publish.py),
    or None to rebuild them whole."""
    memory_limit()  # profiles.yml reads it too: refuse a bad value before dbt does
    variables = {
        **effective_dbt_vars(settings),  # as the descriptions state them
        "as_of_date": business_date,
        "incremental_since": since.isoformat() if since else None,
        "campaigns": campaigns_var(load_manifest()),
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
    def warehouse_models(
        context: AssetExecutionContext, dbt: DbtCliResource, nightjar: NightjarResource
    ):
        yield from _build_and_publish(context, dbt, nightjar)

    return warehouse_models


@contextlib.contextmanager
def _profile_paths(settings: Settings) -> Iterator[None]:
    """profiles.yml reads the warehouse and state paths from the environment, which
    dagster-dbt copies as it starts dbt (absolute paths: dbt runs in its folder). Set for that
    moment only: a later night in this process (a test, `nightjar demo`) must not inherit
    them as if they were its operator's settings."""
    paths = {
        "NIGHTJAR_WAREHOUSE": str(settings.warehouse),
        "NIGHTJAR_STATE": str(state_path_for(settings.warehouse)),
    }
    saved = {name: os.environ.get(name) for name in paths}
    os.environ.update(paths)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _build_and_publish(
    context: AssetExecutionContext, dbt: DbtCliResource, nightjar: NightjarResource
):
    settings = nightjar.settings()
    manifest = load_manifest()
    fingerprint = models_fingerprint(manifest)
    business_date = dt.date.fromisoformat(context.partition_key)
    with connect(settings.warehouse) as con:
        ensure_schema(con)
        try:
            since = begin_build(
                con,
                business_date,
                context.is_subset,
                fingerprint,
                incremental_models(manifest).values(),
                nightjar.full_refresh,
            )
        except UnpublishedBuild as error:
            raise Failure(description=str(error)) from None
    context.log.info(
        f"Incremental models: only what is new since {since}"
        if since
        else "Incremental models: rebuilt whole (first build, a date built before, changed "
        "models, or --full-refresh)"
    )
    args = dbt_build_args(context.partition_key, settings, since)
    # What dbt ran with, read from its own arguments: the UI's descriptions are those of the
    # environment `dagster dev` loaded them in, which may not be this run's.
    ran_with = MetadataValue.json(vars_record(json.loads(args[args.index("--vars") + 1])))
    events, failure = [], None
    with _profile_paths(settings):
        invocation = dbt.cli(args, context=context)
    try:
        # DuckDB has one writer: collect dbt's events until its process has let go of the
        # file, then publish and count the tables' rows ourselves.
        events.extend(invocation.stream())
    except DagsterDbtCliRuntimeError as error:
        failure = error
    finally:
        kept = keep_as_last_nightly(invocation.target_path, context.op_execution_context.op.name)
    if failure:
        # Nothing is published, so no model was materialized tonight; the checks show which
        # dbt test failed.
        yield from (event for event in events if isinstance(event, AssetCheckResult))
        # its "view the dbt debug log" names the folder that is now last_nightly
        description = (failure.description or "").replace(str(invocation.target_path), str(kept))
        raise DagsterDbtCliRuntimeError(description=description) from None
    built = {_model_name(context, event) for event in events if isinstance(event, Output)}
    whole = None if context.is_subset else (business_date, fingerprint)
    with connect(settings.warehouse) as con:
        # Measured before publishing: `main` still holds the night to compare with. They
        # inform; a failure to measure never keeps a good build from being published.
        figures: dict[str, dict] = {}
        schemas: dict = {}
        previews: dict[str, str] = {}
        campaigns = {c.cohort: c for c in campaigns_from_manifest(manifest)}
        cohorts = built & set(campaigns)
        try:
            figures = {
                **cohort_changes(con, cohorts, business_date),
                "audience": audience_figures(con),
            }
            schemas = column_schemas(con, built, manifest)
            previews = {
                cohort: cohort_preview(con, campaigns[cohort], cohort in figures)
                for cohort in sorted(cohorts)
            }
        except duckdb.Error as error:
            context.log.warning(f"Tonight's figures could not be measured: {error}")
        counts = publish(
            con, built & published_models(manifest), unpublished_models(manifest), whole
        )
    context.log.info(f"Published {len(counts)} table(s) to {PUBLISHED_SCHEMA}")
    for event in events:
        # Each model's figures with the vars it ran with, its row count and its columns with
        # their types and descriptions; a cohort as a marketer reads it (cohort_metadata).
        if isinstance(event, Output):
            table = _model_name(context, event)
            extra: dict = {**_in_words(figures.get(table, {})), "vars": ran_with}
            if table in counts:
                extra["dagster/row_count"] = counts[table]
                # where readers find it: published to main, not dbt's build schema
                extra["dagster/table_name"] = (
                    f"{settings.warehouse.stem}.{PUBLISHED_SCHEMA}.{table}"
                )
            if table in schemas:
                extra["dagster/column_schema"] = schemas[table]
            if table in cohorts:
                metadata = cohort_metadata(extra, previews.get(table))
            else:  # dbt's own (run time, unique id, ...) after Nightjar's
                metadata = {**extra, **{k: v for k, v in event.metadata.items() if k not in extra}}
            event = event.with_metadata(metadata)
        yield event


# What pipelines/figures.py measures, named as the UI shows (and plots) it.
_WORDS = {"compared_with": "compared with", "mailable_contacts": "mailable contacts"}


def _in_words(figures: Mapping[str, Any]) -> dict[str, Any]:
    return {_WORDS.get(name, name): value for name, value in figures.items()}


def cohort_metadata(extra: Mapping[str, Any], preview: str | None) -> dict[str, Any]:
    """A cohort's materialization as a marketer reads it: its size, who entered and left
    (each plotted night by night under that name), its first members, then the vars, where
    the table is and its columns. dbt's run results (run time, unique and invocation ids,
    status) are left out, and so is the row count, which is the cohort size."""
    metadata: dict[str, Any] = {}
    if "dagster/row_count" in extra:
        metadata["cohort size"] = extra["dagster/row_count"]
    for name in ("entered", "left", "compared with"):
        if name in extra:
            metadata[name] = extra[name]
    if preview:
        metadata["preview"] = MetadataValue.md(preview)
    for name in ("vars", "dagster/table_name", "dagster/column_schema"):
        if name in extra:
            metadata[name] = extra[name]
    return metadata


def cohort_preview(con: duckdb.DuckDBPyConnection, campaign: Campaign, compared: bool) -> str:
    """The first PREVIEW_ROWS members of tonight's build of the cohort by contact id, with
    their masked address, their occasion and whether they entered tonight (`compared`: the
    night is compared with the one published, as pipelines.figures.cohort_changes does)."""
    cohort, occasion = campaign.cohort, campaign.occasion_column
    published = f'{PUBLISHED_SCHEMA}."{cohort}"'
    new = (
        f"contact_id not in (select contact_id from {published})"
        if compared and cohort in tables_in(con, PUBLISHED_SCHEMA)
        else ("true" if compared else "null")
    )
    rows = con.execute(
        f"""
        select contact_id, email, cast("{occasion}" as varchar), {new}, count(*) over ()
        from {BUILD_SCHEMA}."{cohort}"
        order by contact_id
        limit {PREVIEW_ROWS}
        """
    ).fetchall()
    heading = preview_heading(rows[0][4] if rows else 0, len(rows))
    if not rows:
        return heading
    headers = ["contact", "email", f"occasion ({occasion})"]
    if compared:
        headers.append("entered tonight")
    table = [
        (contact, masked(email), value, *(["yes" if entered else "no"] if compared else []))
        for contact, email, value, entered, _ in rows
    ]
    return heading + "\n\n" + markdown_table(headers, table)


# dagster-dbt gives every dbt invocation a target folder of its own (warehouse_models-<run
# id>-<random>: dbt.log, run_results.json, compiled SQL; about 5 MB a night) and never removes
# it. Parallel nights cannot share one fixed folder, so each night keeps its own while dbt
# runs and then turns it into target/last_nightly, replacing the previous night's.
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
