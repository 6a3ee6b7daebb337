"""A night's fit and predictions (models/clv_night.py) as the dbt Python models run them:
on the CDNOW sample, against the published model's check, from the previous night's
parameters, and on histories no model should choke on."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import polars as pl
import pytest

from models import clv_night
from models.clv_night import NightFit, fit_night, predict, repeat_purchases_by_frequency
from tests.unit.test_clv_cdnow import CALIBRATION_END

pytest_plugins = ["tests.unit.test_clv_cdnow"]


@pytest.fixture(scope="module")
def inputs(calibration) -> pl.DataFrame:
    return calibration.rename(
        {
            "customer": "contact_id",
            "x": "frequency",
            "t_x": "recency_weeks",
            "T": "tenure_weeks",
            "m": "repeat_value_mean",
        }
    ).with_columns(pl.col("repeat_value_mean").replace(0.0, None))


@pytest.fixture(scope="module")
def night(inputs) -> NightFit:
    return fit_night(inputs, CALIBRATION_END, None, min_buyers=500)


def test_a_night_fits_the_published_parameters(night):
    assert night.status == clv_night.FITTED
    assert (night.buyers, night.repeat_buyers, night.gamma_gamma_buyers) == (2357, 946, 946)
    assert night.bgnbd_log_likelihood == pytest.approx(-9582.43, abs=0.01)
    assert night.gamma_gamma_log_likelihood == pytest.approx(-4055.92, abs=0.01)
    # Fader & Hardie 2013 report a correlation of 0.11 between frequency and mean spend
    assert night.frequency_value_correlation == pytest.approx(0.11, abs=0.01)
    assert night.parameters_from == CALIBRATION_END


def test_the_chart_shows_repeat_purchases_counted_and_expected(inputs, night):
    chart = repeat_purchases_by_frequency(inputs, night)
    assert [row["repeat_purchases"] for row in chart] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    # Fader, Hardie & Lee 2005, figure 1: the counts of the sample, and the model close by
    assert [row["actual"] for row in chart] == [1411, 439, 214, 100, 62, 38, 29, 64]
    assert sum(row["expected"] for row in chart) == pytest.approx(2357, abs=1e-6)
    assert chart[0]["expected"] == pytest.approx(1407.7, abs=0.1)
    assert chart[1]["expected"] == pytest.approx(460.3, abs=0.1)


def test_the_next_night_starts_from_the_last_and_lands_on_the_same_fit(inputs, night):
    again = fit_night(inputs, CALIBRATION_END + dt.timedelta(days=1), night, min_buyers=500)
    assert again.warm_started and again.status == clv_night.FITTED
    assert again.iterations < night.iterations
    assert again.bgnbd_log_likelihood == pytest.approx(night.bgnbd_log_likelihood, abs=1e-4)
    assert again.r == pytest.approx(night.r, rel=1e-3)


def test_a_date_gives_the_same_parameters_whatever_ran_before_it(inputs, night):
    """Re-running a date gives the same cents: from scratch, from the previous night's fit or
    from another night's, the fit ends at the same parameters, to the last bit."""
    other_night = dataclasses.replace(
        night, r=night.r * 1.05, alpha=night.alpha * 0.95, a=night.a * 1.1, p=night.p * 0.9
    )
    for previous in (night, other_night):
        again = fit_night(inputs, CALIBRATION_END, previous, min_buyers=500)
        assert again.bgnbd == night.bgnbd and again.gamma_gamma == night.gamma_gamma


def test_too_few_buyers_fit_and_predict_nothing(inputs):
    fit = fit_night(inputs.head(100), CALIBRATION_END, None, min_buyers=500)
    assert fit.status == clv_night.TOO_FEW and fit.bgnbd is None
    assert predict(inputs.head(100), fit, CALIBRATION_END).height == 0


