"""A night's customer-value models: fit BG/NBD and Gamma-Gamma on the window's buyers
(models/clv.py), warm-started from the previous night's parameters, and predict per contact.

The dbt Python models of dbt_project/models/predictions call these on DuckDB, and
models/clv_engine.py on any other engine; what is here knows frames and numbers, not dbt or
the warehouse, so that a test drives it with any history.

Inputs, one row per buyer of the window (int_contacts_clv_inputs): `frequency` (repeat
purchase days), `recency_weeks`, `tenure_weeks` and `repeat_value_mean`.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import time
from dataclasses import asdict, dataclass, fields

import numpy as np
import polars as pl
from scipy import special

from models.clv import (
    BgNbd,
    Fit,
    GammaGamma,
    distinct_rows,
    expected_purchases,
    expected_purchases_by_horizon,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    p_alive,
)

WEEK_DAYS = 7.0
MONTH_WEEKS = 365.25 / 12 / WEEK_DAYS
# The chart of repeat purchases by frequency shows 0 .. 6 and "7 or more", as the
# published check does (Fader, Hardie & Lee 2005, figure 1).
CHART_MAX = 7

# Below this p_alive the next purchase's window is left empty: it holds only should the
# customer still be one, which it most likely is not.
MOSTLY_GONE = 0.1

# What a night's fit row says about its parameters.
FITTED = "fitted"
FITTED_COLD = "fitted (the warm start did not converge; fitted again from scratch)"
KEPT = "not converged: the previous night's parameters are kept"
NOT_CONVERGED = "not converged: no predictions tonight"
TOO_FEW = "too few buyers: no predictions"


@dataclass(frozen=True)
class NightFit:
    """One night's fit as clv_fits records it (one row per business date)."""

    as_of_date: dt.date
    status: str
    buyers: int
    repeat_buyers: int
    r: float | None = None
    alpha: float | None = None
    a: float | None = None
    b: float | None = None
    bgnbd_log_likelihood: float | None = None
    p: float | None = None
    q: float | None = None
    gamma: float | None = None
    gamma_gamma_log_likelihood: float | None = None
    gamma_gamma_buyers: int = 0
    # The Gamma-Gamma model assumes spend per purchase independent of how often one buys:
    # a correlation far from 0 says its predictions are biased.
    frequency_value_correlation: float | None = None
    warm_started: bool = False
    iterations: int = 0
    fit_seconds: float = 0.0
    parameters_from: dt.date | None = None  # the night whose parameters predict tonight

    @property
    def bgnbd(self) -> BgNbd | None:
        return None if self.r is None else BgNbd(self.r, self.alpha, self.a, self.b)

    @property
    def gamma_gamma(self) -> GammaGamma | None:
        return None if self.p is None else GammaGamma(self.p, self.q, self.gamma)

    def row(self) -> dict:
        """As plain Python values (numpy's scalars are not every writer's)."""
        return {k: v.item() if hasattr(v, "item") else v for k, v in asdict(self).items()}

    @classmethod
    def from_row(cls, row: dict) -> NightFit:
        """A recorded fit; columns it does not know (the chart) are left out."""
        return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in row})


def _columns(inputs: pl.DataFrame) -> tuple[np.ndarray, ...]:
    return (
        inputs["frequency"].cast(pl.Float64).to_numpy(),
        inputs["recency_weeks"].cast(pl.Float64).to_numpy(),
        inputs["tenure_weeks"].cast(pl.Float64).to_numpy(),
        inputs["repeat_value_mean"].cast(pl.Float64).fill_null(0.0).to_numpy(),
    )


