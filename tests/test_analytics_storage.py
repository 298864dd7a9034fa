"""Shop figures on SQLite and PostgreSQL against a small shop worked out by hand
(tests/support/small_shop.py tells every order)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from scenarios.analytics import Period, ShopAnalytics, StatsRules
from storage.analytics import (
    UTC_CALENDAR,
    Calendar,
    CohortRow,
    CustomerFigures,
    ProgramFigures,
    SqlAnalytics,
    Window,
)
from storage.broadcasts import SqlBroadcasts
from storage.database import Database
from storage.reminders import SqlReminders
from tests.support.seed import NOW, member, order
from tests.support.small_shop import PERIOD_START, RUB, seed_small_shop

WINDOW = Window(start=PERIOD_START, end=NOW, sleeping_days=90, lost_days=365)
RULES = StatsRules(sleeping_days=90, lost_days=365, point_value=100, conversion_days=14)


@pytest.fixture
async def shop(db: Database) -> SqlAnalytics:
    await seed_small_shop(db)
    return SqlAnalytics(db)


def analytics(db: Database, calendar: Calendar = UTC_CALENDAR) -> ShopAnalytics:
    return ShopAnalytics(
        SqlAnalytics(db, calendar=calendar),
        reminders=SqlReminders(db),
        broadcasts=SqlBroadcasts(db),
        rules=RULES,
        calendar=calendar,
    )


async def test_customers_members_joined_offers_blocked_sleeping_lost(shop: SqlAnalytics) -> None:
    # Sleeping: F (two orders 3 days apart, 12 days since) and I (30 days apart, 75 since);
    # lost: D (380 days) and E (500 days). H is not a member.
    assert await shop.customers(WINDOW) == CustomerFigures(
        members=8, joined=1, opted_in=6, blocked=1, sleeping=2, lost=2
    )


async def test_repeat_sales_figures(shop: SqlAnalytics) -> None:
    figures = await shop.repeat_sales(WINDOW)
    # Ordered at all: A B C D E F I; twice or more: A B F I.
    assert (figures.buyers, figures.repeat_buyers) == (7, 4)
    assert figures.revenue == 21 * RUB
    # Active at the start (an order in the year before it): A B D I; still active at the end
    # (an order in the last year): A B I. New: C and F.
    assert (figures.at_start, figures.retained, figures.new) == (4, 3, 2)
    # In the period: A, B, C once each, F twice; and the guest.
    assert (figures.period_buyers, figures.period_customer_orders) == (4, 5)
    assert (figures.period_orders, figures.period_revenue) == (6, 17 * RUB)
    # Second or later orders: A's third, B's second, F's second.
    assert (figures.revenue_returning, figures.revenue_new) == (7 * RUB, 10 * RUB)
    # Gaps ending in the period: F 3 days, B 95, A 190.
    assert figures.median_gap_days == 95
    # The last 365 days: A twice, B twice, C, F twice, I twice.
    assert (figures.year_orders, figures.year_buyers, figures.year_revenue) == (9, 5, 17 * RUB)


async def test_median_gap_of_an_even_count_is_the_mean_of_the_middle_two(db: Database) -> None:
    await seed_small_shop(db)
    shop = SqlAnalytics(db)
    wider = Window(start=NOW.replace(year=2025), end=NOW, sleeping_days=90, lost_days=365)
    # Since 2025-11-20: A 200 -> 10 (190) and 400 -> 200 (200, ends 2026-05-04), B 95,
    # F 3, I 30: sorted 3, 30, 95, 190, 200 -> 95.
    assert (await shop.repeat_sales(wider)).median_gap_days == 95
    later = Window(start=datetime(2026, 9, 1, tzinfo=UTC), end=NOW, sleeping_days=90, lost_days=365)
    # Since 2026-09-01: I 30, F 3, A 190, B 95 -> (30 + 95) / 2.
    assert (await shop.repeat_sales(later)).median_gap_days == 62.5


async def test_histories_carry_the_mean_recency_not_whole_weeks(shop: SqlAnalytics) -> None:
    # F's two orders 15 and 12 days ago: three days apart, not "0 weeks" (on whole weeks the
    # BG/NBD fit of a big shop with many such buyers found no maximum: the formula was used).
    groups = await shop.histories(end=NOW)
    (f,) = [g for g in groups if g.repeats == 1 and g.age < 3]
    assert (f.customers, f.mean_order) == (1, 2 * RUB)
    assert f.recency == pytest.approx(3 / 7)
    assert f.age == pytest.approx(15 / 7)


async def test_program_cost(shop: SqlAnalytics) -> None:
    # Earned: accruals 300 + 100 (the welcome was before the period). Spent: 100 less the 30
    # a refund gave back, plus the admin's -10. Expired: 20. Outstanding: A 230 + B 150.
    assert await shop.program(WINDOW) == ProgramFigures(
        points_outstanding=380, earned=400, spent=80, expired=20, accrued=400
    )


async def test_cohorts_by_month_of_first_order(shop: SqlAnalytics) -> None:
    june = UTC_CALENDAR.month_of(datetime(2026, 6, 1, tzinfo=UTC))
    # August: B (and again in November) and I (and again in September); October: C;
    # November: F. A, D and E started before June.
    assert await shop.cohorts(first_month=june, end=NOW) == [
        CohortRow(month=june + 2, size=2, active=(2, 1, 0, 1)),
        CohortRow(month=june + 4, size=1, active=(1, 0)),
        CohortRow(month=june + 5, size=1, active=(1,)),
    ]


async def test_weekly_orders_split_first_and_repeat(shop: SqlAnalytics) -> None:
    first_week = UTC_CALENDAR.week_of(datetime(2026, 10, 26, tzinfo=UTC))
    weeks = await shop.weekly_orders(first_week=first_week, end=NOW)
    assert [
        (UTC_CALENDAR.week_start(w).date().isoformat(), first, again) for w, first, again in weeks
    ] == [
        ("2026-10-26", 1, 0),  # C on Saturday 31st
        ("2026-11-02", 1, 1),  # F's first and second
        ("2026-11-09", 0, 2),  # A's third, B's second
    ]


async def test_rating_distribution_and_satisfaction(shop: SqlAnalytics) -> None:
    scores = await shop.rating_distribution(since=PERIOD_START, end=NOW, by_month=False)
    assert [(UTC_CALENDAR.week_start(w).date().isoformat(), s, n) for w, s, n in scores] == [
        ("2026-11-09", 2, 1),
        ("2026-11-09", 5, 1),
        ("2026-11-16", 4, 1),
    ]
    assert await shop.satisfaction(WINDOW) == (3, 2)


async def test_the_rates_an_owner_reads(db: Database) -> None:
    await seed_small_shop(db)
    stats = await analytics(db).collect(Period.MONTH, now=NOW)
    assert Fraction(stats.repeat_purchase_rate).limit_denominator(100) == Fraction(4, 7)
    assert stats.retention_rate == 0.75  # (5 active at the end - 2 new) / 4 at the start
    assert stats.purchase_frequency == 1.25
    assert stats.aov == 283_333  # 17 000 ₽ / 6 orders, to the kopeck
    assert stats.clv_historic == 300_000  # 21 000 ₽ / 7 customers
    # Too little history for a fit: 17 000 ₽ over the 5 customers of the last year.
    assert not stats.forecast.fitted
    assert stats.clv_predicted == 340_000
    assert stats.points_liability == 38_000
    assert stats.redemption_rate == 0.2
    assert stats.cashback_share == 400 * 100 / (17 * RUB)
    assert stats.csat == 2 / 3
    assert [(c.month.date().isoformat(), c.size, c.retention) for c in stats.cohorts] == [
        ("2026-08-01", 2, (0.5, 0.0, 0.5)),
        ("2026-10-01", 1, (0.0,)),
        ("2026-11-01", 1, ()),
    ]
    assert stats.engagement.broadcasts == 1


async def test_an_empty_shop_has_zeros_not_errors(db: Database) -> None:
    stats = await analytics(db).collect(Period.WEEK, now=NOW)
    assert (stats.repeat_purchase_rate, stats.retention_rate, stats.aov) == (0.0, 0.0, 0)
    assert stats.repeat.median_gap_days is None
    assert stats.csat is None
    assert stats.cohorts == ()


MOSCOW = ZoneInfo("Europe/Moscow")  # UTC+3 all year


def days_before_now(moment: datetime) -> float:
    return (NOW - moment) / timedelta(days=1)


async def test_months_and_weeks_are_the_shops_own(db: Database) -> None:
    # 00:30 on 1 November in Moscow is 21:30 on 31 October in UTC: still October there.
    october = await member(db, 1)
    november = await member(db, 2)
    weekly = await member(db, 3)
    moments = [
        ("oct-1", october, datetime(2026, 10, 31, 23, 30, tzinfo=MOSCOW)),
        ("nov-1", november, datetime(2026, 11, 1, 0, 30, tzinfo=MOSCOW)),
        # Sunday 15 November 23:30, then Monday 16th 00:30 (Sunday 21:30 in UTC).
        ("week-1", weekly, datetime(2026, 11, 15, 23, 30, tzinfo=MOSCOW)),
        ("week-2", weekly, datetime(2026, 11, 16, 0, 30, tzinfo=MOSCOW)),
    ]
    for ref, customer, moment in moments:
        await order(db, ref, customer, days_before_now(moment))
    shop = analytics(db, Calendar(MOSCOW))
    stats = await shop.collect(Period.MONTH, now=NOW)
    assert [(c.month.date().isoformat(), c.size, c.retention) for c in stats.cohorts] == [
        ("2026-10-01", 1, (0.0,)),
        ("2026-11-01", 2, ()),
    ]
    charts = await shop.chart_data(Period.MONTH, now=NOW)
    assert [(week.date().isoformat(), first, again) for week, first, again in charts.weeks][
        -3:
    ] == [
        ("2026-11-02", 0, 0),
        ("2026-11-09", 1, 0),
        ("2026-11-16", 0, 1),
    ]
    assert [(c.month.date().isoformat(), c.size) for c in charts.cohorts] == [
        ("2026-10-01", 1),
        ("2026-11-01", 2),
    ]


async def test_figures_read_at_once_inside_an_updates_unit_of_work_are_the_same(
    db: Database,
) -> None:
    # /stats runs in an update's read-only unit of work; its sections are asked at once, each in
    # a read of its own, beside the unit's own transaction.
    await seed_small_shop(db)
    alone = await analytics(db).collect(Period.QUARTER, now=NOW)
    async with db.unit_of_work("read"):
        await SqlReminders(db).totals()  # the unit's own read is open meanwhile
        inside = await analytics(db).collect(Period.QUARTER, now=NOW)
        charts = await analytics(db).chart_data(Period.QUARTER, now=NOW)
    assert inside == alone
    assert charts == await analytics(db).chart_data(Period.QUARTER, now=NOW)


class FailingProgram(SqlAnalytics):
    """The program section fails while the satisfaction section is still being answered."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.satisfaction_done = False

    async def program(self, window: Window) -> ProgramFigures:
        await asyncio.sleep(0)
        raise ConnectionRefusedError("the database went away")

    async def satisfaction(self, window: Window) -> tuple[int, int]:
        await asyncio.sleep(0.2)
        figures = await super().satisfaction(window)
        self.satisfaction_done = True
        return figures


async def test_a_failing_section_fails_the_figures_as_itself_once_the_others_ended(
    db: Database,
) -> None:
    store = FailingProgram(db)
    shop = ShopAnalytics(
        store,
        reminders=SqlReminders(db),
        broadcasts=SqlBroadcasts(db),
        rules=RULES,
        calendar=UTC_CALENDAR,
    )
    # As itself, not inside an ExceptionGroup: the outage handling knows it.
    with pytest.raises(ConnectionRefusedError, match="went away"):
        await shop.collect(Period.MONTH, now=NOW)
    # No section is left running (holding a pooled connection) after the failure is raised.
    assert store.satisfaction_done
