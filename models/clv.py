"""Predicted customer value: the BG/NBD model of the purchase process (Fader, Hardie & Lee
2005, "Counting your customers the easy way") and the Gamma-Gamma model of spend per purchase
(Fader & Hardie 2013, "The Gamma-Gamma model of monetary value"), fitted by maximum
likelihood with numpy and scipy.

Per customer, as of the end of a fitting window: `x` repeat purchases (purchase days after
the first: orders of one day are one purchase), `t_x` the time of the last purchase and `T`
the time since the first, both from the first purchase, in any unit (Nightjar uses weeks);
and for spend, `m` the mean value of the repeat purchases.

Every formula is evaluated in log space or in a form without huge powers, so that a customer
with hundreds of purchases over years gives a finite figure, never NaN or infinity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special


@dataclass(frozen=True)
class BgNbd:
    """Purchase rates ~ Gamma(r, alpha) across customers; after each purchase a customer
    drops out with a probability ~ Beta(a, b) across customers."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGamma:
    """Spend per purchase ~ Gamma(p, nu) for a customer, nu ~ Gamma(q, gamma) across them."""

    p: float
    q: float
    gamma: float


@dataclass(frozen=True)
class Fit:
    """A fitted model with what a person checks: the log-likelihood, the customers it was
    fitted on, whether the optimiser converged, and in how many iterations."""

    model: BgNbd | GammaGamma
    log_likelihood: float
    customers: int
    converged: bool
    iterations: int


def _arrays(*columns) -> list[np.ndarray]:
    return [np.asarray(c, dtype=float) for c in columns]


# -- BG/NBD ---------------------------------------------------------------------------------


def bgnbd_log_likelihoods(model: BgNbd, x, t_x, T) -> np.ndarray:
    """Each customer's log-likelihood (Fader, Hardie & Lee 2005, equation 6), written as
    published: the reference the fit's own faster form (_bgnbd_log_likelihoods_and_gradients)
    is tested against."""
    x, t_x, T = _arrays(x, t_x, T)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    common = (
        special.gammaln(r + x)
        - special.gammaln(r)
        + r * np.log(alpha)
        + special.gammaln(a + b)
        + special.gammaln(b + x)
        - special.gammaln(b)
        - special.gammaln(a + b + x)
    )
    still_alive = -(r + x) * np.log(alpha + T)
    # x > 0 only: the customer may have dropped out right after the last purchase
    with np.errstate(divide="ignore", invalid="ignore"):
        dropped = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return common + np.logaddexp(still_alive, dropped)