def fit_night(
    inputs: pl.DataFrame, as_of: dt.date, previous: NightFit | None, min_buyers: int
) -> NightFit:
    """Tonight's fit: from the previous night's parameters if there are any (a night's new
    data moves them little, so the optimiser starts next to the answer), from scratch when
    that does not converge; the previous night's parameters when neither does."""
    x, t_x, T, m = _columns(inputs)
    counts = {"buyers": len(x), "repeat_buyers": int((x > 0).sum())}
    if len(x) < min_buyers:
        return NightFit(as_of, TOO_FEW, **counts)
    started = time.perf_counter()
    warm = previous is not None and previous.bgnbd is not None
    # from the previous night's parameters rounded as _settled rounds: when tonight's
    # rounded parameters are the same, this fit is already the settled one
    bg_start = _rounded(previous.bgnbd) if warm else None
    gg_start = _rounded(previous.gamma_gamma) if warm and previous.gamma_gamma else None
    bg = fit_bgnbd(x, t_x, T, start=bg_start)
    gg = fit_gamma_gamma(x, m, start=gg_start)
    status = FITTED
    data = (x, t_x, T, m)
    # a fit checked once however often it is asked about: a check evaluates the models for
    # every buyer
    usable = functools.cache(lambda fit: _usable(fit, data))
    if warm and not (usable(bg) and usable(gg)):
        bg, bg_start = (bg, bg_start) if usable(bg) else (fit_bgnbd(x, t_x, T), None)
        gg, gg_start = (gg, gg_start) if usable(gg) else (fit_gamma_gamma(x, m), None)
        status = FITTED_COLD
    bg, gg = _settled(bg, data, bg_start, usable), _settled(gg, data, gg_start, usable)
    iterations = bg.iterations + gg.iterations
    seconds = round(time.perf_counter() - started, 3)
    if not (usable(bg) and usable(gg)):
        kept = previous if previous is not None and previous.bgnbd is not None else None
        return NightFit(
            as_of,
            KEPT if kept else NOT_CONVERGED,
            **counts,
            **(_parameters_of(kept) if kept else {}),
            warm_started=warm,
            iterations=iterations,
            fit_seconds=seconds,
            parameters_from=kept.parameters_from if kept else None,
        )
    repeat = (x > 0) & (m > 0)
    correlation = float(np.corrcoef(x[repeat], m[repeat])[0, 1]) if repeat.sum() > 2 else None
    return NightFit(
        as_of,
        status,
        **counts,
        **asdict(bg.model),
        bgnbd_log_likelihood=bg.log_likelihood,
        **asdict(gg.model),
        gamma_gamma_log_likelihood=gg.log_likelihood,
        gamma_gamma_buyers=gg.customers,
        frequency_value_correlation=_finite(correlation),
        warm_started=warm,
        iterations=iterations,
        fit_seconds=seconds,
        parameters_from=as_of,
    )


# Significant digits of the point a fit is finished from (_settled).
SETTLE_DIGITS = 2


def _settled(fit: Fit, data: tuple[np.ndarray, ...], started_from, usable) -> Fit:
    """The fit finished again from its parameters rounded to SETTLE_DIGITS significant digits.
    The optimiser stops within about 1e-5 of the optimum, at a point that depends on where it
    started: from the previous night's parameters, from scratch, or (after a lost history)
    from another night's. Rounded, the starts of those runs are almost always one and the same
    point, and so are the parameters they end at: re-running a date gives the same cents
    whatever ran before it (unless the optimum lies on a rounding boundary, about one night in
    a hundred). A fit that `started_from` that very point is already finished from it (most
    warm-started nights: a night moves the parameters less than the rounding); another costs
    a few iterations from next to the optimum."""
    start = _rounded(fit.model)
    if start == started_from or not usable(fit):
        return fit
    x, t_x, T, m = data
    if isinstance(start, BgNbd):
        again = fit_bgnbd(x, t_x, T, start=start)
    else:
        again = fit_gamma_gamma(x, m, start=start)
    if not usable(again):
        return fit
    return Fit(
        again.model, again.log_likelihood, again.customers, True, fit.iterations + again.iterations
    )


def _rounded(model: BgNbd | GammaGamma) -> BgNbd | GammaGamma:
    return type(model)(*(float(f"{v:.{SETTLE_DIGITS}g}") for v in asdict(model).values()))


def _usable(fit: Fit, data: tuple[np.ndarray, ...]) -> bool:
    """Converged, and to parameters the predictions can use: E[X(t)] divides by a - 1 and
    the expected spend by q - 1; and tonight's buyers' figures computed from them are finite,
    each expected spend between the least and the most a repeat buyer spent (it is a mean
    of its own and everyone's). Where the likelihood grows without end (every repeat purchase
    at one price; a handful of buyers) the optimiser "converges" to parameters of 1e50 and
    more, whose figures are NaN or nonsense: those predict nothing."""
    model = fit.model
    finite = all(math.isfinite(v) for v in asdict(model).values())
    x, t_x, T, m = data
    with np.errstate(all="ignore"):
        if isinstance(model, BgNbd):
            if not (fit.converged and finite and abs(model.a - 1) > 1e-6):
                return False
            return bool(np.isfinite(expected_purchases(model, 90 / WEEK_DAYS, x, t_x, T)).all())
        if not (fit.converged and finite and model.q > 1):
            return False
        spend = expected_spend(model, x, m)
        spent = m[(x >= 1) & (m > 0)]
        if not np.isfinite(spend).all() or not spent.size:
            return False
        repeat = spend[(x >= 1) & (m > 0)]
        everyone = model.p * model.gamma / (model.q - 1)
        low, high = spent.min() * (1 - 1e-6) - 0.005, spent.max() * (1 + 1e-6) + 0.005
        return bool(low <= everyone <= high and (low <= repeat).all() and (repeat <= high).all())


