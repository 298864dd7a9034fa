"""Shop figures as SQL: repeat sales, retention, cohorts, program cost and chart series."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from storage.database import Database
from storage.ledger import EntryKind
from storage.schema import (
    broadcasts,
    customers,
    ledger_accounts,
    ledger_entries,
    orders,
    ratings,
)
from storage.segments import VOID_STATUSES
from storage.sql import epoch_seconds

DAY = 86_400.0
WEEK = 7 * DAY
# Epoch 0 was a Thursday: three days on, week numbers change on Mondays at 00:00 UTC.
_WEEK_SHIFT = 3 * DAY
# Points that came into accounts (every credit but the undoing of a spend).
EARNED_KINDS = (
    EntryKind.ACCRUAL,
    EntryKind.WELCOME,
    EntryKind.REFERRAL,
    EntryKind.BIRTHDAY,
    EntryKind.COMPENSATION,
    EntryKind.GIFT,
)


class month_index(FunctionElement[int]):
    """year * 12 + month - 1 of a timestamp in UTC: consecutive months differ by one."""

    type = Integer()
    inherit_cache = True


@compiles(month_index, "postgresql")
def _month_postgresql(element: month_index, compiler: SQLCompiler, **kw: Any) -> str:
    value = f"({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC')"
    return (
        f"(CAST(EXTRACT(YEAR FROM {value}) AS INTEGER) * 12"
        f" + CAST(EXTRACT(MONTH FROM {value}) AS INTEGER) - 1)"
    )


@compiles(month_index, "sqlite")
def _month_sqlite(element: month_index, compiler: SQLCompiler, **kw: Any) -> str:
    value = compiler.process(element.clauses, **kw)
    return (
        f"(CAST(strftime('%Y', {value}) AS INTEGER) * 12"
        f" + CAST(strftime('%m', {value}) AS INTEGER) - 1)"
    )


class whole(FunctionElement[int]):
    """The largest integer not above a non-negative number (SQLite has no floor())."""

    type = Integer()
    inherit_cache = True


@compiles(whole, "postgresql")
def _whole_postgresql(element: whole, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(FLOOR({compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(whole, "sqlite")
def _whole_sqlite(element: whole, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS INTEGER)"


def week_index(column: Any) -> ColumnElement[int]:
    """Monday-based week number since 1970 (UTC)."""
    return whole((epoch_seconds(column) + _WEEK_SHIFT) / WEEK)


def week_start(index: int) -> datetime:
    """The Monday 00:00 UTC that begins week ``index`` of week_index()."""
    return datetime.fromtimestamp(index * WEEK - _WEEK_SHIFT, tz=UTC)


def week_index_of(moment: datetime) -> int:
    return int((moment.timestamp() + _WEEK_SHIFT) // WEEK)


def month_start(index: int) -> datetime:
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def month_of(moment: datetime) -> int:
    return moment.year * 12 + moment.month - 1


@dataclass(frozen=True, slots=True)
class Window:
    """The period [start, end) and the rules the figures depend on."""

    start: datetime
    end: datetime
    sleeping_days: int
    lost_days: int


@dataclass(frozen=True, slots=True)
class CustomerFigures:
    members: int
    joined: int  # members who joined in the period
    opted_in: int
    blocked: int
    sleeping: int
    lost: int


@dataclass(frozen=True, slots=True)
class RepeatFigures:
    """Counts and sums over counted orders (not cancelled or refunded) before the period's end."""

    buyers: int  # customers with an order
    repeat_buyers: int  # of them with two or more
    revenue: int  # minor units, all orders of known customers
    at_start: int  # customers active at the start: an order in the lost_days before it
    retained: int  # of them still active at the end
    new: int  # customers whose first order falls in the period
    period_buyers: int  # known customers ordering in the period
    period_orders: int  # every order in the period, guests' too
    period_customer_orders: int  # orders of known customers in the period
    period_revenue: int  # every order in the period
    revenue_new: int  # in the period: first orders, and guests' orders
    revenue_returning: int  # in the period: a known customer's second order or later
    median_gap_days: float | None  # between consecutive orders, the later one in the period
    # The year before the end, for the simple 12-month forecast.
    year_orders: int
    year_buyers: int
    year_revenue: int


