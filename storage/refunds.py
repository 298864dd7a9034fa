"""Partial refunds of orders: one row per refund id, with the amount it returned."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, case, func, select

from storage.database import Database
from storage.schema import order_refunds, orders
from storage.sql import insert, share_of


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


def paid_after_refunds(
    paid_amount: ColumnElement[int], source: ColumnElement[str]
) -> ColumnElement[int]:
    """An accrual's paid amount less the share its order's partial refunds returned, as a SQL
    expression over the accrual's columns (its source is ``order:<order_ref>``).

    The share is in proportion to the order's total, as the ledger takes points back
    (``PointsLedger.refund_part``): a refund of a third of the order takes a third of what was
    paid for it in money off the tier's spend. A fully refunded order's accrual is reversed and
    counts nothing anyway."""
    order_ref = func.substr(source, len("order:") + 1)
    refunded = (
        select(func.sum(order_refunds.c.amount))
        .where(order_refunds.c.order_ref == order_ref)
        .scalar_subquery()
    )
    total = select(orders.c.total).where(orders.c.order_ref == order_ref).scalar_subquery()
    return paid_amount - case(
        (refunded.is_(None), 0),
        else_=func.coalesce(share_of(paid_amount, refunded, total), 0),
    )