def _parameters_of(fit: NightFit) -> dict:
    names = ("r", "alpha", "a", "b", "p", "q", "gamma")
    return {name: getattr(fit, name) for name in names}


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def predict(
    inputs: pl.DataFrame,
    fit: NightFit,
    as_of: dt.date,
    horizon_days: int = 90,
    monthly_discount: float = 0.01,
) -> pl.DataFrame:
    """Per buyer of the window: the probability it is still a customer, its expected
    purchases in the next `horizon_days`, its expected value per purchase, its predicted
    value over the next 12 months (each month's expected purchases times that value,
    discounted by `monthly_discount` a month), the central half of the time of its next
    purchase should it still be a customer, and the decile of its predicted value (1 = the
    most valuable tenth). Empty when the night has no parameters."""
    bg, gg = fit.bgnbd, fit.gamma_gamma
    if bg is None or gg is None or inputs.height == 0:
        return _empty_predictions()
    x, t_x, T, m = _columns(inputs)
    alive = p_alive(bg, x, t_x, T)
    spend = expected_spend(gg, x, m)
    # the end of each of the next 12 months, then the horizon: one row each
    horizons = np.append(np.arange(1, 13) * MONTH_WEEKS, horizon_days / WEEK_DAYS)
    expected = expected_purchases_by_horizon(bg, horizons, x, t_x, T)
    per_month = np.diff(np.vstack([np.zeros_like(x), expected[:12]]), axis=0)
    discount = (1 + monthly_discount) ** -np.arange(1, 13)
    clv = spend * (discount[:, None] * per_month).sum(axis=0)
    # Should it still be a customer, its purchase rate is Gamma(r + x, alpha + T) after its
    # history, so the wait w for the next purchase has P(w > t) = ((alpha+T)/(alpha+T+t))^(r+x):
    # the quartiles of w in closed form.
    shape, scale = bg.r + x, bg.alpha + T
    early, late = (scale * np.expm1(-np.log1p(-q) / shape) for q in (0.25, 0.75))
    # A customer most likely gone has no next purchase to plan for: no window
    gone = alive < MOSTLY_GONE
    early, late = np.where(gone, np.nan, early), np.where(gone, np.nan, late)
    frame = pl.DataFrame(
        {
            "contact_id": inputs["contact_id"],
            "p_alive": alive,
            f"expected_purchases_{horizon_days}d": expected[12],
            "expected_purchase_value": np.round(spend, 2),  # money: to the cent
            "predicted_clv_12m": np.round(clv, 2),
            "next_purchase_from": _days_after(as_of, early),
            "next_purchase_to": _days_after(as_of, late),
        }
    ).with_columns(
        # NaN never leaves this function: a figure that cannot be computed is unknown
        pl.col(pl.Float64).fill_nan(None)
    )
    rank = pl.col("predicted_clv_12m").rank("ordinal", descending=True)
    return frame.with_columns(
        ((rank - 1) * 10 // frame.height + 1).cast(pl.Int32).alias("predicted_clv_decile")
    )


# A next purchase further off than this is no window a marketer plans with.
_FARTHEST_DAYS = 5 * 365


def _days_after(as_of: dt.date, weeks: np.ndarray) -> pl.Series:
    days = np.round(weeks * WEEK_DAYS)
    known = np.isfinite(days) & (days <= _FARTHEST_DAYS)
    epoch_days = (as_of - dt.date(1970, 1, 1)).days + np.where(known, days, 0)
    return (
        pl.Series(epoch_days.astype(np.int32)).cast(pl.Date).scatter(np.flatnonzero(~known), None)
    )


def _empty_predictions() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "contact_id": pl.String,
            "p_alive": pl.Float64,
            "expected_purchases_90d": pl.Float64,
            "expected_purchase_value": pl.Float64,
            "predicted_clv_12m": pl.Float64,
            "next_purchase_from": pl.Date,
            "next_purchase_to": pl.Date,
            "predicted_clv_decile": pl.Int32,
        }
    )