def fit_bgnbd(x, t_x, T, start: BgNbd | None = None) -> Fit:
    """Maximum likelihood over the customers given (each a row of x, t_x, T), from `start`
    (the previous night's parameters, say) or a neutral point. Customers with the same
    history count once, weighted: with times in whole days, a million buyers share far
    fewer histories."""
    x, t_x, T = _arrays(x, t_x, T)
    (hx, ht_x, hT), counts, _ = distinct_rows(x, t_x, T)
    by_count = np.unique(hx, return_inverse=True)
    initial = np.log([start.r, start.alpha, start.a, start.b] if start else [1.0, 1.0, 1.0, 1.0])

    def negative(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        each, gradients = _bgnbd_log_likelihoods_and_gradients(
            BgNbd(*np.exp(log_params)), hx, ht_x, hT, by_count
        )
        return _negated(np.dot(counts, each), counts @ gradients)

    result = _minimize(negative, initial)
    return Fit(BgNbd(*np.exp(result.x)), -result.fun, len(x), result.success, result.nit)


def distinct_rows(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """The distinct rows of the columns, how many times each occurs, and each row's index
    among them (np.unique by rows, which sorts the rows as bytes, took a second for half a
    million customers)."""
    order = np.lexsort(columns[::-1])
    ordered = [c[order] for c in columns]
    starts = np.ones(len(order), dtype=bool)
    if len(order):
        starts[1:] = np.any([c[1:] != c[:-1] for c in ordered], axis=0)
    first = np.flatnonzero(starts)
    counts = np.diff(np.append(first, len(order)))
    inverse = np.empty(len(order), dtype=np.intp)
    inverse[order] = np.cumsum(starts) - 1
    return [c[first] for c in ordered], counts, inverse


def _bgnbd_log_likelihoods_and_gradients(model: BgNbd, x, t_x, T, by_count):
    """Each customer's log-likelihood (bgnbd_log_likelihoods, equation 6) and its derivatives
    by the logarithms of r, alpha, a and b (one column each): with them the optimiser needs
    one evaluation a step where numerical derivatives need five. The gamma functions of
    r + x, b + x and a + b + x are computed once per purchase count (`by_count`: the distinct
    x and each customer's index among them), a few hundred values instead of one per
    customer. The likelihood is exp(common) * (exp(still_alive) + exp(dropped)); the share of
    `dropped` in that sum weighs the two terms' derivatives."""
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    counts_x, at = by_count
    gammaln, psi = special.gammaln, special.digamma
    with np.errstate(all="ignore"):  # a diverging fit: _negated turns its figures away
        common = (
            gammaln(r + counts_x) - gammaln(r) + r * np.log(alpha)
            + gammaln(a + b) + gammaln(b + counts_x) - gammaln(b) - gammaln(a + b + counts_x)
        )[at]  # fmt: skip
        log_alive_base, log_last_base = np.log(alpha + T), np.log(alpha + t_x)
        still_alive = -(r + x) * log_alive_base
        dropped = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * log_last_base,
            -np.inf,
        )
        both = np.logaddexp(still_alive, dropped)
        w_dropped = np.exp(dropped - both)
        w_alive = 1 - w_dropped
        d_r = (
            (psi(r + counts_x) - psi(r))[at] + np.log(alpha)
            - w_alive * log_alive_base - w_dropped * log_last_base
        )  # fmt: skip
        d_alpha = r / alpha - (r + x) * (w_alive / (alpha + T) + w_dropped / (alpha + t_x))
        d_a = (psi(a + b) - psi(a + b + counts_x))[at] + w_dropped / a
        d_b = (psi(a + b) + psi(b + counts_x) - psi(b) - psi(a + b + counts_x))[at] - np.where(
            x > 0, w_dropped / np.maximum(b + x - 1, 1e-300), 0.0
        )
        # by the logarithm of each parameter: d/d(log p) = p * d/dp
        gradients = np.stack([d_r * r, d_alpha * alpha, d_a * a, d_b * b], axis=1)
    return common + both, gradients


def p_alive(model: BgNbd, x, t_x, T) -> np.ndarray:
    """The probability that each customer is still a customer at T (equation 11)."""
    x, t_x, T = _arrays(x, t_x, T)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    with np.errstate(divide="ignore", invalid="ignore"):
        log_odds = (
            np.log(a)
            - np.log(np.maximum(b + x - 1, 1e-300))
            + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        )
    # 1 / (1 + exp(log_odds)), without overflow for a long-silent frequent buyer
    return np.where(x > 0, special.expit(-log_odds), 1.0)


def expected_purchases(model: BgNbd, t, x, t_x, T) -> np.ndarray:
    """Each customer's expected purchases in the next `t` (equation 10); `t` a horizon for
    all, or one per customer.

    The equation's ((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x; a+b+x-1; z), with
    z = t/(alpha+T+t), overflows in both factors for a customer with many purchases. By
    Euler's transformation it equals (1-z)^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z), whose
    parameters do not grow with x: finite for any history."""
    t, x, t_x, T = np.broadcast_arrays(*_arrays(t, x, t_x, T))
    # The hypergeometric function is most of the cost, and depends on x, T and t only:
    # once per distinct (x, T, t), some 40,000 for half a million buyers counted in days.
    (distinct_x, distinct_T, distinct_t), _, each = distinct_rows(x.ravel(), T.ravel(), t.ravel())
    tails = _tails(model, distinct_x, distinct_T, distinct_t)[each].reshape(x.shape)
    return _expected_purchases(model, tails, x, t_x, T)


def expected_purchases_by_horizon(model: BgNbd, horizons, x, t_x, T) -> np.ndarray:
    """expected_purchases for each of several horizons: one row a horizon, one column a
    customer (the distinct histories found once for all of them)."""
    x, t_x, T = np.broadcast_arrays(*_arrays(x, t_x, T))
    horizons = np.asarray(horizons, dtype=float).reshape(-1, 1)
    (distinct_x, distinct_T), _, each = distinct_rows(x.ravel(), T.ravel())
    tails = _tails(model, distinct_x, distinct_T, horizons)[:, each]
    return _expected_purchases(model, tails.reshape((len(horizons), *x.shape)), x, t_x, T)


def _tails(model: BgNbd, x, T, t) -> np.ndarray:
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    z = t / (alpha + T + t)
    return (1 - z) ** (a - 1) * special.hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)


