"""The customer-value models fitted on the night's buyers (models/clv_night.py): one row per
business date, the history of every night's fit kept, so that a night starts from the
previous night's parameters and the Dagster UI plots them night by night.

A Python model on DuckDB: the maximum-likelihood fit is numpy and scipy. Another engine runs
no dbt Python model: Nightjar fits the same way between two halves of the build
(models/clv_engine.py), and the SQL model engines/clv_fits.sql reads the result. The history
is read from the published table (`main`), which outlives a full refresh of the build schema."""

import datetime as dt

import polars as pl

from models.clv_night import FITS_SCHEMA, nightly_fits

PUBLISHED_SCHEMA = "main"  # assets/warehouse/publish.py: where last night's fits were published


def model(dbt, session):
    dbt.config(materialized="table")
    as_of = dt.date.fromisoformat(dbt.config.get("as_of_date"))
    inputs = dbt.ref("int_contacts_clv_inputs").pl()
    history = _published_history(session, dbt.this.database)
    return nightly_fits(inputs, history, as_of, int(dbt.config.get("min_buyers")))


def _published_history(session, database: str) -> pl.DataFrame:
    found = session.execute(
        "select count(*) from information_schema.tables "
        "where table_catalog = ? and table_schema = ? and table_name = 'clv_fits'",
        [database, PUBLISHED_SCHEMA],
    ).fetchall()[0][0]
    if not found:
        return pl.DataFrame(schema=FITS_SCHEMA)
    return session.sql(f'select * from "{database}".{PUBLISHED_SCHEMA}.clv_fits').pl()
