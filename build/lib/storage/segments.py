"""Segments as SQL: the customers a broadcast reaches, counted and listed by the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    func,
    literal,
    or_,
    select,
)

from storage.database import Database
from storage.ratings import UNRESOLVED
from storage.schema import customers, order_items, orders, outbox, products, rating_alerts
from storage.sql import epoch_seconds

# Orders that no longer count as purchases.
VOID_STATUSES = ("cancelled", "refunded")
DELIVERED_OR_MAYBE = ("sending", "sent", "unknown")


@dataclass(frozen=True, slots=True)
class SegmentQuery:
    """A segment in the terms SQL needs (scenarios.segments.Segment, resolved against rules)."""

    kind: str
    now: datetime
    sleeping_days: int
    lost_days: int
    point_value: int  # minor units one redeemed point paid for
    new_days: int = 30  # "new": the first counted order within this many days
    spend_from: int | None = None  # tier: paid spend in [spend_from, spend_to)
    spend_to: int | None = None
    spend_since: datetime | None = None  # tier window start (None: lifetime)
    sku: str | None = None
    category: str | None = None
    days: int | None = None


def _members() -> ColumnElement[bool]:
    return and_(customers.c.joined_at.is_not(None), customers.c.telegram_id.is_not(None))


def _order_stats(*, point_value: int, since: datetime | None = None) -> Select[tuple[object, ...]]:
    counted: ColumnElement[bool] = orders.c.status.not_in(VOID_STATUSES)
    if since is not None:
        counted = and_(counted, orders.c.ordered_at >= since)
    return (
        select(
            orders.c.customer_id.label("customer_id"),
            func.count().label("n"),
            func.min(orders.c.ordered_at).label("first_at"),
            func.max(orders.c.ordered_at).label("last_at"),
            func.sum(orders.c.total - orders.c.bonus_redeemed * point_value).label("spend"),
        )
        .where(orders.c.customer_id.is_not(None), counted)
        .group_by(orders.c.customer_id)
    )


def segment_members(query: SegmentQuery) -> Select[tuple[int]]:
    """Ids of the members in a segment, before consent and caps."""
    base = select(customers.c.id).where(_members())
    kind = query.kind
    if kind == "all":
        return base
    if kind in {"sku", "category"}:
        # A line's category is what the order said, else the catalog's: shops rarely send one.
        match = (
            order_items.c.sku == query.sku
            if kind == "sku"
            else (func.coalesce(order_items.c.category, products.c.category) == query.category)
        )
        lines = order_items.join(orders, order_items.c.order_id == orders.c.id)
        if kind == "category":
            lines = lines.outerjoin(products, products.c.sku == order_items.c.sku)
        bought = exists(
            select(literal(1))
            .select_from(lines)
            .where(
                orders.c.customer_id == customers.c.id,
                orders.c.status.not_in(VOID_STATUSES),
                match,
            )
        )
        return base.where(bought)
    if kind == "tier":
        spend = _order_stats(point_value=query.point_value, since=query.spend_since).subquery()
        total = func.coalesce(spend.c.spend, 0)
        within = total >= (query.spend_from or 0)
        if query.spend_to is not None:
            within = and_(within, total < query.spend_to)
        return (
            select(customers.c.id)
            .select_from(customers.outerjoin(spend, spend.c.customer_id == customers.c.id))
            .where(_members(), within)
        )

    stats = _order_stats(point_value=query.point_value).subquery()
    now = literal(query.now.timestamp())
    idle = now - epoch_seconds(stats.c.last_at)
    day = 86_400.0
    lost = idle >= query.lost_days * day
    # Overdue: twice their own usual interval (several orders), or sleeping_days (one order).
    overdue = or_(
        idle >= query.sleeping_days * day,
        and_(
            stats.c.n >= 2,
            idle * (stats.c.n - 1)
            > 2 * (epoch_seconds(stats.c.last_at) - epoch_seconds(stats.c.first_at)),
        ),
    )
    with_orders = (
        select(customers.c.id)
        .select_from(customers.join(stats, stats.c.customer_id == customers.c.id))
        .where(_members())
    )
    if kind == "new":
        # By the first order, not the join date: an imported one-time buyer of last year is
        # not new, a member whose history starts this month is.
        return with_orders.where(stats.c.first_at >= query.now - timedelta(days=query.new_days))
    if kind == "regular":
        return with_orders.where(stats.c.n >= 2, ~overdue)
    if kind == "sleeping":
        return with_orders.where(overdue, ~lost)
    if kind == "lost":
        return with_orders.where(lost)
    if kind == "inactive":
        assert query.days is not None
        cutoff = query.now - timedelta(days=query.days)
        recent = exists(
            select(literal(1)).where(
                orders.c.customer_id == customers.c.id,
                orders.c.status.not_in(VOID_STATUSES),
                orders.c.ordered_at >= cutoff,
            )
        )
        # Order history counts whenever it was made (imported history included); a member
        # who never ordered counts once they have been a member that long.
        ordered = exists(
            select(literal(1)).where(
                orders.c.customer_id == customers.c.id,
                orders.c.status.not_in(VOID_STATUSES),
            )
        )
        return base.where(~recent, or_(ordered, customers.c.joined_at <= cutoff))
    raise ValueError(f"unknown segment kind {kind!r}")


def reachable(
    members: Select[tuple[int]], *, now: datetime, marketing_per_week: int
) -> Select[tuple[int]]:
    """Of these members, those a marketing message may reach: consent, not blocked, under cap,
    no open complaint (the delivery policy skips marketing to them until staff resolve it)."""
    ids = members.subquery()
    complaining = exists(
        select(literal(1)).where(
            rating_alerts.c.customer_id == customers.c.id,
            rating_alerts.c.state.in_(UNRESOLVED),
        )
    )
    recent_marketing = (
        select(func.count())
        .select_from(outbox)
        .where(
            outbox.c.customer_id == customers.c.id,
            outbox.c.category == "marketing",
            outbox.c.state.in_(DELIVERED_OR_MAYBE),
            outbox.c.sent_at >= now - timedelta(days=7),
        )
        .scalar_subquery()
    )
    return (
        select(customers.c.id)
        .join(ids, ids.c.id == customers.c.id)
        .where(
            customers.c.marketing_opt_in.is_(True),
            customers.c.blocked_at.is_(None),
            recent_marketing < marketing_per_week,
            ~complaining,
        )
    )


class SqlSegments:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def count(self, query: SegmentQuery, *, marketing_per_week: int) -> tuple[int, int]:
        """(members in the segment, of them reachable by a broadcast now)."""
        members = segment_members(query)
        async with self._db.read() as conn:
            total = (
                await conn.execute(select(func.count()).select_from(members.subquery()))
            ).scalar_one()
            reach = (
                await conn.execute(
                    select(func.count()).select_from(
                        reachable(
                            members, now=query.now, marketing_per_week=marketing_per_week
                        ).subquery()
                    )
                )
            ).scalar_one()
        return int(total), int(reach)

    async def reachable_ids(self, query: SegmentQuery, *, marketing_per_week: int) -> list[int]:
        statement = reachable(
            segment_members(query), now=query.now, marketing_per_week=marketing_per_week
        )
        async with self._db.read() as conn:
            rows = await conn.execute(statement.order_by(customers.c.id))
            return [int(customer_id) for customer_id in rows.scalars()]

    async def member_ids(self, query: SegmentQuery) -> list[int]:
        async with self._db.read() as conn:
            rows = await conn.execute(segment_members(query).order_by(customers.c.id))
            return [int(customer_id) for customer_id in rows.scalars()]
