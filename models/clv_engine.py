"""The customer-value predictions on an engine that runs no dbt Python models (PostgreSQL,
Spark): Nightjar builds the models up to int_contacts_clv_inputs, fits here what the Python
models of dbt_project/models/predictions fit on DuckDB (models/clv_night.py), writes both
tables to schema `nightjar_predictions`, and builds the rest, whose SQL models
predictions/engines/ read them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import polars as pl

from models.clv_night import FITS_SCHEMA, nightly_fits, tonights_predictions

PREDICTIONS_SCHEMA = "nightjar_predictions"
# dbt's selections of the two halves of a build on such an engine
BEFORE_PREDICTIONS = "+int_contacts_clv_inputs"
# int_contacts_clv_inputs' columns the fit reads, with their types on any engine
INPUT_TYPES = {
    "contact_id": pl.String,
    "frequency": pl.Int64,
    "recency_weeks": pl.Float64,
    "tenure_weeks": pl.Float64,
    "repeat_value_mean": pl.Float64,
}


def fitted_tables(
    inputs: pl.DataFrame, dbt_vars: Mapping[str, Any], published: pl.DataFrame | None = None
) -> dict[str, pl.DataFrame]:
    """clv_fits and int_contacts_clv_predicted from the engine's inputs; `dbt_vars`: the
    build's (models.settings.effective_dbt_vars and the date); `published`: last night's
    published clv_fits, where a night starts from."""
    inputs = inputs.select(pl.col(name).cast(kind) for name, kind in INPUT_TYPES.items())
    as_of = dt.date.fromisoformat(str(dbt_vars["as_of_date"]))
    history = published if published is not None else pl.DataFrame(schema=FITS_SCHEMA)
    fits = nightly_fits(inputs, history, as_of, int(dbt_vars["clv_min_buyers"]))
    predicted = tonights_predictions(inputs, fits, as_of, float(dbt_vars["clv_monthly_discount"]))
    return {"clv_fits": fits, "int_contacts_clv_predicted": predicted}
