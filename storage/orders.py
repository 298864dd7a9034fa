"""Orders the shop reports, with their lines; one row per shop order id, never two."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

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


# Built once: the batch path of group commit runs these for every batch of orders.
_BY_REFS = select(*_STORED_COLUMNS).where(orders.c.order_ref.in_(bindparam("refs", expanding=True)))
_MATCH_MANY = select(
    customers.c.id, customers.c.joined_at, customers.c.telegram_id, customers.c.phone
).where(
    or_(
        customers.c.telegram_id.in_(bindparam("telegram_ids", expanding=True)),
        customers.c.phone.in_(bindparam("phones", expanding=True)),
    )
)
_prepared: dict[str, Any] = {}


def _insert_orders(conn: AsyncConnection) -> Any:
    """INSERT ... ON CONFLICT (order_ref) DO NOTHING RETURNING id, order_ref, per backend."""
    key = conn.dialect.name
    if key not in _prepared:
        _prepared[key] = (
            insert(conn, orders)
            .on_conflict_do_nothing(index_elements=["order_ref"])
            .returning(orders.c.id, orders.c.order_ref)
        )
    return _prepared[key]


def _order_row(order: NewOrder, now: datetime) -> dict[str, Any]:
    return {
        "order_ref": order.order_ref,
        "customer_id": order.customer_id,
        "phone": order.phone,
        "telegram_id": order.telegram_id,
        "total": order.total,
        "bonus_redeemed": order.bonus_redeemed,
        "currency": order.currency,
        "status": order.status,
        "ordered_at": order.ordered_at,
        "received_at": now,
        "updated_at": now,
        "fingerprint": order.fingerprint,
    }


def _item_rows(order_id: int, lines: Sequence[OrderLine]) -> list[dict[str, Any]]:
    return [
        {
            "order_id": order_id,
            "sku": line.sku,
            "name": line.name,
            "category": line.category,
            "quantity": line.quantity,
            "price": line.price,
        }
        for line in lines
    ]


class SqlOrders:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_many(self, batch: Sequence[NewOrder], *, now: datetime) -> dict[str, int]:
        """Store orders and their lines in two statements; the row ids of those stored, by
        order id (an order id already stored is left out, as ``add`` returns None for it).
        The order ids of one call must differ."""
        if not batch:
            return {}
        async with self._db.transaction() as conn:
            inserted = await conn.execute(
                _insert_orders(conn), [_order_row(order, now) for order in batch]
            )
            ids = {str(ref): int(row_id) for row_id, ref in inserted.all()}
            items = [
                row
                for order in batch
                if order.order_ref in ids
                for row in _item_rows(ids[order.order_ref], order.lines)
            ]
            if items:
                await conn.execute(order_items.insert(), items)
        return ids

    async def by_refs(self, *, order_refs: Sequence[str]) -> dict[str, StoredOrder]:
        """The stored ones of these orders, by the shop's order id."""
        if not order_refs:
            return {}
        async with self._db.read() as conn:
            rows = await conn.execute(_BY_REFS, {"refs": list(order_refs)})
            return {row.order_ref: StoredOrder(**row._mapping) for row in rows}

    async def match_customers(
        self, *, keys: Sequence[tuple[int | None, str | None]]
    ) -> list[CustomerMatch | None]:
        """``match_customer`` for many (telegram_id, phone) pairs in one statement: for each,
        the customer with that Telegram id, else the one with that phone."""
        telegram_ids = [telegram_id for telegram_id, _ in keys if telegram_id is not None]
        phones = [phone for _, phone in keys if phone is not None]
        if not telegram_ids and not phones:
            return [None] * len(keys)
        async with self._db.read() as conn:
            rows = (
                await conn.execute(_MATCH_MANY, {"telegram_ids": telegram_ids, "phones": phones})
            ).all()
        by_telegram = {row.telegram_id: row for row in rows if row.telegram_id is not None}
        by_phone = {row.phone: row for row in rows if row.phone is not None}
        matches: list[CustomerMatch | None] = []
        for telegram_id, phone in keys:
            row = by_telegram.get(telegram_id) if telegram_id is not None else None
            if row is None and phone is not None:
                row = by_phone.get(phone)
            matches.append(
                CustomerMatch(id=int(row.id), joined=row.joined_at is not None) if row else None
            )
        return matches

    async def add(self, order: NewOrder, *, now: datetime) -> int | None:
        """Store an order and its lines; None if this order id is already stored."""
        async with self._db.transaction() as conn:
            inserted = await conn.execute(_insert_orders(conn), _order_row(order, now))
            row = inserted.one_or_none()
            if row is None:
                return None
            order_id = int(row.id)
            if order.lines:
                await conn.execute(order_items.insert(), _item_rows(order_id, order.lines))
        return order_id

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
