"""The shop's figures at a glance: repeat purchase rate, retention, value, cohorts, program cost."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from scenarios.clv import Forecast, fitted_forecast
from scenarios.reminders import ReminderStats, TotalsReader, reminder_stats
from storage.analytics import (
    Calendar,
    CohortRow,
    CustomerFigures,
    HistoryGroup,
    Overview,
    ProgramFigures,
    RepeatFigures,
    Window,
)

FORECAST_DAYS = 365


class Period(StrEnum):
    WEEK = "7d"
    MONTH = "30d"
    QUARTER = "90d"
    YEAR = "12m"

    @property
    def days(self) -> int:
        return {"7d": 7, "30d": 30, "90d": 90, "12m": 365}[self.value]

    @property
    def cohort_months(self) -> int:
        """How many months of first orders the cohort table shows."""
        return 12 if self is Period.YEAR else 6


class AnalyticsStore(Protocol):
    async def overview(
        self, window: Window, *, first_month: int | None = None, histories: bool = True
    ) -> Overview: ...
    async def histories(self, *, end: datetime) -> list[HistoryGroup]: ...
    async def program(self, window: Window) -> ProgramFigures: ...
    async def cohorts(self, *, first_month: int, end: datetime) -> list[CohortRow]: ...
    async def satisfaction(self, window: Window) -> tuple[int, int]: ...
    async def broadcasts_started(self, window: Window) -> Sequence[int]: ...
    async def weekly_orders(
        self, *, first_week: int, end: datetime
    ) -> list[tuple[int, int, int]]: ...
    async def rating_distribution(
        self, *, since: datetime, end: datetime, by_month: bool
    ) -> list[tuple[int, int, int]]: ...


class BroadcastResults(Protocol):
    async def results(
        self, *, broadcast_id: int, conversion_days: int
    ) -> list[tuple[str, int, int, int, int]]: ...


@dataclass(frozen=True, slots=True)
class Cohort:
    month: datetime  # local midnight on the 1st of the month of the cohort's first orders
    size: int
    retention: tuple[float, ...]  # share ordering again in month 1, 2, 3, ... after the first


@dataclass(frozen=True, slots=True)
class Engagement:
    reminders: ReminderStats
    broadcasts: int  # started in the period
    delivered: int
    converted: int  # recipients who ordered within the conversion window
    broadcast_revenue: int  # minor units

    @property
    def broadcast_conversion(self) -> float:
        return self.converted / self.delivered if self.delivered else 0.0


@dataclass(frozen=True, slots=True)
class ShopStats:
    period: Period
    start: datetime
    end: datetime
    customers: CustomerFigures
    repeat: RepeatFigures
    program: ProgramFigures
    point_value: int  # minor units one point pays for
    forecast: Forecast
    cohorts: tuple[Cohort, ...]
    rated: int  # scores in the period
    satisfied: int  # of them 4 or 5
    engagement: Engagement

    @property
    def repeat_purchase_rate(self) -> float:
        """Share of customers (ever ordered) with two orders or more."""
        return _share(self.repeat.repeat_buyers, self.repeat.buyers)

    @property
    def retention_rate(self) -> float:
        """CRR: (customers at the end - new ones) / customers at the start, where a customer
        counts while their last order is under lost_days old. Customers who came back after
        being lost are not "retained", so the rate stays within 0..1."""
        return _share(self.repeat.retained, self.repeat.at_start)

    @property
    def purchase_frequency(self) -> float:
        """Orders per ordering customer in the period."""
        return _share(self.repeat.period_customer_orders, self.repeat.period_buyers)

    @property
    def aov(self) -> int:
        """Average order value in the period, minor units."""
        return _per(self.repeat.period_revenue, self.repeat.period_orders)

    @property
    def clv_historic(self) -> int:
        """Revenue per customer over their whole history so far, minor units."""
        return _per(self.repeat.revenue, self.repeat.buyers)

    @property
    def clv_predicted(self) -> int:
        return round(self.forecast.value)

    @property
    def points_liability(self) -> int:
        """What the points customers hold would pay for, minor units."""
        return self.program.points_outstanding * self.point_value

    @property
    def redemption_rate(self) -> float:
        return _share(self.program.spent, self.program.earned)

    @property
    def cashback_share(self) -> float:
        """Cashback earned in the period, in money, as a share of the period's revenue."""
        return _share(self.program.accrued * self.point_value, self.repeat.period_revenue)

    @property
    def csat(self) -> float | None:
        return self.satisfied / self.rated if self.rated else None

    @property
    def returning_share(self) -> float:
        return _share(self.repeat.revenue_returning, self.repeat.period_revenue)


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _per(total: int, count: int) -> int:
    # Half a kopeck up: the way a till rounds.
    return (2 * total + count) // (2 * count) if count else 0


def window_of(period: Period, *, now: datetime, sleeping_days: int, lost_days: int) -> Window:
    return Window(
        start=now - timedelta(days=period.days),
        end=now,
        sleeping_days=sleeping_days,
        lost_days=lost_days,
    )


def simple_forecast(repeat: RepeatFigures) -> Forecast:
    """AOV x orders per customer, both over the last 12 months: a customer like last year's."""
    orders = _share(repeat.year_orders, repeat.year_buyers)
    return Forecast(
        value=_share(repeat.year_revenue, repeat.year_buyers), orders=orders, fitted=False
    )