def _expected_purchases(model: BgNbd, tails, x, t_x, T) -> np.ndarray:
    a, b = model.a, model.b
    return (a + b + x - 1) / (a - 1) * (1 - tails) * p_alive(model, x, t_x, T)


def expected_purchases_of_a_new_customer(model: BgNbd, t) -> np.ndarray:
    """E[X(t)] for a customer just acquired (equation 9): the population's curve, from which
    the expected repeat purchases of a cohort in a holdout period follow."""
    t = np.asarray(t, dtype=float)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    z = t / (alpha + t)
    # (alpha/(alpha+t))^r * 2F1(r, b; a+b-1; z) = (1-z)^(a-1) * 2F1(a+b-1-r, a-1; a+b-1; z)
    tail = (1 - z) ** (a - 1) * special.hyp2f1(a + b - 1 - r, a - 1, a + b - 1, z)
    return (a + b - 1) / (a - 1) * (1 - tail)


# -- Gamma-Gamma ------------------------------------------------------------------------------


def gamma_gamma_log_likelihoods(model: GammaGamma, x, m) -> np.ndarray:
    """Each repeat customer's log-likelihood of its mean spend `m` over `x` purchases
    (Fader & Hardie 2013, equation 4, up to a term that does not depend on the parameters
    and is left in so that the figure is the published one); the reference the fit's own
    faster form (_gamma_gamma_log_likelihoods_and_gradients) is tested against."""
    x, m = _arrays(x, m)
    p, q, g = model.p, model.q, model.gamma
    return (
        special.gammaln(p * x + q)
        - special.gammaln(p * x)
        - special.gammaln(q)
        + q * np.log(g)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(g + m * x)
    )


