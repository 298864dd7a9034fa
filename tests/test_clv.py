"""Predicted CLV: the BG/NBD + Gamma-Gamma fit forecasts a simulated shop's next year, and too
little history falls back to the simple formula."""

from __future__ import annotations

import numpy as np

from scenarios.clv import fitted_forecast
from storage.analytics import HistoryGroup

HORIZON = 52.0  # weeks


def simulate(seed: int, customers: int = 3000) -> tuple[list[HistoryGroup], float, float]:
    """Customers buying and dropping out the way BG/NBD says (r=0.8, alpha=4, a=0.8, b=2.5 in
    weeks), spending around 2 500 ₽ an order; the histories up to now and, per customer, the
    orders and revenue of the year after, which the forecast has not seen."""
    rng = np.random.default_rng(seed)
    groups = []
    future_orders = future_revenue = 0.0
    for _ in range(customers):
        rate = rng.gamma(0.8, 1 / 4.0)
        dropout = rng.beta(0.8, 2.5)
        spend = rng.gamma(6.0, 250_000 / 6.0)
        age = rng.uniform(20, 100)
        moment, times, alive = 0.0, [0.0], True
        while alive:
            moment += rng.exponential(1 / rate)
            if moment > age + HORIZON:
                break
            times.append(moment)
            alive = rng.uniform() > dropout
        seen = [t for t in times if t <= age]
        later = len(times) - len(seen)
        orders = rng.gamma(20.0, spend / 20.0, len(times))
        future_orders += later
        future_revenue += float(orders[len(seen) :].sum())
        groups.append(
            HistoryGroup(
                customers=1,
                repeats=len(seen) - 1,
                recency=seen[-1],
                age=age,
                mean_order=float(orders[: len(seen)].mean()),
            )
        )
    return groups, future_orders / customers, future_revenue / customers


def test_the_fit_forecasts_the_unseen_year_within_15_percent() -> None:
    groups, actual_orders, actual_value = simulate(seed=14)
    forecast = fitted_forecast(groups, weeks=HORIZON)
    assert forecast is not None and forecast.fitted
    assert abs(forecast.orders / actual_orders - 1) < 0.15, (forecast.orders, actual_orders)
    assert abs(forecast.value / actual_value - 1) < 0.15, (forecast.value, actual_value)


def test_too_little_history_gives_no_fit() -> None:
    groups, _orders, _value = simulate(seed=1, customers=60)
    assert fitted_forecast(groups, weeks=HORIZON) is None
    # Nobody came back: nothing to learn a repeat rate from.
    once = [HistoryGroup(customers=500, repeats=0, recency=0.0, age=30.0, mean_order=100.0)]
    assert fitted_forecast(once, weeks=HORIZON) is None