@dataclass(frozen=True, slots=True)
class ProgramFigures:
    points_outstanding: int
    earned: int  # points, in the period
    spent: int
    expired: int
    accrued: int  # of earned, cashback on orders


@dataclass(frozen=True, slots=True)
class CohortRow:
    month: int  # month_index of the first order
    size: int
    active: tuple[int, ...]  # customers ordering in month 0, 1, 2, ... after the first


@dataclass(frozen=True, slots=True)
class HistoryGroup:
    """Customers with the same history in whole weeks: how many, repeat orders, weeks from the
    first order to the last (recency) and to now (age), and their mean order in minor units."""

    customers: int
    repeats: int
    recency: float
    age: float
    mean_order: float


def _counted(end: datetime) -> ColumnElement[bool]:
    return and_(orders.c.status.not_in(VOID_STATUSES), orders.c.ordered_at < end)


def _members() -> ColumnElement[bool]:
    return and_(customers.c.joined_at.is_not(None), customers.c.telegram_id.is_not(None))


def _is_first(end: datetime) -> ColumnElement[bool]:
    """The order is its customer's first counted one (ties on the moment broken by id): one
    index seek per order, where a window function over every order would sort them all."""
    prior = orders.alias("prior")
    return ~exists(
        select(literal(1)).where(
            prior.c.customer_id == orders.c.customer_id,
            prior.c.status.not_in(VOID_STATUSES),
            prior.c.ordered_at < end,
            or_(
                prior.c.ordered_at < orders.c.ordered_at,
                and_(prior.c.ordered_at == orders.c.ordered_at, prior.c.id < orders.c.id),
            ),
        )
    )


def _previous_at(end: datetime) -> Any:
    """The moment of the customer's counted order just before this one (None: the first)."""
    prior = orders.alias("prior")
    return (
        select(func.max(prior.c.ordered_at))
        .where(
            prior.c.customer_id == orders.c.customer_id,
            prior.c.status.not_in(VOID_STATUSES),
            or_(
                prior.c.ordered_at < orders.c.ordered_at,
                and_(prior.c.ordered_at == orders.c.ordered_at, prior.c.id < orders.c.id),
            ),
        )
        .scalar_subquery()
    )


def _known(end: datetime) -> ColumnElement[bool]:
    return and_(orders.c.customer_id.is_not(None), _counted(end))


def _sum(value: Any) -> ColumnElement[int]:
    return func.coalesce(func.sum(value), 0)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return _sum(case((condition, 1), else_=0))