def repeat_purchases_by_frequency(inputs: pl.DataFrame, fit: NightFit) -> list[dict]:
    """The published model's check: how many buyers made 0, 1, ... 6 and 7 or more repeat
    purchases in their time since the first, as counted and as BG/NBD expects from each
    buyer's own time (the sum over the buyers of P(X(T) = k))."""
    if fit.bgnbd is None or inputs.height == 0:
        return []
    x, _, T, _ = _columns(inputs)
    # the same T, the same probabilities: once per distinct T, weighed by its buyers
    (times,), buyers, _ = distinct_rows(T)
    expected = purchase_count_probabilities(fit.bgnbd, times, CHART_MAX) @ buyers
    actual = [int((x == k).sum()) for k in range(CHART_MAX)] + [int((x >= CHART_MAX).sum())]
    return [
        {"repeat_purchases": f"{k}" if k < CHART_MAX else f"{k}+", "actual": n, "expected": e}
        for k, (n, e) in enumerate(zip(actual, expected.tolist(), strict=True))
    ]


def purchase_count_probabilities(model: BgNbd, t, max_count: int) -> np.ndarray:
    """P(X(t) = k) for k = 0 .. max_count - 1 and P(X(t) >= max_count) in the last row, for
    each t (Fader, Hardie & Lee 2005, equation 8), in log space."""
    t = np.asarray(t, dtype=float)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    log_beta_ab = special.betaln(a, b)
    log_no_drop = r * (np.log(alpha) - np.log(alpha + t))
    with np.errstate(divide="ignore"):  # t = 0: a buyer of D only, P(X = 0) = 1
        log_ratio = np.log(t) - np.log(alpha + t)
    rows, partial = [], np.zeros_like(t)  # partial: sum of the NBD terms j < k
    for k in range(max_count):
        log_nbd = (
            special.gammaln(r + k)
            - special.gammaln(r)
            - special.gammaln(k + 1)
            + log_no_drop
            + (k * log_ratio if k else 0.0)
        )
        nbd = np.exp(log_nbd)
        still = np.exp(special.betaln(a, b + k) - log_beta_ab) * nbd
        dropped = (
            np.exp(special.betaln(a + 1, b + k - 1) - log_beta_ab) * (1 - partial) if k > 0 else 0.0
        )
        rows.append(still + dropped)
        partial = partial + nbd
    probabilities = np.vstack(rows)
    return np.vstack([probabilities, np.clip(1 - probabilities.sum(axis=0), 0, 1)])


# clv_fits: one row per night fitted, every night's kept.
FITS_SCHEMA = {
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


def nightly_fits(
    inputs: pl.DataFrame, published: pl.DataFrame, as_of: dt.date, min_buyers: int
) -> pl.DataFrame:
    """clv_fits as of `as_of`: the `published` history (last night's table) with tonight's
    fit, started from the latest earlier night's parameters. A date run again replaces its
    own row; the other nights' stay."""
    # a column added since a night is empty for it
    history = published.select(
        pl.col(c).cast(t) if c in published.columns else pl.lit(None, t).alias(c)
        for c, t in FITS_SCHEMA.items()
    )
    # in one order every night: sums in another order move the fit in its last digits, and
    # a value rounded to the cent with them
    inputs = inputs.sort("contact_id")
    earlier = history.filter(pl.col("as_of_date") < as_of).sort("as_of_date")
    previous = NightFit.from_row(earlier.row(-1, named=True)) if earlier.height else None
    fit = fit_night(inputs, as_of, previous, min_buyers)
    chart = repeat_purchases_by_frequency(inputs, fit)
    tonight = pl.DataFrame(
        [{**fit.row(), "repeat_purchases_by_frequency": json.dumps(chart)}], schema=FITS_SCHEMA
    )
    return pl.concat([history.filter(pl.col("as_of_date") != as_of), tonight]).sort("as_of_date")


def tonights_predictions(
    inputs: pl.DataFrame, fits: pl.DataFrame, as_of: dt.date, monthly_discount: float
) -> pl.DataFrame:
    """int_contacts_clv_predicted: per buyer, from tonight's row of `fits`."""
    fit = NightFit.from_row(fits.filter(pl.col("as_of_date") == as_of).row(0, named=True))
    # in one order every night, as the fit
    return predict(inputs.sort("contact_id"), fit, as_of, monthly_discount=monthly_discount)
