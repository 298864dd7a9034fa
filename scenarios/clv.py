"""Predicted customer value: a BG/NBD purchase model and a Gamma-Gamma spend model, fitted by
maximum likelihood on scipy (Fader, Hardie and Lee 2005), for histories long enough to fit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from storage.analytics import HistoryGroup

# What a fit needs before it says more than the simple formula: enough customers, enough of
# them who came back, and a history longer than a season.
MIN_CUSTOMERS = 100
MIN_REPEATERS = 20
MIN_HISTORY_WEEKS = 13.0
FIT_CUSTOMERS = 10_000

Floats = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Forecast:
    value: float  # expected revenue per customer over the horizon, minor units
    orders: float  # expected orders per customer over the horizon
    fitted: bool  # True: BG/NBD + Gamma-Gamma; False: the simple formula


def _bgnbd_loglik(params: Floats, x: Floats, tx: Floats, big_t: Floats, w: Floats) -> float:
    from scipy.special import gammaln  # scipy loads on the first fit, not at the bot's start

    r, alpha, a, b = np.exp(params)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + big_t)
    repeat = x > 0
    a4 = np.full_like(x, -np.inf)
    a4[repeat] = (
        np.log(a) - np.log(b + x[repeat] - 1) - (r + x[repeat]) * np.log(alpha + tx[repeat])
    )
    total = float(np.sum(w * (a1 + a2 + np.logaddexp(a3, a4))))
    return total if math.isfinite(total) else -1e300


def _gamma_gamma_loglik(params: Floats, x: Floats, m: Floats, w: Floats) -> float:
    from scipy.special import gammaln

    p, q, v = np.exp(params)
    px = p * x
    ll = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(x * m + v)
    )
    total = float(np.sum(w * ll))
    return total if math.isfinite(total) else -1e300


def _fit(loglik: object, start: Sequence[float], *args: Floats) -> Floats | None:
    """Maximum likelihood over log-parameters, kept within e^-12..e^12 (far wider than any
    shop's figures in weeks and mean orders, and where the special functions stay finite)."""
    from scipy.optimize import minimize

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        result = minimize(
            lambda params: -loglik(params, *args),  # type: ignore[operator]
            np.array(start, dtype=np.float64),
            method="L-BFGS-B",
            bounds=[(-12.0, 12.0)] * len(start),
        )
    if not result.success or not np.all(np.isfinite(result.x)):
        return None
    return np.exp(result.x)  # type: ignore[no-any-return]


def _sample(w: Floats) -> tuple[NDArray[np.intp], Floats]:
    """The groups the parameters are fitted on, with their weights: all of them, or for a big
    shop a fixed random sample of FIT_CUSTOMERS customers (four parameters need no more, and
    the fit's time grows with the rows). The forecast itself covers every customer."""
    if w.sum() <= FIT_CUSTOMERS:
        return np.arange(len(w)), w
    rng = np.random.default_rng(14)  # the same sample each time: /stats does not flicker
    draws = rng.choice(len(w), size=FIT_CUSTOMERS, p=w / w.sum())
    chosen, counts = np.unique(draws, return_counts=True)
    return chosen, counts.astype(np.float64)


def enough_history(groups: Sequence[HistoryGroup]) -> bool:
    customers = sum(g.customers for g in groups)
    repeaters = sum(g.customers for g in groups if g.repeats > 0)
    oldest = max((g.age for g in groups), default=0.0)
    return (
        customers >= MIN_CUSTOMERS and repeaters >= MIN_REPEATERS and (oldest >= MIN_HISTORY_WEEKS)
    )


def fitted_forecast(groups: Sequence[HistoryGroup], *, weeks: float) -> Forecast | None:
    """Expected orders (BG/NBD) times expected order value (Gamma-Gamma) over the next
    ``weeks``, averaged over every customer; None when the fit fails or is degenerate."""
    from scipy.special import hyp2f1

    if not enough_history(groups):
        return None
    w = np.array([g.customers for g in groups], dtype=np.float64)
    x = np.array([g.repeats for g in groups], dtype=np.float64)
    tx = np.array([g.recency for g in groups], dtype=np.float64)
    big_t = np.array([g.age for g in groups], dtype=np.float64)
    m = np.array([max(g.mean_order, 1.0) for g in groups], dtype=np.float64)
    # Nobody's recency passes their age; a first order "this week" still has some age. A
    # repeat buyer's orders count as a day apart at least: at recency 0 the BG/NBD likelihood
    # grows without bound as alpha shrinks, and the fit fails (two orders at one moment).
    big_t = np.maximum(big_t, 0.5)
    tx = np.minimum(np.where(x > 0, np.maximum(tx, 1 / 7), tx), big_t)
    start = (0.0, math.log(float(np.mean(big_t)) + 1), 0.0, 0.0)
    fit, fit_w = _sample(w)
    purchase = _fit(_bgnbd_loglik, start, x[fit], tx[fit], big_t[fit], fit_w)
    if purchase is None:
        return None
    r, alpha, a, b = (float(value) for value in purchase)
    if abs(a - 1) < 1e-6:  # the expectation below divides by a - 1 (valid on either side)
        return None
    repeat = x > 0
    # Spend in units of the mean order: v scales with the unit, p and q do not.
    unit = float(np.average(m, weights=w))
    m = m / unit
    came_back = repeat[fit]
    spend = _fit(
        _gamma_gamma_loglik,
        (0.0, 1.0, 0.0),
        x[fit][came_back],
        m[fit][came_back],
        fit_w[came_back],
    )
    if spend is None:
        return None
    p, q, v = (float(value) for value in spend)
    if q <= 1:
        return None
    # A long-silent frequent buyer's odds of being alive underflow to 0: an overflow here is
    # the right answer (no more orders), not an error.
    with np.errstate(over="ignore", invalid="ignore"):
        horizon = float(weeks)
        shifted = alpha + big_t
        head = (a + b + x - 1) / (a - 1)
        tail = 1 - (shifted / (shifted + horizon)) ** (r + x) * hyp2f1(
            r + x, b + x, a + b + x - 1, horizon / (shifted + horizon)
        )
        alive = 1 + np.where(repeat, a / np.maximum(b + x - 1, 1e-12), 0.0) * (
            shifted / (alpha + tx)
        ) ** (r + x)
        orders = head * tail / alive
        population_mean = v * p / (q - 1)
        value = np.where(
            repeat,
            (q - 1) / (p * x + q - 1) * population_mean + p * x / (p * x + q - 1) * m,
            population_mean,
        )
    expected_orders = float(np.sum(w * orders) / np.sum(w))
    expected_value = float(np.sum(w * orders * value) / np.sum(w)) * unit
    if not (math.isfinite(expected_orders) and math.isfinite(expected_value)):
        return None
    return Forecast(value=expected_value, orders=expected_orders, fitted=True)
