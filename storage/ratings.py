"""Rating requests, customers' scores and the staff alerts for negative ones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, func, literal, select, update

from storage.database import Database
from storage.schema import customers, order_items, orders, outbox, rating_alerts, ratings
from storage.sql import epoch_seconds, insert


class AlertState:
    OPEN = "open"
    TAKEN = "taken"
    RESOLVED = "resolved"


UNRESOLVED = (AlertState.OPEN, AlertState.TAKEN)


@dataclass(frozen=True, slots=True)
class RatingRecord:
    id: int
    order_ref: str
    customer_id: int
    requested_at: datetime
    expires_at: datetime
    withdrawn_at: datetime | None
    score: int | None
    first_rated_at: datetime | None
    rated_at: datetime | None
    comment: str | None
    closed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CustomerRating:
    """A customer's answer as /customer shows it, with the state of its alert if it had one."""

    order_ref: str
    score: int
    comment: str | None
    rated_at: datetime
    alert_state: str | None


@dataclass(frozen=True, slots=True)
class ExpiredRequest:
    """An unanswered request past its time, with where its message is (if it went out)."""

    rating_id: int
    order_ref: str
    dedupe_key: str
    chat_id: int | None
    message_id: int | None
    locale: str | None
    language_code: str | None


@dataclass(frozen=True, slots=True)
class ItemLine:
    name: str
    quantity: int


@dataclass(frozen=True, slots=True)
class OrderSummary:
    order_ref: str
    total: int  # minor units
    currency: str
    status: str
    items: tuple[ItemLine, ...]


@dataclass(frozen=True, slots=True)
class MemberContact:
    customer_id: int
    telegram_id: int | None
    first_name: str | None
    username: str | None
    phone: str | None


@dataclass(frozen=True, slots=True)
class AlertRecord:
    id: int
    rating_id: int
    customer_id: int
    state: str
    snapshot: dict[str, Any]
    created_at: datetime
    taken_by: int | None
    taken_by_name: str | None
    taken_at: datetime | None
    resolved_by: int | None
    resolved_by_name: str | None
    resolved_at: datetime | None
    compensation_points: int | None
    compensated_by_name: str | None
    compensated_at: datetime | None
    replied_by_name: str | None
    replied_at: datetime | None


@dataclass(frozen=True, slots=True)
class PeriodStats:
    count: int
    average: float | None  # mean score, None without ratings
    satisfied: int  # scores of 4 and 5


@dataclass(frozen=True, slots=True)
class RatingStats:
    week: PeriodStats
    month: PeriodStats
    alerts_open: int
    alerts_resolved: int
    median_resolve_seconds: float | None


