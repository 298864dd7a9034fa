"""One-time codes to spend points: issued to a member in the bot, spent once by an order."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete, func, insert, select, update

from storage.database import Database
from storage.schema import redeem_codes


class CodeCheck(StrEnum):
    ACCEPTED = "accepted"  # valid and now spent on this order
    UNKNOWN = "unknown"  # not this member's code (or no code at all)
    USED = "used"
    EXPIRED = "expired"
    LOCKED = "locked"  # too many wrong codes were tried while it was live


class SqlRedeemCodes:
    """Every method joins the caller's transaction if there is one."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def replace(
        self, *, customer_id: int, code_hash: str, now: datetime, expires_at: datetime
    ) -> None:
        """The member's new code; an earlier one not yet used stops working."""
        async with self._db.transaction() as conn:
            await conn.execute(
                delete(redeem_codes).where(
                    redeem_codes.c.customer_id == customer_id, redeem_codes.c.used_at.is_(None)
                )
            )
            await conn.execute(
                insert(redeem_codes).values(
                    customer_id=customer_id,
                    code_hash=code_hash,
                    created_at=now,
                    expires_at=expires_at,
                )
            )

    async def spend(
        self,
        *,
        customer_id: int,
        code_hash: str,
        order_ref: str,
        now: datetime,
        max_wrong: int,
    ) -> CodeCheck:
        """Mark the member's code used by this order, if it is theirs, unused, unexpired and
        not locked by ``max_wrong`` wrong tries."""
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(
                    select(
                        redeem_codes.c.id,
                        redeem_codes.c.expires_at,
                        redeem_codes.c.used_at,
                        redeem_codes.c.wrong_attempts,
                    )
                    .where(
                        redeem_codes.c.customer_id == customer_id,
                        redeem_codes.c.code_hash == code_hash,
                    )
                    .order_by(redeem_codes.c.id.desc())
                    .limit(1)
                )
            ).one_or_none()
            if row is None:
                return CodeCheck.UNKNOWN
            if row.used_at is not None:
                return CodeCheck.USED
            if row.expires_at <= now:
                return CodeCheck.EXPIRED
            if row.wrong_attempts >= max_wrong:
                return CodeCheck.LOCKED
            # The condition on used_at makes two orders racing for one code spend it once.
            taken = await conn.execute(
                update(redeem_codes)
                .where(redeem_codes.c.id == row.id, redeem_codes.c.used_at.is_(None))
                .values(used_at=now, order_ref=order_ref)
            )
            return CodeCheck.ACCEPTED if taken.rowcount == 1 else CodeCheck.USED

    async def count_wrong(self, *, customer_id: int, now: datetime) -> int:
        """One more wrong code tried for the member: counted on their live code. How many
        wrong tries that code has had now (0: the member has no live code)."""
        live = (
            redeem_codes.c.customer_id == customer_id,
            redeem_codes.c.used_at.is_(None),
            redeem_codes.c.expires_at > now,
        )
        async with self._db.transaction() as conn:
            await conn.execute(
                update(redeem_codes)
                .where(*live)
                .values(wrong_attempts=redeem_codes.c.wrong_attempts + 1)
            )
            tries = await conn.execute(select(func.max(redeem_codes.c.wrong_attempts)).where(*live))
            return int(tries.scalar_one() or 0)
