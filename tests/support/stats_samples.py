"""Sample contexts for the /stats templates: the small shop's figures (tests/support/small_shop)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from scenarios.analytics import Cohort, Engagement, Period, ShopStats
from scenarios.clv import Forecast
from scenarios.reminders import ReminderStats
from storage.analytics import CustomerFigures, ProgramFigures, RepeatFigures
from storage.ratings import PeriodStats, RatingStats

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SAMPLE_RATINGS = RatingStats(
    week=PeriodStats(count=2, average=3.5, satisfied=1),
    month=PeriodStats(count=5, average=4.2, satisfied=4),
    alerts_open=1,
    alerts_resolved=3,
    median_resolve_seconds=10800.0,
)
SAMPLE_STATS = ShopStats(
    period=Period.MONTH,
    start=NOW - timedelta(days=30),
    end=NOW,
    customers=CustomerFigures(members=8, joined=1, opted_in=6, blocked=1, sleeping=2, lost=2),
    repeat=RepeatFigures(
        buyers=7,
        repeat_buyers=4,
        revenue=2_100_000,
        at_start=4,
        retained=3,
        new=2,
        period_buyers=4,
        period_orders=6,
        period_customer_orders=5,
        period_revenue=1_700_000,
        revenue_new=1_000_000,
        revenue_returning=700_000,
        median_gap_days=95.0,
        year_orders=9,
        year_buyers=5,
        year_revenue=1_700_000,
    ),
    program=ProgramFigures(points_outstanding=380, earned=400, spent=80, expired=20, accrued=400),
    point_value=100,
    forecast=Forecast(value=340_000.0, orders=1.8, fitted=False),
    cohorts=(
        Cohort(month=datetime(2026, 8, 1, tzinfo=UTC), size=2, retention=(0.5, 0.0, 0.5)),
        Cohort(month=datetime(2026, 10, 1, tzinfo=UTC), size=1, retention=(0.0,)),
        Cohort(month=datetime(2026, 11, 1, tzinfo=UTC), size=1, retention=()),
    ),
    rated=3,
    satisfied=2,
    engagement=Engagement(
        reminders=ReminderStats(sent=21, converted=1, revenue=129_000),
        broadcasts=1,
        delivered=120,
        converted=6,
        broadcast_revenue=1_290_000,
    ),
)
_BASE = {"stats": SAMPLE_STATS, "period_label": "30 days"}
STATS_SAMPLES: dict[str, dict[str, Any]] = {
    "stats.html": _BASE,
    "stats_customers.html": _BASE,
    "stats_repeat.html": _BASE,
    "stats_value.html": _BASE,
    "stats_cohorts.html": _BASE,
    "stats_program.html": _BASE,
    "stats_satisfaction.html": {**_BASE, "ratings": SAMPLE_RATINGS, "median": "3 hours"},
    "stats_engagement.html": {**_BASE, "reminders": SAMPLE_STATS.engagement.reminders},
}