def test_a_fit_that_does_not_converge_keeps_the_previous_nights(inputs, night, monkeypatch):
    fitted = clv_night.fit_bgnbd(
        inputs["frequency"], inputs["recency_weeks"], inputs["tenure_weeks"]
    )
    stuck = clv_night.Fit(fitted.model, fitted.log_likelihood, fitted.customers, False, 2000)
    monkeypatch.setattr(clv_night, "fit_bgnbd", lambda *args, **kwargs: stuck)
    tonight = CALIBRATION_END + dt.timedelta(days=1)
    kept = fit_night(inputs, tonight, night, min_buyers=500)
    assert kept.status == clv_night.KEPT
    assert kept.parameters_from == CALIBRATION_END and kept.r == night.r
    assert predict(inputs, kept, tonight).height == inputs.height
    nothing = fit_night(inputs, tonight, None, min_buyers=500)
    assert nothing.status == clv_night.NOT_CONVERGED and nothing.bgnbd is None


def test_predictions_of_the_published_customer(inputs, night):
    predicted = predict(inputs, night, CALIBRATION_END)
    first = predicted.row(by_predicate=pl.col("contact_id") == "0001", named=True)
    # x = 2, t_x = 30.43, T = 38.86 weeks: P(alive) as published (at the fitted parameters)
    assert first["p_alive"] == pytest.approx(0.7266, abs=1e-3)
    assert first["expected_purchases_90d"] == pytest.approx(
        clv_night.expected_purchases(night.bgnbd, 90 / 7, 2, 30.428571, 38.857143)[()], rel=1e-6
    )
    assert first["next_purchase_from"] < first["next_purchase_to"]
    # a one-off buyer is alive by the model's definition; its value is everyone's mean
    once = predicted.filter(
        pl.col("contact_id").is_in(inputs.filter(pl.col("frequency") == 0)["contact_id"].implode())
    )
    assert once["p_alive"].min() == 1.0
    mean_spend = night.p * night.gamma / (night.q - 1)
    assert once["expected_purchase_value"].unique().to_list() == [
        pytest.approx(mean_spend, abs=0.005)
    ]
    assert sorted(predicted["predicted_clv_decile"].unique().to_list()) == list(range(1, 11))
    top = predicted.filter(pl.col("predicted_clv_decile") == 1)["predicted_clv_12m"].min()
    rest = predicted.filter(pl.col("predicted_clv_decile") > 1)["predicted_clv_12m"].max()
    assert top >= rest


def test_extreme_histories_predict_finite_figures(night):
    extreme = pl.DataFrame(
        {
            "contact_id": ["daily_for_years", "silent_for_years", "bought_today"],
            "frequency": [900, 300, 0],
            "recency_weeks": [520.0, 10.0, 0.0],
            "tenure_weeks": [520.0, 520.0, 0.0],
            "repeat_value_mean": [25.0, 1e6, None],
        }
    )
    predicted = predict(extreme, night, CALIBRATION_END)
    for column in ("p_alive", "expected_purchases_90d", "predicted_clv_12m"):
        assert np.isfinite(predicted[column].to_numpy()).all(), column
    silent = predicted.row(1, named=True)
    assert silent["p_alive"] < 1e-6 and silent["predicted_clv_12m"] < 1
    # most likely gone: no window for a next purchase
    assert silent["next_purchase_from"] is None and silent["next_purchase_to"] is None
    # about its own rate, 900 purchases in 520 weeks, over 90 days
    assert predicted.row(0, named=True)["expected_purchases_90d"] == pytest.approx(
        900 / 520 * 90 / 7, rel=0.05
    )


def _buyers(rows) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema=["contact_id", "frequency", "recency_weeks", "tenure_weeks", "repeat_value_mean"],
        orient="row",
    )


