"""Per buyer of the window, as of D: the probability it is still a customer, its expected
purchases in the next 90 days, its expected value per purchase, its predicted value over
the next 12 months and its decile, and when its next purchase is expected should it still
be a customer (models/clv_night.py), from tonight's parameters in clv_fits. Empty on a
night without parameters (too few buyers, or a fit that never converged). A Python model on
DuckDB; engines/int_contacts_clv_predicted.sql on another engine (models/clv_engine.py)."""

import datetime as dt

from models.clv_night import tonights_predictions


def model(dbt, session):
    dbt.config(materialized="table")
    as_of = dt.date.fromisoformat(dbt.config.get("as_of_date"))
    return tonights_predictions(
        dbt.ref("int_contacts_clv_inputs").pl(),
        dbt.ref("clv_fits").pl(),
        as_of,
        monthly_discount=float(dbt.config.get("monthly_discount")),
    )