def fit_gamma_gamma(x, m, start: GammaGamma | None = None) -> Fit:
    """Maximum likelihood over the repeat customers given with a positive mean spend
    (x >= 1, m > 0); others are left out, as the model has no zero spend."""
    x, m = _arrays(x, m)
    kept = (x >= 1) & (m > 0)
    x, m = x[kept], m[kept]
    by_count = np.unique(x, return_inverse=True)
    log_m, log_x = np.log(m), np.log(x)
    initial = np.log([start.p, start.q, start.gamma] if start else [1.0, 1.0, 1.0])

    def negative(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        each, gradients = _gamma_gamma_log_likelihoods_and_gradients(
            GammaGamma(*np.exp(log_params)), x, m, log_m, log_x, by_count
        )
        return _negated(each.sum(), gradients.sum(axis=0))

    result = _minimize(negative, initial)
    return Fit(GammaGamma(*np.exp(result.x)), -result.fun, len(x), result.success, result.nit)


def _gamma_gamma_log_likelihoods_and_gradients(model: GammaGamma, x, m, log_m, log_x, by_count):
    """Each repeat customer's log-likelihood (gamma_gamma_log_likelihoods) and its derivatives
    by the logarithms of p, q and gamma, the gamma functions computed once per purchase count
    (see _bgnbd_log_likelihoods_and_gradients)."""
    p, q, g = model.p, model.q, model.gamma
    counts_x, at = by_count
    gammaln, psi = special.gammaln, special.digamma
    with np.errstate(all="ignore"):  # a diverging fit: _negated turns its figures away
        log_total = np.log(g + m * x)
        each = (
            (gammaln(p * counts_x + q) - gammaln(p * counts_x))[at] - gammaln(q) + q * np.log(g)
            + (p * x - 1) * log_m + p * x * log_x - (p * x + q) * log_total
        )  # fmt: skip
        d_p = x * ((psi(p * counts_x + q) - psi(p * counts_x))[at] + log_m + log_x - log_total)
        d_q = psi(p * counts_x + q)[at] - psi(q) + np.log(g) - log_total
        d_g = q / g - (p * x + q) / (g + m * x)
        gradients = np.stack([d_p * p, d_q * q, d_g * g], axis=1)
    return each, gradients


def _negated(total: float, gradient: np.ndarray) -> tuple[float, np.ndarray]:
    """What the optimiser minimises: the negative log-likelihood and its gradient; infinity
    where the figure is not finite (the optimiser then steps back)."""
    if not (np.isfinite(total) and np.isfinite(gradient).all()):
        return np.inf, np.zeros_like(gradient)
    return -total, -gradient


def expected_spend(model: GammaGamma, x, m) -> np.ndarray:
    """Each customer's expected spend per purchase (equation 5): its own mean, shrunk towards
    the population's by how few purchases it rests on (the population's mean at x = 0)."""
    x, m = _arrays(x, m)
    p, q, g = model.p, model.q, model.gamma
    return p * (g + x * m) / (p * x + q - 1)


def _minimize(negative, initial: np.ndarray) -> optimize.OptimizeResult:
    """L-BFGS-B over the log-parameters (positive by construction), with the gradient
    `negative` returns beside the value, to a log-likelihood known to about 1e-11 of itself
    (tighter, a warm-started night of 528,784 buyers took half again as many steps for
    a gain of 0.001 in a log-likelihood of 15 million);
    where it stops short, Nelder-Mead goes on from there (slow, but it needs no gradient)."""
    scale = max(abs(negative(initial)[0]), 1.0)

    def scaled(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = negative(log_params)
        return value / scale, gradient / scale

    first = optimize.minimize(
        scaled,
        initial,
        jac=True,
        method="L-BFGS-B",
        options={"ftol": 1e-11, "gtol": 1e-8, "maxiter": 2_000},
    )
    first.fun *= scale
    if first.success:
        return first
    second = optimize.minimize(
        lambda log_params: negative(log_params)[0],
        first.x,
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": NELDER_MEAD_FATOL, "maxiter": 20_000, "maxfev": 40_000},
        callback=_Stalled(),
    )
    second.nit += first.nit
    return second


NELDER_MEAD_FATOL = 1e-10
# Iterations of Nelder-Mead without a gain of NELDER_MEAD_FATOL after which it stops,
# unconverged. Where the likelihood's maximum lies at infinity (BG/NBD's a and b growing
# together when buyers drop out alike, as after a quiet week of a 73-day history), its simplex
# sits on a flat ridge and spent all of its 40,000 evaluations there: 4.7 s a night for 2,895
# buyers, growing with their distinct histories, to end where it started. Where it converges,
# its best value gained that much at least every 151 iterations (12 runs: the CDNOW tests and
# 60 simulated histories); the 7 runs it stopped there, let go on, ended unconverged at the
# very value they had.
STALL_ITERATIONS = 500


class _Stalled:
    """Nelder-Mead's callback: stops it (StopIteration, scipy's way) once its best value has
    gained no more than NELDER_MEAD_FATOL over STALL_ITERATIONS iterations."""

    def __init__(self) -> None:
        self.best, self.since = np.inf, 0

    def __call__(self, intermediate_result: optimize.OptimizeResult) -> None:
        if intermediate_result.fun < self.best - NELDER_MEAD_FATOL:
            self.best, self.since = intermediate_result.fun, 0
            return
        self.since += 1
        if self.since >= STALL_ITERATIONS:
            raise StopIteration
