"""Shop figures as SQL: repeat sales, retention, cohorts, program cost and chart series."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from storage.database import Database
from storage.ledger import EntryKind
from storage.schema import (
    broadcasts,
    customer_order_totals,
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
# Points that came into accounts (every credit but the undoing of a spend).
EARNED_KINDS = (
    EntryKind.ACCRUAL,
    EntryKind.WELCOME,
    EntryKind.REFERRAL,
    EntryKind.BIRTHDAY,
    EntryKind.COMPENSATION,
    EntryKind.GIFT,
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


# 1970-01-05 was a Monday: week 0 of the calendar begins on it.
_FIRST_MONDAY = date(1970, 1, 5)


@dataclass(frozen=True, slots=True)
class Calendar:
    """Months and Monday-based weeks as the shop's clock shows them: a cohort month, a chart's
    week begin at local midnight, whatever the database's timestamps are in (UTC)."""

    zone: ZoneInfo

    def month_of(self, moment: datetime) -> int:
        """year * 12 + month - 1 of the moment's local date: consecutive months differ by one."""
        local = moment.astimezone(self.zone)
        return local.year * 12 + local.month - 1

    def month_start(self, index: int) -> datetime:
        return datetime(index // 12, index % 12 + 1, 1, tzinfo=self.zone)

    def week_of(self, moment: datetime) -> int:
        """Weeks since the Monday 1970-01-05, by the moment's local date."""
        return (moment.astimezone(self.zone).date() - _FIRST_MONDAY).days // 7

    def week_start(self, index: int) -> datetime:
        day = _FIRST_MONDAY + timedelta(days=7 * index)
        return datetime(day.year, day.month, day.day, tzinfo=self.zone)

    def bucket(self, column: Any, *, first: int, last: int, by_month: bool) -> ColumnElement[int]:
        """The month (or week) index, from ``first`` to ``last``, a timestamp falls in; NULL
        before the first. Bounds are instants worked out here, compared on the stored
        timestamps: the same on both backends, and the database needs no time-zone tables."""
        starts = self.month_start if by_month else self.week_start
        # Latest first: most rows are recent, and the first bound passed decides.
        whens = [
            (column >= starts(index).astimezone(UTC), index) for index in range(last, first - 1, -1)
        ]
        return case(*whens, else_=None)


UTC_CALENDAR = Calendar(ZoneInfo("UTC"))


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
    month: int  # Calendar.month_of the first order
    size: int
    active: tuple[int, ...]  # customers ordering in month 0, 1, 2, ... after the first


class HistoryGroup(NamedTuple):
    """Customers with the same history in whole weeks: how many, repeat orders, weeks from the
    first order to the last (recency) and to now (age), and their mean order in minor units.
    A tuple: a big shop's fit reads some fifty thousand, and a frozen dataclass costs twice
    as long to build."""

    customers: int
    repeats: int
    recency: float
    age: float
    mean_order: float


@dataclass(frozen=True, slots=True)
class Overview:
    """What one pass over every customer's history gives: the Customers and Repeat sales
    figures, the fit's input and the cohorts."""

    customers: CustomerFigures
    repeat: RepeatFigures
    histories: list[HistoryGroup]
    cohorts: list[CohortRow]  # empty unless asked for


def _counted(end: datetime) -> ColumnElement[bool]:
    return and_(orders.c.status.not_in(VOID_STATUSES), orders.c.ordered_at < end)


def _members() -> ColumnElement[bool]:
    return and_(customers.c.joined_at.is_not(None), customers.c.telegram_id.is_not(None))


def _known(end: datetime) -> ColumnElement[bool]:
    return and_(orders.c.customer_id.is_not(None), _counted(end))


def _sum(value: Any) -> ColumnElement[int]:
    return func.coalesce(func.sum(value), 0)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return _sum(case((condition, 1), else_=0))


def _per_customer(end: datetime) -> Any:
    """Each known customer's counted orders before ``end`` in one row: how many, the first and
    the last moment, the revenue. One grouped pass over the covering index
    ix_orders_customer_history; every figure of a press derives from it, so it is computed
    once per statement (MATERIALIZED: both backends keep it instead of re-scanning)."""
    return (
        select(
            orders.c.customer_id,
            func.count().label("n"),
            func.min(orders.c.ordered_at).label("first_at"),
            func.max(orders.c.ordered_at).label("last_at"),
            func.sum(orders.c.total).label("spend"),
            # The same moments as seconds, parsed once per customer rather than per use.
            epoch_seconds(func.min(orders.c.ordered_at)).label("first_s"),
            epoch_seconds(func.max(orders.c.ordered_at)).label("last_s"),
        )
        .where(_known(end))
        .group_by(orders.c.customer_id)
        .cte("per_customer")
        .prefix_with("MATERIALIZED")
    )


def _kept_totals() -> Any:
    """The rows of _per_customer as customer_order_totals keeps them (triggers on orders, on
    every write): one row per customer to read instead of a million orders to group."""
    totals = customer_order_totals.c
    return (
        select(
            totals.customer_id,
            totals.orders.label("n"),
            totals.first_at,
            totals.last_at,
            totals.spend,
            epoch_seconds(totals.first_at).label("first_s"),
            epoch_seconds(totals.last_at).label("last_s"),
        )
        .cte("per_customer")
        .prefix_with("MATERIALIZED")
    )


async def _histories(conn: Any, end: datetime) -> Any:
    """Every known customer's counted orders before ``end``, for the read ``conn`` is in: the
    kept totals when no order is that recent (a /stats press: the end is now), else grouped
    from the orders (a window in the past, or orders stamped ahead of the clock)."""
    latest = (await conn.execute(select(func.max(orders.c.ordered_at)))).scalar_one()
    if latest is None or latest < end:
        return _kept_totals()
    return _per_customer(end)


def _orders_since(since: datetime, end: datetime, *, name: str) -> Any:
    """Counted orders in [since, end), guests' too, each with the moment of its customer's
    counted order just before it (ties on the moment broken by id; NULL: the first). Read
    from ix_orders_ordered_at by date; only a customer's earliest order in the range looks
    further back, with one index seek."""
    within = (
        select(
            orders.c.id,
            orders.c.customer_id,
            orders.c.ordered_at,
            orders.c.total,
            func.lag(orders.c.ordered_at)
            .over(partition_by=orders.c.customer_id, order_by=(orders.c.ordered_at, orders.c.id))
            .label("lag_at"),
        )
        .where(_counted(end), orders.c.ordered_at >= since)
        .subquery()
    )
    prior = orders.alias("prior")
    before = (
        select(func.max(prior.c.ordered_at))
        .where(
            prior.c.customer_id == within.c.customer_id,
            prior.c.status.not_in(VOID_STATUSES),
            prior.c.ordered_at < since,
        )
        .scalar_subquery()
    )
    return (
        select(
            within.c.customer_id,
            within.c.ordered_at,
            within.c.total,
            # COALESCE looks back only when the range holds no earlier order (both backends
            # evaluate it lazily).
            func.coalesce(within.c.lag_at, before).label("previous_at"),
        )
        .cte(name)
        .prefix_with("MATERIALIZED")
    )


def _median(days: Any) -> tuple[Any, Any]:
    """The middle one or two of whole-day gaps (NULL for none), from their histogram: the
    sorted gaps' middle ones are where the running count reaches half of all."""
    gaps = select(days.label("days")).subquery()
    histogram = select(gaps.c.days, func.count().label("n")).group_by(gaps.c.days).subquery()
    # Kept for both ends of the middle: one pass over the gaps.
    running = (
        select(
            histogram.c.days,
            func.sum(histogram.c.n).over(order_by=histogram.c.days).label("running"),
            func.sum(histogram.c.n).over().label("total"),
        )
        .cte("running_gaps")
        .prefix_with("MATERIALIZED")
    )
    # The middle positions (1-based) are ceil(total / 2) and total // 2 + 1.
    low = select(func.min(running.c.days)).where(running.c.running * 2 >= running.c.total)
    high = select(func.min(running.c.days)).where(running.c.running * 2 >= running.c.total + 1)
    return low.scalar_subquery(), high.scalar_subquery()


# One statement answers a press (UNION ALL: the histories are read once); each row says in
# its first column what it carries. A figure is a row (its number, its value: money stays an
# exact integer, never in a column with averages); a history group or a cohort cell fills the
# columns after the kind. Narrow rows: some fifty thousand groups come back.
_FIGURE, _GROUP, _COHORT_CELL = 0, 1, 2
_WIDTH = 5


def _part(kind: int, columns: Sequence[Any], source: Any) -> Any:
    """``columns`` of ``source`` as one part of the UNION: the kind, then NULL to the width."""
    # Typed: PostgreSQL settles a UNION's column types part by part, and an untyped NULL
    # first would make them text. The padding columns only ever hold averages.
    padded = [*columns, *([cast(null(), Float)] * (_WIDTH - len(columns)))]
    return select(
        literal_column(str(kind)).label("kind"),
        *(column.label(f"c{n}") for n, column in enumerate(padded)),
    ).select_from(source)


def _rows_part(kind: int, statement: Any) -> Any:
    rows = statement.subquery()
    return _part(kind, list(rows.c), rows)


def _figure_parts(figures: Any) -> list[Any]:
    """The one row of ``figures`` (a CTE) as one row per figure: (its number, its value)."""
    return [
        _part(_FIGURE, [literal_column(str(n)), column], figures)
        for n, column in enumerate(figures.c)
    ]


def _groups_of(rows: Iterable[Sequence[Any]]) -> list[HistoryGroup]:
    return [
        HistoryGroup(int(count), int(repeats), float(recency), float(age), float(mean))
        for count, repeats, recency, age, mean, *_rest in rows
    ]


def _cohorts_of(cells: Iterable[Sequence[Any]], *, last_month: int) -> list[CohortRow]:
    by_cohort: dict[int, dict[int, int]] = {}
    for cohort, months, count, *_rest in cells:
        by_cohort.setdefault(int(cohort), {})[int(months)] = int(count)
    return [
        CohortRow(
            month=cohort,
            size=months.get(0, 0),
            active=tuple(months.get(k, 0) for k in range(last_month - cohort + 1)),
        )
        for cohort, months in sorted(by_cohort.items())
    ]


async def _without_jit(conn: Any) -> None:
    """On PostgreSQL, no JIT for the rest of this read: the estimates of a 1M-order shop make
    it compile these statements (some 200 functions), a second or more, several times what
    running them costs."""
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql("SET LOCAL jit = off")


class SqlAnalytics:
    """Read-only figures for /stats, the API and the benchmark; the database does the sums."""

    def __init__(self, db: Database, *, calendar: Calendar = UTC_CALENDAR) -> None:
        self._db = db
        self._calendar = calendar

    async def overview(
        self, window: Window, *, first_month: int | None = None, histories: bool = True
    ) -> Overview:
        """The Customers and Repeat sales figures, the fit's input (unless ``histories`` is
        False: then empty) and (from ``first_month`` on) the cohorts, in one statement: one
        pass over the customers' histories, kept for every part (MATERIALIZED), and one over
        the period's orders by date."""
        async with self._db.report() as conn:
            await _without_jit(conn)
            history = await _histories(conn, window.end)
            statement, figures = self._overview_statement(
                window, history, first_month, histories=histories
            )
            rows = (await conn.execute(statement)).all()
        by_kind: dict[int, list[Any]] = {_FIGURE: [], _GROUP: [], _COHORT_CELL: []}
        for part_row in rows:
            by_kind[int(part_row[0])].append(part_row[1:])
        values = dict((int(n), value) for n, value, *_rest in by_kind[_FIGURE])
        row = [values[n] for n in range(len(figures.c))]
        (
            n_members,
            joined,
            opted_in,
            blocked,
            sleeping,
            n_lost,
            n_buyers,
            repeat_buyers,
            revenue,
            active_at_start,
            retained,
            new,
            period_buyers,
            year_buyers,
            period_orders,
            period_revenue,
            customer_orders,
            customer_revenue,
            first_revenue,
            year_orders,
            year_revenue,
        ) = (int(value) for value in row[:21])
        low_days, high_days = row[21:23]
        again_revenue = customer_revenue - first_revenue
        repeat = RepeatFigures(
            buyers=n_buyers,
            repeat_buyers=repeat_buyers,
            revenue=revenue,
            at_start=active_at_start,
            retained=retained,
            new=new,
            period_buyers=period_buyers,
            period_orders=period_orders,
            period_customer_orders=customer_orders,
            period_revenue=period_revenue,
            # Guests' orders cannot be anyone's second: they count as new business.
            revenue_new=period_revenue - again_revenue,
            revenue_returning=again_revenue,
            median_gap_days=None if low_days is None else (int(low_days) + int(high_days)) / 2,
            year_orders=year_orders,
            year_buyers=year_buyers,
            year_revenue=year_revenue,
        )
        return Overview(
            customers=CustomerFigures(n_members, joined, opted_in, blocked, sleeping, n_lost),
            repeat=repeat,
            histories=_groups_of(by_kind[_GROUP]),
            cohorts=(
                []
                if first_month is None
                else _cohorts_of(
                    by_kind[_COHORT_CELL],
                    last_month=self._calendar.month_of(window.end),
                )
            ),
        )

    def _overview_statement(
        self, window: Window, history: Any, first_month: int | None, *, histories: bool
    ) -> tuple[Any, Any]:
        """The overview's one statement over ``history`` (see _histories), and its figures CTE."""
        start, end = window.start, window.end
        c = history.c
        now = literal(end.timestamp())
        idle = now - c.last_s
        lost = idle >= window.lost_days * DAY
        # As storage.segments defines "sleeping": overdue (twice their own usual interval, or
        # sleeping_days after a single order) and not yet lost.
        overdue = or_(
            idle >= window.sleeping_days * DAY,
            and_(
                c.n >= 2,
                idle * (c.n - 1) > 2 * (c.last_s - c.first_s),
            ),
        )
        members = (
            select(
                func.count().label("members"),
                _count_if(customers.c.joined_at >= start).label("joined"),
                _count_if(customers.c.marketing_opt_in.is_(True)).label("opted_in"),
                _count_if(customers.c.blocked_at.is_not(None)).label("blocked"),
                _count_if(and_(c.n.is_not(None), overdue, ~lost)).label("sleeping"),
                _count_if(and_(c.n.is_not(None), lost)).label("lost"),
            )
            .select_from(customers.outerjoin(history, c.customer_id == customers.c.id))
            .where(_members())
            .subquery()
        )
        lost_before_start = start - timedelta(days=window.lost_days)
        lost_before_end = end - timedelta(days=window.lost_days)
        year_ago = end - timedelta(days=365)
        prior = orders.alias("prior")
        # Active at the start: an order in the lost_days before it. Whoever's last order is
        # older than the start is settled by it; the others look into that span once.
        ordered_in_span = exists(
            select(literal(1)).where(
                prior.c.customer_id == c.customer_id,
                prior.c.status.not_in(VOID_STATUSES),
                prior.c.ordered_at >= lost_before_start,
                prior.c.ordered_at < start,
            )
        )
        at_start = or_(
            and_(c.last_at < start, c.last_at >= lost_before_start),
            and_(c.last_at >= start, c.first_at < start, ordered_in_span),
        )
        flagged = select(
            c.n,
            c.spend,
            c.first_at,
            c.last_at,
            case((at_start, 1), else_=0).label("at_start"),
        ).subquery()
        f = flagged.c
        buyers = select(
            func.count().label("buyers"),
            _count_if(f.n >= 2).label("repeat_buyers"),
            _sum(f.spend).label("revenue"),
            _sum(f.at_start).label("at_start"),
            _count_if(and_(f.at_start == 1, f.last_at >= lost_before_end)).label("retained"),
            _count_if(f.first_at >= start).label("new"),
            _count_if(f.last_at >= start).label("period_buyers"),
            _count_if(f.last_at >= year_ago).label("year_buyers"),
        ).subquery()
        period = _orders_since(start, end, name="period_orders")
        p = period.c
        known = p.customer_id.is_not(None)
        in_period = select(
            func.count().label("orders"),
            _sum(p.total).label("revenue"),
            _count_if(known).label("customer_orders"),
            _sum(case((known, p.total))).label("customer_revenue"),
            # Of known customers' revenue in the period, what their first orders brought.
            _sum(case((and_(known, p.previous_at.is_(None)), p.total))).label("first_revenue"),
        ).subquery()
        year = (
            select(
                func.count().label("orders"),
                _sum(orders.c.total).label("revenue"),
            )
            .where(_known(end), orders.c.ordered_at >= year_ago)
            .subquery()
        )
        days = whole(
            (epoch_seconds(p.ordered_at) - epoch_seconds(p.previous_at)) / DAY + 0.5
        ).label("days")
        gaps = select(days).where(known, p.previous_at.is_not(None)).subquery()
        low, high = _median(gaps.c.days)
        figures = (
            select(*members.c, *buyers.c, *in_period.c, *year.c, low, high)
            .select_from(members.join(buyers, true()).join(in_period, true()).join(year, true()))
            .cte("figures")
            .prefix_with("MATERIALIZED")
        )
        parts = _figure_parts(figures)
        if histories:
            parts.append(_rows_part(_GROUP, self._history_groups(history, end)))
        if first_month is not None:
            cells = self._cohort_cells(history, first_month=first_month, end=end)
            parts.append(_rows_part(_COHORT_CELL, cells))
        return union_all(*parts), figures

    async def customers(self, window: Window) -> CustomerFigures:
        return (await self.overview(window)).customers

    async def repeat_sales(self, window: Window) -> RepeatFigures:
        return (await self.overview(window)).repeat

    async def histories(self, *, end: datetime) -> list[HistoryGroup]:
        """Known customers' histories for the BG/NBD and Gamma-Gamma fits, grouped by repeat
        orders and whole weeks (100 000 customers become some fifty thousand rows)."""
        async with self._db.report() as conn:
            history = await _histories(conn, end)
            rows = (await conn.execute(self._history_groups(history, end))).all()
        return _groups_of(rows)

    def _cohort_cells(self, history: Any, *, first_month: int, end: datetime) -> Any:
        """(cohort, months since, customers ordering) for the customers whose first counted
        order falls from ``first_month`` on: their orders are read by customer, from the
        index, and only theirs."""
        calendar = self._calendar
        since = calendar.month_start(first_month)
        last_month = calendar.month_of(end)
        c = history.c
        cohort = calendar.bucket(c.first_at, first=first_month, last=last_month, by_month=True)
        members = (
            select(c.customer_id, cohort.label("cohort")).where(c.first_at >= since).subquery()
        )
        month = calendar.bucket(
            orders.c.ordered_at, first=first_month, last=last_month, by_month=True
        )
        # Each customer once per month they ordered in, then counted per cohort and month.
        active = (
            select(members.c.customer_id, members.c.cohort, month.label("month"))
            .select_from(members.join(orders, orders.c.customer_id == members.c.customer_id))
            .where(_counted(end), orders.c.ordered_at >= since)
            .distinct()
            .subquery()
        )
        offset = (active.c.month - active.c.cohort).label("offset")
        return select(active.c.cohort, offset, func.count()).group_by(active.c.cohort, offset)

    @staticmethod
    def _history_groups(history: Any, end: datetime) -> Any:
        """Customers grouped by repeat orders and whole weeks of recency and age; each group
        carries its members' mean recency and age in weeks (the floor would put a repeat
        buyer of one week at recency 0, where the BG/NBD likelihood has no maximum)."""
        c = history.c
        weeks = select(
            c.n,
            ((c.last_s - c.first_s) / WEEK).label("recency"),
            ((literal(end.timestamp()) - c.first_s) / WEEK).label("age"),
            (c.spend * 1.0 / c.n).label("mean_order"),
        ).subquery()
        w = weeks.c
        return select(
            func.count(),
            w.n - 1,
            func.avg(w.recency),
            func.avg(w.age),
            func.avg(w.mean_order),
        ).group_by(w.n, whole(w.recency), whole(w.age))

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
        async with self._db.report() as conn:
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
        """Per month of first order from ``first_month`` on (the shop's months): the cohort's
        size and how many of it ordered in each month since (month 0: the first's own)."""
        async with self._db.report() as conn:
            await _without_jit(conn)
            history = await _histories(conn, end)
            cells = self._cohort_cells(history, first_month=first_month, end=end)
            rows = (await conn.execute(cells)).all()
        return _cohorts_of(rows, last_month=self._calendar.month_of(end))

    async def weekly_orders(self, *, first_week: int, end: datetime) -> list[tuple[int, int, int]]:
        """(week, first orders, repeat orders) of known customers, the shop's weeks from
        ``first_week`` on."""
        calendar = self._calendar
        recent = _orders_since(calendar.week_start(first_week), end, name="recent_orders")
        week = calendar.bucket(
            recent.c.ordered_at, first=first_week, last=calendar.week_of(end), by_month=False
        ).label("week")
        first = recent.c.previous_at.is_(None)
        statement = (
            select(week, _count_if(first), _count_if(~first))
            .where(recent.c.customer_id.is_not(None))
            .group_by(week)
            .order_by(week)
        )
        async with self._db.report() as conn:
            await _without_jit(conn)
            return [(int(w), int(a), int(b)) for w, a, b in (await conn.execute(statement)).all()]

    async def rating_distribution(
        self, *, since: datetime, end: datetime, by_month: bool
    ) -> list[tuple[int, int, int]]:
        """(the shop's week or month, score, count) of the scores given in [since, end)."""
        calendar = self._calendar
        of = calendar.month_of if by_month else calendar.week_of
        bucket = calendar.bucket(
            ratings.c.rated_at, first=of(since), last=of(end), by_month=by_month
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
        async with self._db.report() as conn:
            return [(int(b), int(s), int(n)) for b, s, n in (await conn.execute(statement)).all()]

    async def satisfaction(self, window: Window) -> tuple[int, int]:
        """(scores given in the period, of them 4 or 5)."""
        statement = select(func.count(), _count_if(ratings.c.score >= 4)).where(
            ratings.c.score.is_not(None),
            ratings.c.rated_at >= window.start,
            ratings.c.rated_at < window.end,
        )
        async with self._db.report() as conn:
            count, satisfied = (await conn.execute(statement)).one()
        return int(count), int(satisfied)

    async def broadcasts_started(self, window: Window) -> Sequence[int]:
        statement = (
            select(broadcasts.c.id)
            .where(
                broadcasts.c.started_at >= window.start,
                broadcasts.c.started_at < window.end,
            )
            .order_by(broadcasts.c.id)
        )
        async with self._db.report() as conn:
            return [int(value) for value in (await conn.execute(statement)).scalars()]


__all__ = [
    "Calendar",
    "CohortRow",
    "CustomerFigures",
    "HistoryGroup",
    "Overview",
    "ProgramFigures",
    "RepeatFigures",
    "SqlAnalytics",
    "Window",
]