def cohorts_of(rows: Sequence[CohortRow], calendar: Calendar) -> tuple[Cohort, ...]:
    return tuple(
        Cohort(
            month=calendar.month_start(row.month),
            size=row.size,
            retention=tuple(_share(active, row.size) for active in row.active[1:]),
        )
        for row in rows
    )


@dataclass(frozen=True, slots=True)
class ChartData:
    """The series behind the pictures: orders per week (first, repeat) of known customers, the
    cohorts, and scores per week (per month over a year) as counts of 1..5 stars."""

    weeks: tuple[tuple[datetime, int, int], ...]
    cohorts: tuple[Cohort, ...]
    ratings: tuple[tuple[datetime, tuple[int, int, int, int, int]], ...]
    ratings_by_month: bool


# At least this many weeks of orders on the chart, however short the period: a trend needs them.
MIN_CHART_WEEKS = 12


@dataclass(frozen=True, slots=True)
class StatsRules:
    sleeping_days: int
    lost_days: int
    point_value: int
    conversion_days: int


async def _together(*work: Awaitable[Any]) -> list[Any]:
    """Every result, the work done at once. A failure is raised as it is (an outage is then
    reported as one), once the rest has ended: none is cancelled mid-statement, which on
    PostgreSQL would cut its connection, and none is left holding one."""
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


class ShopAnalytics:
    """Collects every figure of /stats and GET /api/v1/stats for one period."""

    def __init__(
        self,
        store: AnalyticsStore,
        *,
        reminders: TotalsReader,
        broadcasts: BroadcastResults,
        rules: StatsRules,
        calendar: Calendar,
    ) -> None:
        self._store = store
        self._calendar = calendar
        self._reminders = reminders
        self._broadcasts = broadcasts
        self._rules = rules

    def window(self, period: Period, *, now: datetime) -> Window:
        return window_of(
            period,
            now=now,
            sleeping_days=self._rules.sleeping_days,
            lost_days=self._rules.lost_days,
        )

    async def collect(self, period: Period, *, now: datetime) -> ShopStats:
        store, calendar = self._store, self._calendar
        window = self.window(period, now=now)

        async def fit() -> Forecast | None:
            histories = await store.histories(end=now)
            # Some tenths of a second of numpy for a big shop: off the event loop, and while
            # the database answers the figures (the overview's long steps release the GIL).
            return await asyncio.to_thread(fitted_forecast, histories, weeks=FORECAST_DAYS / 7)

        # The store's sections are asked at once, each in a read of its own: the small ones are
        # answered while the overview is. (On PostgreSQL they run in parallel; SQLite's threads
        # hand the GIL back and forth row by row, so there they mostly take turns.)
        overview, fitted, (rated, satisfied), program, engagement = await _together(
            store.overview(
                window,
                first_month=calendar.month_of(now) - period.cohort_months + 1,
                histories=False,
            ),
            fit(),
            store.satisfaction(window),
            store.program(window),
            self._engagement(window),
        )
        return ShopStats(
            period=period,
            start=window.start,
            end=window.end,
            customers=overview.customers,
            repeat=overview.repeat,
            program=program,
            point_value=self._rules.point_value,
            forecast=fitted or simple_forecast(overview.repeat),
            cohorts=cohorts_of(overview.cohorts, calendar),
            rated=rated,
            satisfied=satisfied,
            engagement=engagement,
        )

    async def chart_data(self, period: Period, *, now: datetime) -> ChartData:
        calendar = self._calendar
        weeks = max(MIN_CHART_WEEKS, -(-period.days // 7))
        this_week = calendar.week_of(now)
        first_week = this_week - weeks + 1
        by_month = period is Period.YEAR
        since = now - timedelta(days=period.days)
        weekly, rated, cohort_rows = await _together(  # at once, as in collect()
            self._store.weekly_orders(first_week=first_week, end=now),
            self._store.rating_distribution(since=since, end=now, by_month=by_month),
            self._store.cohorts(
                first_month=calendar.month_of(now) - period.cohort_months + 1, end=now
            ),
        )
        series = {week: (first, again) for week, first, again in weekly}
        scores: dict[int, list[int]] = {}
        for bucket, score, count in rated:
            scores.setdefault(bucket, [0] * 5)[score - 1] += count
        if by_month:
            buckets = range(calendar.month_of(since), calendar.month_of(now) + 1)
            starts = calendar.month_start
        else:
            buckets = range(calendar.week_of(since), this_week + 1)
            starts = calendar.week_start
        return ChartData(
            weeks=tuple(
                (calendar.week_start(week), *series.get(week, (0, 0)))
                for week in range(first_week, this_week + 1)
            ),
            cohorts=cohorts_of(cohort_rows, calendar),
            ratings=tuple(
                (starts(bucket), tuple(scores.get(bucket, [0] * 5)))  # type: ignore[misc]
                for bucket in buckets
            ),
            ratings_by_month=by_month,
        )

    async def _engagement(self, window: Window) -> Engagement:
        delivered = converted = revenue = 0
        started = await self._store.broadcasts_started(window)
        for broadcast_id in started:
            for _variant, _recipients, got, bought, money in await self._broadcasts.results(
                broadcast_id=broadcast_id, conversion_days=self._rules.conversion_days
            ):
                delivered += got
                converted += bought
                revenue += money
        return Engagement(
            reminders=await reminder_stats(self._reminders),
            broadcasts=len(started),
            delivered=delivered,
            converted=converted,
            broadcast_revenue=revenue,
        )
