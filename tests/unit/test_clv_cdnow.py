"""The BG/NBD and Gamma-Gamma models (models/clv.py) against their published figures on the
CDNOW 1/10 sample (tests/fixtures/cdnow): 2,357 customers with a first purchase in the first
quarter of 1997, a 39-week calibration period ending 1997-09-30, time in weeks, purchases of
one day merged into one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from models.clv import (
    BgNbd,
    expected_purchases,
    expected_purchases_of_a_new_customer,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    p_alive,
)

SAMPLE = Path(__file__).parents[1] / "fixtures" / "cdnow" / "CDNOW_sample.txt"
CALIBRATION_END = dt.date(1997, 9, 30)
HOLDOUT_END = dt.date(1998, 6, 30)


def purchase_days() -> pl.DataFrame:
    rows = [line.split() for line in SAMPLE.read_text().splitlines() if line.strip()]
    frame = pl.DataFrame(
        {
            "customer": [r[1] for r in rows],
            "day": [dt.datetime.strptime(r[2], "%Y%m%d").date() for r in rows],
            "value": [float(r[4]) for r in rows],
        }
    )
    return frame.group_by("customer", "day").agg(pl.col("value").sum())


@pytest.fixture(scope="module")
def calibration() -> pl.DataFrame:
    days = purchase_days()
    first = days.group_by("customer").agg(pl.col("day").min().alias("first"))
    in_calibration = days.join(first, on="customer").filter(pl.col("day") <= CALIBRATION_END)
    weeks = lambda later, earlier: (later - earlier).dt.total_days() / 7  # noqa: E731
    summary = in_calibration.group_by("customer").agg(
        (pl.len() - 1).alias("x"),
        weeks(pl.col("day").max(), pl.col("first").first()).alias("t_x"),
        weeks(pl.lit(CALIBRATION_END), pl.col("first").first()).alias("T"),
        # the mean value of the repeat purchases: all but the first
        pl.col("value").sort_by("day").slice(1).mean().alias("m"),
    )
    holdout = (
        days.filter(pl.col("day") > CALIBRATION_END)
        .group_by("customer")
        .agg(pl.len().alias("holdout"))
    )
    return summary.join(holdout, on="customer", how="left").fill_null(
        strategy="zero", matches_supertype=False
    )


@pytest.fixture(scope="module")
def bgnbd(calibration):
    c = calibration
    return fit_bgnbd(c["x"], c["t_x"], c["T"])


def test_the_sample_is_the_published_one(calibration):
    assert calibration.height == 2357
    assert calibration["x"].sum() == 2457  # repeat purchase days in the calibration period


def test_bgnbd_reproduces_fader_hardie_lee(bgnbd):
    assert bgnbd.converged
    assert bgnbd.log_likelihood == pytest.approx(-9582.43, abs=0.01)
    fitted = bgnbd.model
    published = {"r": 0.2426, "alpha": 4.4136, "a": 0.7930, "b": 2.4262}
    for name, value in published.items():
        assert getattr(fitted, name) == pytest.approx(value, rel=0.005), name


def test_one_customers_prediction_at_the_published_parameters():
    # the paper's example customer: x = 2, t_x = 30.4286 (213 days), T = 38.8571 (272 days)
    published = BgNbd(r=0.2426, alpha=4.4136, a=0.7930, b=2.4262)
    x, t_x, T = 2, 213 / 7, 272 / 7
    assert p_alive(published, x, t_x, T) == pytest.approx(0.7266175, rel=1e-6)
    assert expected_purchases(published, 39, x, t_x, T) == pytest.approx(1.2259851, rel=1e-6)


def test_the_holdout_period_sum(bgnbd, calibration):
    c = calibration
    expected = expected_purchases(bgnbd.model, 39, c["x"], c["t_x"], c["T"]).sum()
    assert expected == pytest.approx(1653.4, abs=0.5)


def test_gamma_gamma_reproduces_fader_hardie(calibration):
    repeat = calibration.filter(pl.col("x") > 0)
    fit = fit_gamma_gamma(repeat["x"], repeat["m"])
    assert fit.converged and fit.customers == 946
    assert fit.log_likelihood == pytest.approx(-4055.92, abs=0.01)
    published = {"p": 6.2496, "q": 3.7442, "gamma": 15.4433}
    for name, value in published.items():
        assert getattr(fit.model, name) == pytest.approx(value, rel=0.005), name
    # a customer's expected spend lies between its own mean and the population's
    spend = expected_spend(fit.model, repeat["x"], repeat["m"])
    population = fit.model.p * fit.model.gamma / (fit.model.q - 1)
    low = np.minimum(repeat["m"].to_numpy(), population)
    high = np.maximum(repeat["m"].to_numpy(), population)
    assert np.all((spend >= low - 1e-9) & (spend <= high + 1e-9))


def test_extreme_histories_give_finite_figures(bgnbd):
    # hundreds of purchases, years of tenure, a long silence, a purchase today
    x = np.array([0, 1, 300, 800, 800, 5000])
    t_x = np.array([0, 1, 500, 520, 10, 1000])
    T = np.array([0.5, 900, 520, 520, 1040, 1000])
    alive = p_alive(bgnbd.model, x, t_x, T)
    future = expected_purchases(bgnbd.model, 52, x, t_x, T)
    assert np.all(np.isfinite(alive)) and np.all((alive >= 0) & (alive <= 1))
    assert np.all(np.isfinite(future)) and np.all(future >= 0)
    assert alive[4] < 1e-6  # 800 purchases, then 20 years of silence: gone
    assert future[3] > future[2] > 0  # buys weekly until today: more than the slower one
    assert np.isfinite(expected_purchases_of_a_new_customer(bgnbd.model, np.array([1, 1e4]))).all()


def test_a_warm_start_converges_to_the_same_fit(bgnbd, calibration):
    c = calibration
    fitted = bgnbd.model
    nudged = BgNbd(*(1.1 * v for v in (fitted.r, fitted.alpha, fitted.a, fitted.b)))
    again = fit_bgnbd(c["x"], c["t_x"], c["T"], start=nudged)
    assert again.log_likelihood == pytest.approx(bgnbd.log_likelihood, abs=1e-6)


def test_a_repeat_customer_who_spent_nothing_is_left_out_of_the_spend_fit(calibration):
    repeat = calibration.filter(pl.col("x") > 0)
    fit = fit_gamma_gamma(repeat["x"], repeat["m"])
    with_free_orders = fit_gamma_gamma([*repeat["x"], 3], [*repeat["m"], 0.0])
    assert with_free_orders.customers == fit.customers
    assert with_free_orders.log_likelihood == pytest.approx(fit.log_likelihood, abs=1e-6)


@pytest.mark.parametrize(
    "at", [(0.2426, 4.4136, 0.7930, 2.4262), (1.0, 1.0, 1.0, 1.0), (0.7, 3.0, 0.2, 11.0)]
)
def test_the_fits_own_likelihood_and_gradient_are_the_published_ones(calibration, at):
    # the optimiser reads the likelihood computed once per purchase count, and its analytic
    # gradient: both must be equation 6 and its derivatives, customer by customer
    from scipy import optimize

    from models.clv import _bgnbd_log_likelihoods_and_gradients, bgnbd_log_likelihoods

    x, t_x, T = (calibration[c].to_numpy().astype(float) for c in ("x", "t_x", "T"))
    by_count = np.unique(x, return_inverse=True)

    def fast(log_params):
        return _bgnbd_log_likelihoods_and_gradients(BgNbd(*np.exp(log_params)), x, t_x, T, by_count)

    each, _ = fast(np.log(at))
    assert np.allclose(each, bgnbd_log_likelihoods(BgNbd(*at), x, t_x, T), rtol=1e-12, atol=1e-9)
    error = optimize.check_grad(
        lambda p: fast(p)[0].sum(), lambda p: fast(p)[1].sum(axis=0), np.log(at)
    )
    # finite differences are good to about 1e-8 of the log-likelihood; at the optimum the
    # gradient itself is about that
    total, gradient = fast(np.log(at))[0].sum(), fast(np.log(at))[1].sum(axis=0)
    assert error < 1e-7 * abs(total) + 1e-5 * np.abs(gradient).max()


@pytest.mark.parametrize("at", [(6.2496, 3.7442, 15.4433), (1.0, 1.0, 1.0), (1.6, 7.6, 322.6)])
def test_the_spend_fits_own_likelihood_and_gradient_are_the_published_ones(calibration, at):
    from scipy import optimize

    from models.clv import (
        GammaGamma,
        _gamma_gamma_log_likelihoods_and_gradients,
        gamma_gamma_log_likelihoods,
    )

    repeat = calibration.filter(pl.col("x") > 0)
    x, m = (repeat[c].to_numpy().astype(float) for c in ("x", "m"))
    by_count = np.unique(x, return_inverse=True)

    def fast(log_params):
        model = GammaGamma(*np.exp(log_params))
        return _gamma_gamma_log_likelihoods_and_gradients(
            model, x, m, np.log(m), np.log(x), by_count
        )

    each, _ = fast(np.log(at))
    assert np.allclose(
        each, gamma_gamma_log_likelihoods(GammaGamma(*at), x, m), rtol=1e-12, atol=1e-9
    )
    error = optimize.check_grad(
        lambda p: fast(p)[0].sum(), lambda p: fast(p)[1].sum(axis=0), np.log(at)
    )
    # finite differences are good to about 1e-8 of the log-likelihood; at the optimum the
    # gradient itself is about that
    total, gradient = fast(np.log(at))[0].sum(), fast(np.log(at))[1].sum(axis=0)
    assert error < 1e-7 * abs(total) + 1e-5 * np.abs(gradient).max()
