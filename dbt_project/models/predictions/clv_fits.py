"""The customer-value models fitted on the night's buyers (models/clv_night.py): one row per
business date, the history of every night's fit kept, so that a night starts from the
previous night's parameters and the Dagster UI plots them night by night.

A Python model: the maximum-likelihood fit is numpy and scipy. The history is read from
the published table (`main`), which outlives a full refresh of the build schema."""

import datetime as dt
import json

import polars as pl

from models.clv_night import NightFit, fit_night, repeat_purchases_by_frequency

PUBLISHED_SCHEMA = "main"  # assets/warehouse/publish.py: where last night's fits were published


def model(dbt, session):
    dbt.config(materialized="table")
    as_of = dt.date.fromisoformat(dbt.config.get("as_of_date"))
    # in one order every night: sums in another order move the fit in its last digits, and
    # a value rounded to the cent with them
    inputs = dbt.ref("int_contacts_clv_inputs").pl().sort("contact_id")
    history = _published_history(session, dbt.this.database)
    earlier = history.filter(pl.col("as_of_date") < as_of).sort("as_of_date")
    previous = NightFit.from_row(earlier.row(-1, named=True)) if earlier.height else None
    fit = fit_night(inputs, as_of, previous, int(dbt.config.get("min_buyers")))
    chart = repeat_purchases_by_frequency(inputs, fit)
    tonight = pl.DataFrame(
        [{**fit.row(), "repeat_purchases_by_frequency": json.dumps(chart)}],
        schema=SCHEMA,
    )
    # a date run again replaces its own row; the other nights' stay
    return pl.concat([history.filter(pl.col("as_of_date") != as_of), tonight]).sort("as_of_date")


SCHEMA = {
    "as_of_date": pl.Date,
    "status": pl.String,
    "buyers": pl.Int64,
    "repeat_buyers": pl.Int64,
    "r": pl.Float64,
    "alpha": pl.Float64,
    "a": pl.Float64,
    "b": pl.Float64,
    "bgnbd_log_likelihood": pl.Float64,
    "p": pl.Float64,
    "q": pl.Float64,
    "gamma": pl.Float64,
    "gamma_gamma_log_likelihood": pl.Float64,
    "gamma_gamma_buyers": pl.Int64,
    "frequency_value_correlation": pl.Float64,
    "warm_started": pl.Boolean,
    "iterations": pl.Int64,
    "fit_seconds": pl.Float64,
    "parameters_from": pl.Date,
    "repeat_purchases_by_frequency": pl.String,
}


def _published_history(session, database: str) -> pl.DataFrame:
    found = session.execute(
        "select count(*) from information_schema.tables "
        "where table_catalog = ? and table_schema = ? and table_name = 'clv_fits'",
        [database, PUBLISHED_SCHEMA],
    ).fetchall()[0][0]
    if not found:
        return pl.DataFrame(schema=SCHEMA)
    published = session.sql(f'select * from "{database}".{PUBLISHED_SCHEMA}.clv_fits').pl()
    # a column added since that night is empty for it
    return published.select(
        pl.col(c).cast(t) if c in published.columns else pl.lit(None, t).alias(c)
        for c, t in SCHEMA.items()
    )
