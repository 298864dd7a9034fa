"""Orders the shop reports, with their lines; one row per shop order id, never two."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from storage.database import Database
from storage.schema import order_items, orders
from storage.sql import insert


@dataclass(frozen=True, slots=True)
class OrderLine:
    sku: str
    name: str
    quantity: int
    price: int  # minor units per unit
    category: str | None = None


@dataclass(frozen=True, slots=True)
class NewOrder:
    order_ref: str
    total: int  # minor units
    currency: str
    status: str
    ordered_at: datetime
    lines: Sequence[OrderLine]
    customer_id: int | None = None
    phone: str | None = None
    telegram_id: int | None = None
    bonus_redeemed: int = 0


class SqlOrders:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, order: NewOrder, *, now: datetime) -> int | None:
        """Store an order and its lines; None if this order id is already stored."""
        async with self._db.transaction() as conn:
            inserted = await conn.execute(
                insert(conn, orders)
                .values(
                    order_ref=order.order_ref,
                    customer_id=order.customer_id,
                    phone=order.phone,
                    telegram_id=order.telegram_id,
                    total=order.total,
                    bonus_redeemed=order.bonus_redeemed,
                    currency=order.currency,
                    status=order.status,
                    ordered_at=order.ordered_at,
                    received_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["order_ref"])
                .returning(orders.c.id)
            )
            order_id = inserted.scalar_one_or_none()
            if order_id is None:
                return None
            if order.lines:
                await conn.execute(
                    order_items.insert(),
                    [
                        {
                            "order_id": order_id,
                            "sku": line.sku,
                            "name": line.name,
                            "category": line.category,
                            "quantity": line.quantity,
                            "price": line.price,
                        }
                        for line in order.lines
                    ],
                )
        return int(order_id)

    async def customer_orders_since(
        self, *, customer_ids: Sequence[int], since: datetime
    ) -> list[tuple[int, datetime, int]]:
        """(customer_id, ordered_at, total) of counted orders since a moment."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(orders.c.customer_id, orders.c.ordered_at, orders.c.total).where(
                    orders.c.customer_id.in_(list(customer_ids)),
                    orders.c.ordered_at >= since,
                    orders.c.status.not_in(("cancelled", "refunded")),
                )
            )
            return [(int(c), at, int(total)) for c, at, total in rows.all()]
