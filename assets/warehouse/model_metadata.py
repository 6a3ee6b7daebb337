"""What a dbt model's materialization shows in the Dagster UI beyond dbt's own: tonight's
figures (assets/warehouse/figures.py), its row count, where readers find it, its columns, and
for a cohort, its first members. Measured on tonight's build before it is published."""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
from dagster import MetadataValue, Output

from assets.shared.previews import PREVIEW_ROWS, markdown_table, masked, preview_heading
from assets.warehouse.clv_figures import clv_figures
from assets.warehouse.figures import audience_figures, cohort_changes, column_schemas
from assets.warehouse.publish import BUILD_SCHEMA, PUBLISHED_SCHEMA, tables_in
from models.campaigns import Campaign


@dataclass
class Night:
    """Tonight's build as its materializations tell it: what dbt built, what Nightjar measured
    of it before publishing, and the row counts of what it published."""

    built: set[str]
    cohorts: set[str]
    figures: dict[str, dict] = field(default_factory=dict)
    schemas: dict = field(default_factory=dict)
    previews: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def measure(
    con: duckdb.DuckDBPyConnection,
    night: Night,
    manifest: dict[str, Any],
    campaigns: Mapping[str, Campaign],
    day: dt.date,
) -> None:
    """Tonight's figures, column schemas and cohort previews into `night`, in that order,
    while `main` still holds the night to compare with. A duckdb.Error stops it where it
    failed: what was measured before is kept."""
    night.figures = {
        **cohort_changes(con, night.cohorts, day),
        "audience": audience_figures(con),
        "clv_fits": clv_figures(con, day),
    }
    night.schemas = column_schemas(con, night.built, manifest)
    night.previews = {
        cohort: cohort_preview(con, campaigns[cohort], cohort in night.figures)
        for cohort in sorted(night.cohorts)
    }


def with_nightjar_metadata(
    event: Output, table: str, night: Night, ran_with: MetadataValue, warehouse_stem: str
) -> Output:
    """A model's figures with the vars it ran with, its row count and its columns with their
    types and descriptions; a cohort as a marketer reads it (cohort_metadata)."""
    extra: dict = {**_in_words(night.figures.get(table, {})), "vars": ran_with}
    if table in night.counts:
        extra["dagster/row_count"] = night.counts[table]
        # where readers find it: published to main, not dbt's build schema
        extra["dagster/table_name"] = f"{warehouse_stem}.{PUBLISHED_SCHEMA}.{table}"
    if table in night.schemas:
        extra["dagster/column_schema"] = night.schemas[table]
    if table in night.cohorts:
        metadata = cohort_metadata(extra, night.previews.get(table))
    else:  # dbt's own (run time, unique id, ...) after Nightjar's
        metadata = {**extra, **{k: v for k, v in event.metadata.items() if k not in extra}}
    return event.with_metadata(metadata)


# What assets/warehouse/figures.py measures, named as the UI shows (and plots) it.
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
    night is compared with the one published, as assets.warehouse.figures.cohort_changes does)."""
    cohort, occasion = campaign.cohort, campaign.occasion_column
    published = f'{PUBLISHED_SCHEMA}."{cohort}"'
    new = (
        f"contact_id not in (select contact_id from {published})"
        if compared and cohort in tables_in(con, PUBLISHED_SCHEMA)
        else ("true" if compared else "null")
    )
    # a journey's entry model names its contacts only: their address is the customer view's
    email = (
        f"(select c.email from {BUILD_SCHEMA}.customer_360 as c where c.contact_id = t.contact_id)"
        if campaign.is_journey
        else "email"
    )
    rows = con.execute(
        f"""
        select contact_id, {email}, cast("{occasion}" as varchar), {new}, count(*) over ()
        from {BUILD_SCHEMA}."{cohort}" as t
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
