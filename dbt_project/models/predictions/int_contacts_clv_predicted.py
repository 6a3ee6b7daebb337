"""Per buyer of the window, as of D: the probability it is still a customer, its expected
purchases in the next 90 days, its expected value per purchase, its predicted value over
the next 12 months and its decile, and when its next purchase is expected should it still
be a customer (models/clv_night.py), from tonight's parameters in clv_fits. Empty on a
night without parameters (too few buyers, or a fit that never converged)."""

import datetime as dt

import polars as pl

from models.clv_night import NightFit, predict


def model(dbt, session):
    dbt.config(materialized="table")
    as_of = dt.date.fromisoformat(dbt.config.get("as_of_date"))
    fits = dbt.ref("clv_fits").pl().filter(pl.col("as_of_date") == as_of)
    fit = NightFit.from_row(fits.row(0, named=True))
    # in one order every night: sums in another order move the fit in its last digits, and
    # a value rounded to the cent with them
    inputs = dbt.ref("int_contacts_clv_inputs").pl().sort("contact_id")
    return predict(inputs, fit, as_of, monthly_discount=float(dbt.config.get("monthly_discount")))
