"""Referrals: who brought whom, the friend's qualifying order, rewards and refusals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update

from storage.database import Database
from storage.schema import referral_refusals, referrals
from storage.sql import insert


@dataclass(frozen=True, slots=True)
class ReferralRecord:
    referee_id: int
    referrer_id: int
    state: str  # joined, qualified, rewarded, refused
    order_ref: str | None
    reason: str | None
    created_at: datetime
    mature_at: datetime | None
    settled_at: datetime | None


@dataclass(frozen=True, slots=True)
class RefusalRecord:
    at: datetime
    referrer_id: int | None
    referee_id: int | None
    order_ref: str | None
    reason: str


class SqlReferrals:
    """Every method joins the caller's transaction if there is one."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, *, referee_id: int, referrer_id: int, now: datetime) -> bool:
        """A new member came through a link; False if they already have a referrer."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                insert(conn, referrals)
                .values(
                    referee_id=referee_id, referrer_id=referrer_id, state="joined", created_at=now
                )
                .on_conflict_do_nothing(index_elements=["referee_id"])
            )
        return bool(result.rowcount)

    async def of_referee(self, *, referee_id: int) -> ReferralRecord | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(referrals).where(referrals.c.referee_id == referee_id))
            ).one_or_none()
        return ReferralRecord(**row._mapping) if row else None

    async def of_referees(self, *, referee_ids: Sequence[int]) -> dict[int, ReferralRecord]:
        """``of_referee`` of many customers, in one statement; those with none are left out."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(referrals).where(referrals.c.referee_id.in_(sorted(set(referee_ids))))
            )
            return {row.referee_id: ReferralRecord(**row._mapping) for row in rows}

    async def qualify(self, *, referee_id: int, order_ref: str, mature_at: datetime) -> bool:
        """Note the friend's first paid order; only a referral still waiting for one moves."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(referrals)
                .where(referrals.c.referee_id == referee_id, referrals.c.state == "joined")
                .values(state="qualified", order_ref=order_ref, mature_at=mature_at)
            )
        return bool(result.rowcount)

    async def settle(
        self, *, referee_id: int, state: str, reason: str | None, now: datetime
    ) -> bool:
        """rewarded or refused, once: a referral already settled stays as it is."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(referrals)
                .where(
                    referrals.c.referee_id == referee_id,
                    referrals.c.state.in_(("joined", "qualified")),
                )
                .values(state=state, reason=reason, settled_at=now)
            )
        return bool(result.rowcount)

    async def due(self, *, now: datetime, limit: int) -> list[ReferralRecord]:
        """Qualified referrals whose order has left the hold window, oldest first."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(referrals)
                .where(referrals.c.state == "qualified", referrals.c.mature_at <= now)
                .order_by(referrals.c.mature_at, referrals.c.referee_id)
                .limit(limit)
            )
            return [ReferralRecord(**row._mapping) for row in rows.all()]

    async def rewarded_between(self, *, referrer_id: int, start: datetime, end: datetime) -> int:
        async with self._db.read() as conn:
            count = (
                await conn.execute(
                    select(func.count())
                    .select_from(referrals)
                    .where(
                        referrals.c.referrer_id == referrer_id,
                        referrals.c.state == "rewarded",
                        referrals.c.settled_at >= start,
                        referrals.c.settled_at < end,
                    )
                )
            ).scalar_one()
        return int(count)

    async def log_refusal(
        self,
        *,
        reason: str,
        now: datetime,
        referrer_id: int | None = None,
        referee_id: int | None = None,
        order_ref: str | None = None,
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                referral_refusals.insert().values(
                    at=now,
                    referrer_id=referrer_id,
                    referee_id=referee_id,
                    order_ref=order_ref,
                    reason=reason,
                )
            )

    async def refusals(self, *, limit: int = 100) -> list[RefusalRecord]:
        """The latest refusals, newest first."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(
                    referral_refusals.c.at,
                    referral_refusals.c.referrer_id,
                    referral_refusals.c.referee_id,
                    referral_refusals.c.order_ref,
                    referral_refusals.c.reason,
                )
                .order_by(referral_refusals.c.id.desc())
                .limit(limit)
            )
            return [RefusalRecord(**row._mapping) for row in rows.all()]
