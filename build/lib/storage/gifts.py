"""Admins' holiday gifts: the gift rows, the members they go to, and the batch cursor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, literal, select, update

from storage.account import paid_spend_of
from storage.database import Database
from storage.schema import customers, gifts
from storage.sql import insert

RUNNING = "running"
DONE = "done"


@dataclass(frozen=True, slots=True)
class NewGift:
    request_key: str
    created_by: int
    locale: str
    amount: int
    reason: str
    tier: str | None
    multipliers: Mapping[str, str]  # tier name -> decimal multiplier as text ("1.5")
    reasons: Mapping[str, str] | None = None  # locale -> the reason in that language


@dataclass(frozen=True, slots=True)
class GiftRecord:
    id: int
    request_key: str
    created_by: int
    locale: str
    amount: int
    reason: str
    tier: str | None
    multipliers: Mapping[str, str]
    reasons: Mapping[str, str] | None
    state: str
    cursor: int
    granted: int
    points: int
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class GiftMember:
    """A member in a gift's batch, with what decides their share and their announcement."""

    id: int
    telegram_id: int | None
    marketing_opt_in: bool
    spend: int  # paid spend in the tier window, minor units


def tier_of(spend: ColumnElement[int], thresholds: Sequence[tuple[str, int]]) -> ColumnElement[str]:
    """The tier name a spend falls in, as SQL; thresholds ascending, the first from 0."""
    (lowest, _), *higher = thresholds
    if not higher:
        return literal(lowest)
    return case(*((spend >= threshold, name) for name, threshold in reversed(higher)), else_=lowest)


def _members() -> ColumnElement[bool]:
    return customers.c.joined_at.is_not(None)


class SqlGifts:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, gift: NewGift, *, now: datetime) -> int | None:
        """A running gift; None when this request key already started one."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                insert(conn, gifts)
                .values(
                    request_key=gift.request_key,
                    created_by=gift.created_by,
                    locale=gift.locale,
                    amount=gift.amount,
                    reason=gift.reason,
                    tier=gift.tier,
                    multipliers=dict(gift.multipliers),
                    reasons=dict(gift.reasons) if gift.reasons else None,
                    state=RUNNING,
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["request_key"])
                .returning(gifts.c.id)
            )
            gift_id = result.scalar_one_or_none()
        return int(gift_id) if gift_id is not None else None

    async def by_key(self, *, request_key: str) -> GiftRecord | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(gifts).where(gifts.c.request_key == request_key))
            ).one_or_none()
        return GiftRecord(**row._mapping) if row else None

    async def get(self, *, gift_id: int) -> GiftRecord | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(gifts).where(gifts.c.id == gift_id))).one_or_none()
        return GiftRecord(**row._mapping) if row else None

    async def running(self) -> list[GiftRecord]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(gifts).where(gifts.c.state == RUNNING).order_by(gifts.c.id)
            )
            return [GiftRecord(**row._mapping) for row in rows]

    async def members_after(
        self, *, after_customer_id: int, limit: int, since: datetime | None
    ) -> list[GiftMember]:
        """The next ``limit`` members by id, with their paid spend in the tier window."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(
                    customers.c.id,
                    customers.c.telegram_id,
                    customers.c.marketing_opt_in,
                    paid_spend_of(customers.c.id, since).label("spend"),
                )
                .where(_members(), customers.c.id > after_customer_id)
                .order_by(customers.c.id)
                .limit(limit)
            )
            return [
                GiftMember(
                    id=int(row.id),
                    telegram_id=row.telegram_id,
                    marketing_opt_in=bool(row.marketing_opt_in),
                    spend=int(row.spend),
                )
                for row in rows
            ]

    async def members_per_tier(
        self, *, thresholds: Sequence[tuple[str, int]], since: datetime | None
    ) -> dict[str, int]:
        """How many members each tier has now (tiers without members are left out)."""
        spends = (
            select(paid_spend_of(customers.c.id, since).label("spend")).where(_members()).subquery()
        )
        tier = tier_of(spends.c.spend, thresholds).label("tier")
        async with self._db.read() as conn:
            rows = await conn.execute(select(tier, func.count()).group_by(tier))
            return {str(name): int(count) for name, count in rows.all()}

    async def advance(self, *, gift_id: int, cursor: int, granted: int, points: int) -> None:
        """Move the cursor past a finished batch and add what it granted."""
        async with self._db.transaction() as conn:
            await conn.execute(
                update(gifts)
                .where(gifts.c.id == gift_id, gifts.c.cursor < cursor)
                .values(
                    cursor=cursor,
                    granted=gifts.c.granted + granted,
                    points=gifts.c.points + points,
                )
            )

    async def finish(self, *, gift_id: int, now: datetime) -> bool:
        """Mark the gift done; False if it already was."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(gifts)
                .where(gifts.c.id == gift_id, gifts.c.state == RUNNING)
                .values(state=DONE, finished_at=now)
            )
        return bool(result.rowcount)