class SqlRatings:
    """Every method joins the caller's transaction (an order desk's, an update's)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- requests and scores -----------------------------------------------------------------

    async def open_request(
        self,
        *,
        order_ref: str,
        customer_id: int,
        requested_at: datetime,
        expires_at: datetime,
    ) -> tuple[int, bool]:
        """The order's rating row, created once (the unique order_ref decides); (id, created)."""
        async with self._db.transaction() as conn:
            created = await conn.execute(
                insert(conn, ratings)
                .values(
                    order_ref=order_ref,
                    customer_id=customer_id,
                    requested_at=requested_at,
                    expires_at=expires_at,
                )
                .on_conflict_do_nothing(index_elements=["order_ref"])
                .returning(ratings.c.id)
            )
            new_id = created.scalar_one_or_none()
            if new_id is not None:
                return int(new_id), True
            existing = await conn.execute(
                select(ratings.c.id).where(ratings.c.order_ref == order_ref)
            )
            return int(existing.scalar_one()), False

    async def withdraw(self, *, order_ref: str, now: datetime) -> bool:
        """The order was cancelled: an unanswered request is void. False if answered or none."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(ratings)
                .where(
                    ratings.c.order_ref == order_ref,
                    ratings.c.score.is_(None),
                    ratings.c.withdrawn_at.is_(None),
                )
                .values(withdrawn_at=now)
            )
        return bool(result.rowcount)

    async def by_id(self, *, rating_id: int, lock: bool = False) -> RatingRecord | None:
        """The rating; ``lock``: read for a change in the same transaction (FOR UPDATE)."""
        if lock:
            async with self._db.transaction() as conn:
                row = (await conn.execute(_LOCKED_BY_ID, {"rating_id": rating_id})).one_or_none()
        else:
            async with self._db.read() as conn:
                row = (await conn.execute(_BY_ID, {"rating_id": rating_id})).one_or_none()
        return RatingRecord(**row._mapping) if row else None

    async def by_order(self, *, order_ref: str) -> RatingRecord | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(ratings).where(ratings.c.order_ref == order_ref))
            ).one_or_none()
        return RatingRecord(**row._mapping) if row else None

    async def save_score(
        self,
        *,
        rating_id: int,
        score: int,
        now: datetime,
        unchanged_since: RatingRecord | None = None,
    ) -> RatingRecord | None:
        """The rating as saved (None: there is no such rating). With ``unchanged_since`` (the
        rating as the caller read it), only if it is still open and scored as then: None when
        it was withdrawn or rated since, and nothing is written."""
        values: dict[str, Any] = {"rating_id": rating_id, "new_score": score, "at": now}
        statement = _SAVE_SCORE
        if unchanged_since is not None:
            statement = _SAVE_SCORE_IF_UNCHANGED
            values |= {"was_score": unchanged_since.score, "was_rated_at": unchanged_since.rated_at}
        async with self._db.transaction() as conn:
            row = (await conn.execute(statement, values)).one_or_none()
        return RatingRecord(**row._mapping) if row else None

    async def save_comment(self, *, rating_id: int, comment: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                update(ratings).where(ratings.c.id == rating_id).values(comment=comment)
            )

    async def expired_open(self, *, now: datetime, limit: int) -> list[ExpiredRequest]:
        """Unanswered, not withdrawn requests past ``expires_at`` whose message still offers
        stars, oldest first."""
        key = literal("rating-request:") + ratings.c.order_ref
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(
                    ratings.c.id,
                    ratings.c.order_ref,
                    outbox.c.chat_id,
                    outbox.c.telegram_message_id,
                    customers.c.locale,
                    customers.c.language_code,
                )
                .select_from(
                    ratings.outerjoin(outbox, outbox.c.dedupe_key == key).outerjoin(
                        customers, customers.c.id == ratings.c.customer_id
                    )
                )
                .where(
                    ratings.c.score.is_(None),
                    ratings.c.withdrawn_at.is_(None),
                    ratings.c.closed_at.is_(None),
                    ratings.c.expires_at <= now,
                )
                .order_by(ratings.c.expires_at, ratings.c.id)
                .limit(limit)
            )
            return [
                ExpiredRequest(
                    rating_id=row.id,
                    order_ref=row.order_ref,
                    dedupe_key=f"rating-request:{row.order_ref}",
                    chat_id=row.chat_id,
                    message_id=row.telegram_message_id,
                    locale=row.locale,
                    language_code=row.language_code,
                )
                for row in rows
            ]

    async def close(self, *, rating_ids: list[int], now: datetime) -> None:
        if not rating_ids:
            return
        async with self._db.transaction() as conn:
            await conn.execute(
                update(ratings)
                .where(ratings.c.id.in_(rating_ids), ratings.c.closed_at.is_(None))
                .values(closed_at=now)
            )

    # -- what the messages show --------------------------------------------------------------

    async def order_summary(self, *, order_ref: str) -> OrderSummary | None:
        """The order and its lines, in one statement (each row: the order and one line)."""
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(*_SUMMARY_COLUMNS)
                    .select_from(orders.outerjoin(order_items))
                    .where(orders.c.order_ref == order_ref)
                    .order_by(order_items.c.id)
                )
            ).all()
        return _summary(rows)

    async def press_view(self, *, rating_id: int) -> tuple[OrderSummary | None, AlertRecord | None]:
        """What the answer to a star press shows and needs: the rated order's summary and the
        rating's alert, if a negative score ever raised one; one statement."""
        async with self._db.read() as conn:
            rows = (await conn.execute(_PRESS_VIEW, {"rating_id": rating_id})).all()
        if not rows:
            return None, None
        first = rows[0]._mapping
        alert = None
        if first["alert_id"] is not None:
            alert = AlertRecord(**{name: first[label] for name, label in _ALERT_COLUMNS.items()})
        return _summary([row for row in rows if row.order_ref is not None]), alert

    async def member(self, *, customer_id: int) -> MemberContact | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        customers.c.id,
                        customers.c.telegram_id,
                        customers.c.first_name,
                        customers.c.username,
                        customers.c.phone,
                    ).where(customers.c.id == customer_id)
                )
            ).one_or_none()
        if row is None:
            return None
        return MemberContact(
            customer_id=row.id,
            telegram_id=row.telegram_id,
            first_name=row.first_name,
            username=row.username,
            phone=row.phone,
        )

    # -- alerts ------------------------------------------------------------------------------

    async def raise_alert(
        self, *, rating_id: int, customer_id: int, snapshot: dict[str, Any], now: datetime
    ) -> tuple[AlertRecord, bool]:
        """One alert per rating (the unique rating_id decides); (alert, created)."""
        async with self._db.transaction() as conn:
            created = await conn.execute(
                insert(conn, rating_alerts)
                .values(
                    rating_id=rating_id,
                    customer_id=customer_id,
                    state=AlertState.OPEN,
                    snapshot=snapshot,
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["rating_id"])
                .returning(rating_alerts.c.id)
            )
            is_new = created.scalar_one_or_none() is not None
            row = (
                await conn.execute(
                    select(rating_alerts).where(rating_alerts.c.rating_id == rating_id)
                )
            ).one()
        return AlertRecord(**row._mapping), is_new

    async def alert(self, *, alert_id: int, lock: bool = False) -> AlertRecord | None:
        async with self._db.transaction() as conn:
            query = select(rating_alerts).where(rating_alerts.c.id == alert_id)
            if lock:
                query = query.with_for_update()
            row = (await conn.execute(query)).one_or_none()
        return AlertRecord(**row._mapping) if row else None

    async def alert_for_rating(self, *, rating_id: int) -> AlertRecord | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(rating_alerts).where(rating_alerts.c.rating_id == rating_id)
                )
            ).one_or_none()
        return AlertRecord(**row._mapping) if row else None

    async def take(self, *, alert_id: int, by: int, name: str, now: datetime) -> bool:
        """Someone takes an unresolved alert (a later taker replaces an earlier one)."""
        return await self._change(
            alert_id,
            rating_alerts.c.state.in_(UNRESOLVED),
            state=AlertState.TAKEN,
            taken_by=by,
            taken_by_name=name,
            taken_at=now,
        )

    async def resolve(self, *, alert_id: int, by: int, name: str, now: datetime) -> bool:
        return await self._change(
            alert_id,
            rating_alerts.c.state.in_(UNRESOLVED),
            state=AlertState.RESOLVED,
            resolved_by=by,
            resolved_by_name=name,
            resolved_at=now,
        )

    async def resolve_by_customer(self, *, alert_id: int, now: datetime) -> bool:
        """The customer raised their score: the complaint is closed with nobody's name on it
        (``resolved_by`` stays empty: that is how "resolved by the customer" reads)."""
        return await self._change(
            alert_id,
            rating_alerts.c.state.in_(UNRESOLVED),
            state=AlertState.RESOLVED,
            resolved_by=None,
            resolved_by_name=None,
            resolved_at=now,
        )

    async def reopen(self, *, alert_id: int) -> bool:
        """An alert the customer closed by raising the score opens again when they lower it
        (one staff resolved stays resolved); it goes back to whoever had taken it."""
        return await self._change(
            alert_id,
            and_(
                rating_alerts.c.state == AlertState.RESOLVED,
                rating_alerts.c.resolved_by.is_(None),
            ),
            state=case(
                (rating_alerts.c.taken_by.is_not(None), AlertState.TAKEN), else_=AlertState.OPEN
            ),
            resolved_at=None,
        )

    async def record_compensation(
        self, *, alert_id: int, points: int, name: str, now: datetime
    ) -> bool:
        """Only the first compensation of an alert is recorded."""
        return await self._change(
            alert_id,
            rating_alerts.c.compensation_points.is_(None),
            compensation_points=points,
            compensated_by_name=name,
            compensated_at=now,
        )

    async def record_reply(self, *, alert_id: int, name: str, now: datetime) -> bool:
        return await self._change(alert_id, None, replied_by_name=name, replied_at=now)

    async def _change(self, alert_id: int, condition: Any, **values: Any) -> bool:
        where = rating_alerts.c.id == alert_id
        if condition is not None:
            where = and_(where, condition)
        async with self._db.transaction() as conn:
            result = await conn.execute(update(rating_alerts).where(where).values(**values))
        return bool(result.rowcount)

    async def answered_by(self, *, customer_id: int, limit: int) -> list[CustomerRating]:
        """The customer's latest scores, newest first."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(
                    ratings.c.order_ref,
                    ratings.c.score,
                    ratings.c.comment,
                    ratings.c.rated_at,
                    rating_alerts.c.state,
                )
                .select_from(
                    ratings.outerjoin(rating_alerts, rating_alerts.c.rating_id == ratings.c.id)
                )
                .where(ratings.c.customer_id == customer_id, ratings.c.score.is_not(None))
                .order_by(ratings.c.rated_at.desc(), ratings.c.id.desc())
                .limit(limit)
            )
            return [
                CustomerRating(
                    order_ref=row.order_ref,
                    score=int(row.score),
                    comment=row.comment,
                    rated_at=row.rated_at,
                    alert_state=row.state,
                )
                for row in rows.all()
            ]

    async def has_open_alert(self, *, customer_id: int) -> bool:
        async with self._db.read() as conn:
            found = await conn.execute(
                select(rating_alerts.c.id)
                .where(
                    rating_alerts.c.customer_id == customer_id,
                    rating_alerts.c.state.in_(UNRESOLVED),
                )
                .limit(1)
            )
        return found.first() is not None

    # -- statistics --------------------------------------------------------------------------

    async def stats(self, *, now: datetime) -> RatingStats:
        """Counts, mean and CSAT for the last 7 and 30 days; alerts and their median time to
        resolve. Everything is computed by the database."""
        async with self._db.read() as conn:
            week = await self._period(conn, since=now - timedelta(days=7))
            month = await self._period(conn, since=now - timedelta(days=30))
            open_count, resolved_count = (
                await conn.execute(
                    select(
                        func.count().filter(rating_alerts.c.state.in_(UNRESOLVED)),
                        func.count().filter(rating_alerts.c.state == AlertState.RESOLVED),
                    ).select_from(rating_alerts)
                )
            ).one()
            median = None
            if resolved_count:
                duration = (
                    epoch_seconds(rating_alerts.c.resolved_at)
                    - epoch_seconds(rating_alerts.c.created_at)
                ).label("duration")
                # The middle one or two of the sorted durations (portable: no percentile_cont
                # in SQLite); their mean is the median.
                middle = (
                    select(duration)
                    .where(rating_alerts.c.state == AlertState.RESOLVED)
                    .order_by(duration)
                    .limit(2 - resolved_count % 2)
                    .offset((resolved_count - 1) // 2)
                    .subquery()
                )
                median = (await conn.execute(select(func.avg(middle.c.duration)))).scalar_one()
        return RatingStats(
            week=week,
            month=month,
            alerts_open=int(open_count),
            alerts_resolved=int(resolved_count),
            median_resolve_seconds=float(median) if median is not None else None,
        )

    @staticmethod
    async def _period(conn: Any, *, since: datetime) -> PeriodStats:
        count, average, satisfied = (
            await conn.execute(
                select(
                    func.count(ratings.c.score),
                    func.avg(ratings.c.score),
                    func.coalesce(func.sum(case((ratings.c.score >= 4, 1), else_=0)), 0),
                ).where(ratings.c.score.is_not(None), ratings.c.rated_at >= since)
            )
        ).one()
        return PeriodStats(
            count=int(count),
            average=float(average) if average is not None else None,
            satisfied=int(satisfied),
        )


_SUMMARY_COLUMNS = (
    orders.c.order_ref,
    orders.c.total,
    orders.c.currency,
    orders.c.status,
    order_items.c.name,
    order_items.c.quantity,
)
# The alert's columns under names of their own: orders and alerts both have an ``id``.
_ALERT_COLUMNS = {column.name: column.label(f"alert_{column.name}") for column in rating_alerts.c}

# A star press's statements, built once: building one costs more CPU than SQLite takes to
# run it (a hundred microseconds and more), and a burst of presses runs them thousands of times.
_BY_ID = select(ratings).where(ratings.c.id == bindparam("rating_id"))
_LOCKED_BY_ID = _BY_ID.with_for_update()
_PRESS_VIEW = (
    select(*_SUMMARY_COLUMNS, *_ALERT_COLUMNS.values())
    .select_from(
        ratings.outerjoin(orders, orders.c.order_ref == ratings.c.order_ref)
        .outerjoin(order_items, order_items.c.order_id == orders.c.id)
        .outerjoin(rating_alerts, rating_alerts.c.rating_id == ratings.c.id)
    )
    .where(ratings.c.id == bindparam("rating_id"))
    .order_by(order_items.c.id)
)
_SAVED_AT = bindparam("at", type_=ratings.c.rated_at.type)
_SAVE_SCORE = (
    update(ratings)
    .where(ratings.c.id == bindparam("rating_id"))
    .values(
        score=bindparam("new_score"),
        rated_at=_SAVED_AT,
        first_rated_at=func.coalesce(ratings.c.first_rated_at, _SAVED_AT),
    )
    .returning(*ratings.c)
)
# Only while the rating is open and scored as the caller read it.
_SAVE_SCORE_IF_UNCHANGED = _SAVE_SCORE.where(
    ratings.c.withdrawn_at.is_(None),
    ratings.c.score.is_not_distinct_from(bindparam("was_score")),
    ratings.c.rated_at.is_not_distinct_from(bindparam("was_rated_at")),
)


def _summary(rows: Any) -> OrderSummary | None:
    """An order summary from rows of _SUMMARY_COLUMNS: the order on each, one line per row
    (an order without lines has one row, without a line)."""
    if not rows:
        return None
    order = rows[0]
    return OrderSummary(
        order_ref=order.order_ref,
        total=order.total,
        currency=order.currency,
        status=order.status,
        items=tuple(
            ItemLine(name=row.name, quantity=row.quantity) for row in rows if row.name is not None
        ),
    )
