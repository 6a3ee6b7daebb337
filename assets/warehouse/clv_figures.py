"""What the night's customer-value fit shows in the Dagster UI (clv_fits): its parameters,
log-likelihoods, buyers and the Gamma-Gamma assumption's correlation, each a number Dagster
plots night by night, and the published model's check as a chart: buyers by number of repeat
purchases, counted and as the model expects them."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import duckdb
from dagster import MetadataValue

from assets.shared.previews import markdown_table
from assets.warehouse.publish import BUILD_SCHEMA, tables_in

# Each figure under the name the UI plots it by: words, as every plotted figure's
_NUMBERS = {
    "buyers": "buyers",
    "repeat_buyers": "repeat buyers",
    "r": "r",
    "alpha": "alpha",
    "a": "a",
    "b": "b",
    "bgnbd_log_likelihood": "purchase model log likelihood",
    "p": "p",
    "q": "q",
    "gamma": "gamma",
    "gamma_gamma_log_likelihood": "spend model log likelihood",
    "frequency_value_correlation": "frequency and spend correlation",
    "iterations": "iterations",
    "fit_seconds": "fit seconds",
}
_BAR_WIDTH = 24  # characters of the longest bar


def clv_figures(con: duckdb.DuckDBPyConnection, day: dt.date) -> dict[str, Any]:
    """Tonight's row of the build's clv_fits as metadata; nothing if it was not built."""
    if "clv_fits" not in tables_in(con, BUILD_SCHEMA):
        return {}
    cursor = con.execute(f"select * from {BUILD_SCHEMA}.clv_fits where as_of_date = ?", [day])
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    if not rows:
        return {}
    fit = dict(zip(names, rows[0], strict=True))
    figures: dict[str, Any] = {"fit": fit["status"]}
    figures.update({words: fit[name] for name, words in _NUMBERS.items() if fit[name] is not None})
    if fit.get("parameters_from") and fit["parameters_from"] != day:
        figures["parameters from"] = fit["parameters_from"].isoformat()
    chart = json.loads(fit.get("repeat_purchases_by_frequency") or "[]")
    if chart:
        figures["repeat purchases, counted and expected"] = MetadataValue.md(_chart(chart))
    return figures


def _chart(rows: list[dict]) -> str:
    """A bar per number of repeat purchases, counted (█) and expected (░), to one scale."""
    top = max(max(r["actual"], r["expected"]) for r in rows) or 1
    bar = lambda n, mark: mark * round(_BAR_WIDTH * n / top) or "·"  # noqa: E731
    table = [
        (
            r["repeat_purchases"],
            r["actual"],
            round(r["expected"], 1),
            bar(r["actual"], "█"),
            bar(r["expected"], "░"),
        )
        for r in rows
    ]
    return (
        "Buyers of the fitting window by repeat purchases since their first: counted, and as "
        "BG/NBD expects them. Bars far apart say the model does not fit these customers.\n\n"
        + markdown_table(
            ["repeat purchases", "buyers counted", "buyers expected", "counted", "expected"], table
        )
    )
