"""Partial refunds of orders: one row per refund id, with the amount it returned."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from storage.database import Database
from storage.schema import order_refunds
from storage.sql import insert


class SqlRefunds:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, *, order_ref: str, refund_key: str, amount: int, now: datetime) -> bool:
        """Keep a refund; False when this refund of this order is already kept."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                insert(conn, order_refunds)
                .values(order_ref=order_ref, refund_key=refund_key, amount=amount, created_at=now)
                .on_conflict_do_nothing(index_elements=["order_ref", "refund_key"])
            )
        return bool(result.rowcount)

    async def for_order(self, *, order_ref: str) -> dict[str, int]:
        """The order's refunds so far: refund key → amount (minor units), oldest first."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(order_refunds.c.refund_key, order_refunds.c.amount)
                .where(order_refunds.c.order_ref == order_ref)
                .order_by(order_refunds.c.created_at, order_refunds.c.refund_key)
            )
            return {str(key): int(amount) for key, amount in rows.all()}