@pytest.mark.parametrize(
    "buyers",
    [
        # a subscription shop: every repeat purchase 30.00, so the spend model's likelihood
        # grows without end; it "converged" to p = 1e54, q = 1e86 and predicted 788 million
        _buyers([(f"c{i}", 2, 10.0, 20.0, 30.0) for i in range(600)]),
        # ten buyers (clv_min_buyers 10): a = 1e176, and every expected purchase NaN
        _buyers(
            [(f"c{i}", i % 3, float(i % 3), 10.0 + i, 10.0 if i % 3 else None) for i in range(10)]
        ),
    ],
)
def test_a_fit_whose_figures_cannot_be_computed_predicts_nothing(buyers):
    fit = fit_night(buyers, CALIBRATION_END, None, min_buyers=10)
    predicted = predict(buyers, fit, CALIBRATION_END)
    if fit.status.startswith(clv_night.FITTED):
        for column in ("p_alive", "expected_purchases_90d", "predicted_clv_12m"):
            assert predicted[column].null_count() == 0, column
        spends = buyers["repeat_value_mean"].drop_nulls()
        value = predicted["expected_purchase_value"]
        assert spends.min() - 0.01 <= value.min() and value.max() <= spends.max() + 0.01
    else:
        assert fit.status == clv_night.NOT_CONVERGED and predicted.height == 0


def _dropping_out_alike(buyers: int, seed: int) -> pl.DataFrame:
    """Buyers who each drop out after a purchase with the same probability (5%): no
    heterogeneity for BG/NBD's Beta(a, b) to fit, so its likelihood keeps growing as a and b
    grow together, and its maximum lies at infinity."""
    rng = np.random.default_rng(seed)
    tenure = np.round(rng.uniform(1, 10, buyers) * 7) / 7
    rate = rng.gamma(0.8, 1 / 2.2, buyers)
    frequency, recency = np.zeros(buyers), np.zeros(buyers)
    for i in range(buyers):
        t = rng.exponential(1 / rate[i])
        while t <= tenure[i]:
            frequency[i], recency[i] = frequency[i] + 1, round(t * 7) / 7
            if rng.random() < 0.05:
                break
            t += rng.exponential(1 / rate[i])
    # spends that vary, for Gamma-Gamma to fit as usual: this is BG/NBD's ridge alone
    spend = rng.gamma(4.0, 10.0, buyers) * rng.gamma(3.0, 1 / 3.0, buyers)
    spend = [round(float(spend[i]), 2) if frequency[i] else None for i in range(buyers)]
    return _buyers(
        [(f"c{i:03d}", frequency[i], recency[i], tenure[i], spend[i]) for i in range(buyers)]
    )


def test_a_fit_whose_maximum_lies_at_infinity_gives_up_in_hundreds_of_steps():
    """Nelder-Mead, where L-BFGS-B stops short, stops once it gains nothing: on BG/NBD's
    ridge it used all of its 40,000 evaluations and gained 1e-6 (6,829 steps in all, 5.6 s
    for these 300 buyers, and the time grows with the buyers' distinct histories); 678 now."""
    buyers = _dropping_out_alike(300, seed=0)
    frequency, _, _, spend = clv_night._columns(buyers)
    # the spend model fits these buyers as usual: the steps are BG/NBD's
    assert clv_night.fit_gamma_gamma(frequency, spend).converged
    fit = fit_night(buyers, CALIBRATION_END, None, min_buyers=10)
    assert fit.status == clv_night.NOT_CONVERGED
    assert fit.iterations < 2_000


def test_after_a_good_night_such_a_fit_keeps_its_parameters_in_hundreds_of_steps(night):
    """As on the sixth of six empty days after a short history: tonight's fit starts from
    last night's parameters, runs off along the ridge, is fitted again from scratch, and the
    night keeps last night's parameters."""
    tonight = CALIBRATION_END + dt.timedelta(days=1)
    kept = fit_night(_dropping_out_alike(300, seed=0), tonight, night, min_buyers=10)
    assert kept.status == clv_night.KEPT and kept.warm_started
    assert kept.parameters_from == CALIBRATION_END and kept.r == night.r
    assert kept.iterations < 2_000