class SqlAnalytics:
    """Read-only figures for /stats, the API and the benchmark; the database does the sums."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def customers(self, window: Window) -> CustomerFigures:
        per_customer = (
            select(
                orders.c.customer_id,
                func.count().label("n"),
                func.min(orders.c.ordered_at).label("first_at"),
                func.max(orders.c.ordered_at).label("last_at"),
            )
            .where(orders.c.customer_id.is_not(None), _counted(window.end))
            .group_by(orders.c.customer_id)
            .subquery()
        )
        now = literal(window.end.timestamp())
        idle = now - epoch_seconds(per_customer.c.last_at)
        lost = idle >= window.lost_days * DAY
        # As storage.segments defines "sleeping": overdue (twice their own usual interval, or
        # sleeping_days after a single order) and not yet lost.
        overdue = or_(
            idle >= window.sleeping_days * DAY,
            and_(
                per_customer.c.n >= 2,
                idle * (per_customer.c.n - 1)
                > 2
                * (epoch_seconds(per_customer.c.last_at) - epoch_seconds(per_customer.c.first_at)),
            ),
        )
        statement = (
            select(
                func.count(),
                _count_if(customers.c.joined_at >= window.start),
                _count_if(customers.c.marketing_opt_in.is_(True)),
                _count_if(customers.c.blocked_at.is_not(None)),
                _count_if(and_(per_customer.c.n.is_not(None), overdue, ~lost)),
                _count_if(and_(per_customer.c.n.is_not(None), lost)),
            )
            .select_from(
                customers.outerjoin(per_customer, per_customer.c.customer_id == customers.c.id)
            )
            .where(_members())
        )
        async with self._db.read() as conn:
            row = (await conn.execute(statement)).one()
        return CustomerFigures(*(int(value) for value in row))

    async def repeat_sales(self, window: Window) -> RepeatFigures:
        start, end = window.start, window.end
        lost_before_start = start - timedelta(days=window.lost_days)
        lost_before_end = end - timedelta(days=window.lost_days)
        year_ago = end - timedelta(days=365)
        in_period = orders.c.ordered_at >= start
        per_customer = (
            select(
                orders.c.customer_id,
                func.count().label("n"),
                func.min(orders.c.ordered_at).label("first_at"),
                func.max(orders.c.ordered_at).label("last_at"),
                func.sum(orders.c.total).label("spend"),
                func.max(case((orders.c.ordered_at < start, orders.c.ordered_at))).label(
                    "last_before_start"
                ),
                _count_if(in_period).label("period_orders"),
                _sum(case((in_period, orders.c.total))).label("period_revenue"),
                _count_if(orders.c.ordered_at >= year_ago).label("year_orders"),
                _sum(case((orders.c.ordered_at >= year_ago, orders.c.total))).label("year_revenue"),
            )
            .where(_known(end))
            .group_by(orders.c.customer_id)
            .subquery()
        )
        c = per_customer.c
        at_start = c.last_before_start >= lost_before_start
        customers_query = select(
            func.count(),
            _count_if(c.n >= 2),
            _sum(c.spend),
            _count_if(at_start),
            _count_if(and_(at_start, c.last_at >= lost_before_end)),
            _count_if(c.first_at >= start),
            _count_if(c.period_orders > 0),
            _sum(c.period_orders),
            _sum(c.period_revenue),
            _sum(c.year_orders),
            _count_if(c.year_orders > 0),
            _sum(c.year_revenue),
        ).select_from(per_customer)
        every_order = select(
            func.count(),
            _sum(orders.c.total),
        ).where(_counted(end), orders.c.ordered_at >= start)
        async with self._db.read() as conn:
            (
                buyers,
                repeat_buyers,
                revenue,
                active_at_start,
                retained,
                new,
                period_buyers,
                customer_orders,
                customer_revenue,
                year_orders,
                year_buyers,
                year_revenue,
            ) = (await conn.execute(customers_query)).one()
            period_orders, period_revenue = (await conn.execute(every_order)).one()
            # Of known customers' revenue in the period, what their first orders brought.
            first_revenue = (
                await conn.execute(
                    select(_sum(orders.c.total)).where(_known(end), in_period, _is_first(end))
                )
            ).scalar_one()
            again_revenue = int(customer_revenue) - int(first_revenue)
            median = await self._median_gap(conn, window)
        return RepeatFigures(
            buyers=int(buyers),
            repeat_buyers=int(repeat_buyers),
            revenue=int(revenue),
            at_start=int(active_at_start),
            retained=int(retained),
            new=int(new),
            period_buyers=int(period_buyers),
            period_orders=int(period_orders),
            period_customer_orders=int(customer_orders),
            period_revenue=int(period_revenue),
            # Guests' orders cannot be anyone's second: they count as new business.
            revenue_new=int(period_revenue) - int(again_revenue),
            revenue_returning=int(again_revenue),
            median_gap_days=median,
            year_orders=int(year_orders),
            year_buyers=int(year_buyers),
            year_revenue=int(year_revenue),
        )

    @staticmethod
    async def _median_gap(conn: Any, window: Window) -> float | None:
        """The median of the gaps in whole days (rounded), from their histogram: the sorted
        gaps' middle one or two are where the running count reaches half of all."""
        previous = _previous_at(window.end)
        days = whole(
            (epoch_seconds(orders.c.ordered_at) - epoch_seconds(previous)) / DAY + 0.5
        ).label("days")
        gaps = (
            select(days).where(_known(window.end), orders.c.ordered_at >= window.start).subquery()
        )
        gaps = select(gaps.c.days).where(gaps.c.days.is_not(None)).subquery()
        histogram = select(gaps.c.days, func.count().label("n")).group_by(gaps.c.days).subquery()
        running = select(
            histogram.c.days,
            func.sum(histogram.c.n).over(order_by=histogram.c.days).label("running"),
            func.sum(histogram.c.n).over().label("total"),
        ).subquery()
        # The middle positions (1-based) are ceil(total / 2) and total // 2 + 1.
        low = select(func.min(running.c.days)).where(running.c.running * 2 >= running.c.total)
        high = select(func.min(running.c.days)).where(running.c.running * 2 >= running.c.total + 1)
        low_days, high_days = (
            await conn.execute(select(low.scalar_subquery(), high.scalar_subquery()))
        ).one()
        if low_days is None:
            return None
        return (int(low_days) + int(high_days)) / 2

    async def program(self, window: Window) -> ProgramFigures:
        amount = ledger_entries.c.amount
        kind = ledger_entries.c.kind
        in_period = and_(
            ledger_entries.c.occurred_at >= window.start, ledger_entries.c.occurred_at < window.end
        )
        statement = select(
            _sum(case((kind.in_(EARNED_KINDS), amount))),
            _sum(case((kind == EntryKind.ADJUSTMENT, amount))),
            # A spend undone by a refund was not spent.
            _sum(case((kind.in_((EntryKind.REDEMPTION, EntryKind.RESTORATION)), -amount))),
            _sum(case((kind == EntryKind.EXPIRY, -amount))),
            _sum(case((kind == EntryKind.ACCRUAL, amount))),
        ).where(in_period)
        outstanding = select(_sum(ledger_accounts.c.balance)).where(ledger_accounts.c.balance > 0)
        async with self._db.read() as conn:
            earned, adjusted, spent, expired, accrued = (await conn.execute(statement)).one()
            points = (await conn.execute(outstanding)).scalar_one()
        return ProgramFigures(
            points_outstanding=int(points),
            # An admin's adjustment counts where its sign puts it.
            earned=int(earned) + max(int(adjusted), 0),
            spent=int(spent) + max(-int(adjusted), 0),
            expired=int(expired),
            accrued=int(accrued),
        )

    async def cohorts(self, *, first_month: int, end: datetime) -> list[CohortRow]:
        """Per month of first order from ``first_month`` on: the cohort's size and how many of
        it ordered in each month since (month 0 is the first order's own month)."""
        since = month_start(first_month)
        prior = orders.alias("prior")
        # Customers whose history starts within the months shown: no counted order before.
        earlier = exists(
            select(literal(1)).where(
                prior.c.customer_id == orders.c.customer_id,
                prior.c.status.not_in(VOID_STATUSES),
                prior.c.ordered_at < since,
            )
        )
        first = (
            select(
                orders.c.customer_id,
                func.min(month_index(orders.c.ordered_at)).label("cohort"),
            )
            .where(_known(end), orders.c.ordered_at >= since, ~earlier)
            .group_by(orders.c.customer_id)
            .subquery()
        )
        offset = (month_index(orders.c.ordered_at) - first.c.cohort).label("offset")
        statement = (
            select(first.c.cohort, offset, func.count(func.distinct(orders.c.customer_id)))
            .select_from(orders.join(first, first.c.customer_id == orders.c.customer_id))
            .where(_counted(end), orders.c.ordered_at >= since)
            .group_by(first.c.cohort, offset)
            .order_by(first.c.cohort, offset)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(statement)).all()
        by_cohort: dict[int, dict[int, int]] = {}
        for cohort, month, count in rows:
            by_cohort.setdefault(int(cohort), {})[int(month)] = int(count)
        last_month = month_of(end)
        return [
            CohortRow(
                month=cohort,
                size=months.get(0, 0),
                active=tuple(months.get(k, 0) for k in range(last_month - cohort + 1)),
            )
            for cohort, months in sorted(by_cohort.items())
        ]

    async def weekly_orders(self, *, since: datetime, end: datetime) -> list[tuple[int, int, int]]:
        """(week_index, first orders, repeat orders) of known customers, week by week."""
        first = _is_first(end)
        week = week_index(orders.c.ordered_at).label("week")
        statement = (
            select(week, _count_if(first), _count_if(~first))
            .where(_known(end), orders.c.ordered_at >= since)
            .group_by(week)
            .order_by(week)
        )
        async with self._db.read() as conn:
            return [(int(w), int(a), int(b)) for w, a, b in (await conn.execute(statement)).all()]

    async def rating_distribution(
        self, *, since: datetime, end: datetime, by_month: bool
    ) -> list[tuple[int, int, int]]:
        """(week or month index, score, count) of the scores given in [since, end)."""
        bucket = (
            month_index(ratings.c.rated_at) if by_month else week_index(ratings.c.rated_at)
        ).label("bucket")
        statement = (
            select(bucket, ratings.c.score, func.count())
            .where(
                ratings.c.score.is_not(None),
                ratings.c.rated_at >= since,
                ratings.c.rated_at < end,
            )
            .group_by(bucket, ratings.c.score)
            .order_by(bucket, ratings.c.score)
        )
        async with self._db.read() as conn:
            return [(int(b), int(s), int(n)) for b, s, n in (await conn.execute(statement)).all()]

    async def satisfaction(self, window: Window) -> tuple[int, int]:
        """(scores given in the period, of them 4 or 5)."""
        statement = select(func.count(), _count_if(ratings.c.score >= 4)).where(
            ratings.c.score.is_not(None),
            ratings.c.rated_at >= window.start,
            ratings.c.rated_at < window.end,
        )
        async with self._db.read() as conn:
            count, satisfied = (await conn.execute(statement)).one()
        return int(count), int(satisfied)

    async def histories(self, *, end: datetime) -> list[HistoryGroup]:
        """Known customers' histories for the BG/NBD and Gamma-Gamma fits, grouped by repeat
        orders and whole weeks (100 000 customers become a few thousand rows to fit)."""
        first = func.min(epoch_seconds(orders.c.ordered_at))
        last = func.max(epoch_seconds(orders.c.ordered_at))
        per_customer = (
            select(
                (func.count() - 1).label("repeats"),
                whole((last - first) / WEEK).label("recency"),
                whole((literal(end.timestamp()) - first) / WEEK).label("age"),
                func.avg(orders.c.total).label("mean_order"),
            )
            .where(orders.c.customer_id.is_not(None), _counted(end))
            .group_by(orders.c.customer_id)
            .subquery()
        )
        c = per_customer.c
        statement = select(
            func.count(), c.repeats, c.recency, c.age, func.avg(c.mean_order)
        ).group_by(c.repeats, c.recency, c.age)
        async with self._db.read() as conn:
            rows = (await conn.execute(statement)).all()
        return [
            HistoryGroup(
                customers=int(n),
                repeats=int(repeats),
                recency=float(recency),
                age=float(age),
                mean_order=float(mean),
            )
            for n, repeats, recency, age, mean in rows
        ]

    async def broadcasts_started(self, window: Window) -> Sequence[int]:
        statement = (
            select(broadcasts.c.id)
            .where(
                broadcasts.c.started_at >= window.start,
                broadcasts.c.started_at < window.end,
            )
            .order_by(broadcasts.c.id)
        )
        async with self._db.read() as conn:
            return [int(value) for value in (await conn.execute(statement)).scalars()]


__all__ = [
    "CohortRow",
    "CustomerFigures",
    "HistoryGroup",
    "ProgramFigures",
    "RepeatFigures",
    "SqlAnalytics",
    "Window",
]
