"""Orders the shop reports, with their lines; one row per shop order id, never two."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update

from storage.database import Database
from storage.schema import customers, order_items, orders
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
    fingerprint: str | None = None  # of the shop API body; None for orders from elsewhere


# What an erased customer's orders hold instead of their body's fingerprint: a sha256 of a body
# that named their phone would let anyone holding the database find the phone by trying every
# number. A replay of such an order can no longer be compared, so it is taken as a replay.
ERASED_FINGERPRINT = "erased"


@dataclass(frozen=True, slots=True)
class StoredOrder:
    id: int
    order_ref: str
    customer_id: int | None
    phone: str | None
    telegram_id: int | None
    total: int
    bonus_redeemed: int
    status: str
    fingerprint: str | None
    ordered_at: datetime


@dataclass(frozen=True, slots=True)
class CustomerMatch:
    """The customer an order's phone or Telegram id points at; a member once ``joined``."""

    id: int
    joined: bool


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """One of a customer's orders as an admin's profile view shows it."""

    order_ref: str
    total: int  # minor units
    currency: str
    bonus_redeemed: int
    status: str
    ordered_at: datetime


_STORED_COLUMNS = (
    orders.c.id,
    orders.c.order_ref,
    orders.c.customer_id,
    orders.c.phone,
    orders.c.telegram_id,
    orders.c.total,
    orders.c.bonus_redeemed,
    orders.c.status,
    orders.c.fingerprint,
    orders.c.ordered_at,
)


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
                    fingerprint=order.fingerprint,
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

    async def by_ref(self, *, order_ref: str, lock: bool = False) -> StoredOrder | None:
        """The order under the shop's id; ``lock`` holds its row until the transaction ends."""
        statement = select(*_STORED_COLUMNS).where(orders.c.order_ref == order_ref)
        if lock:  # SQLite renders no FOR UPDATE; its write transaction already serialises
            statement = statement.with_for_update()
        async with self._db.read() as conn:
            row = (await conn.execute(statement)).one_or_none()
        return StoredOrder(**row._mapping) if row else None

    async def set_status(self, *, order_ref: str, status: str, now: datetime) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                update(orders)
                .where(orders.c.order_ref == order_ref)
                .values(status=status, updated_at=now)
            )

    async def match_customer(
        self,
        *,
        telegram_id: int | None,
        phone: str | None,
        customer_id: int | None = None,
        username: str | None = None,
        card: str | None = None,
    ) -> CustomerMatch | None:
        """The customer with this id, card number, Telegram id, phone (E.164) or username, in
        that order."""
        async with self._db.read() as conn:
            for condition, value in (
                (customers.c.id == customer_id, customer_id),
                (customers.c.card_number == card, card),
                (customers.c.telegram_id == telegram_id, telegram_id),
                (customers.c.phone == phone, phone),
                (func.lower(customers.c.username) == (username or "").lower(), username),
            ):
                if value is None:
                    continue
                row = (
                    await conn.execute(
                        select(customers.c.id, customers.c.joined_at).where(condition).limit(1)
                    )
                ).one_or_none()
                if row is not None:
                    return CustomerMatch(id=int(row.id), joined=row.joined_at is not None)
        return None

    async def latest_for(self, *, customer_id: int, limit: int = 5) -> list[OrderSummary]:
        """The customer's latest orders, newest first."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(
                    orders.c.order_ref,
                    orders.c.total,
                    orders.c.currency,
                    orders.c.bonus_redeemed,
                    orders.c.status,
                    orders.c.ordered_at,
                )
                .where(orders.c.customer_id == customer_id)
                .order_by(orders.c.ordered_at.desc(), orders.c.id.desc())
                .limit(limit)
            )
            return [OrderSummary(**row._mapping) for row in rows]

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
