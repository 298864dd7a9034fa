"""Replenishment reminders as rows: planned per order line, claimed when due, never sent twice."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, bindparam, case, delete, func, select, update

from storage.database import Database
from storage.schema import (
    customers,
    order_items,
    orders,
    outbox,
    product_intervals,
    products,
    reminder_stops,
    reminders,
)
from storage.sql import insert

COUNTED = ("paid", "delivered")  # cancelled and refunded orders teach and convert nothing


class ReminderState(StrEnum):
    SCHEDULED = "scheduled"
    SENT = "sent"
    SNOOZED = "snoozed"
    CANCELLED = "cancelled"
    CONVERTED = "converted"


WAITING = (ReminderState.SCHEDULED, ReminderState.SNOOZED)


@dataclass(frozen=True, slots=True)
class LinePurchase:
    """A sku bought in a counted order: units and what they cost (minor units)."""

    order_ref: str
    sku: str
    quantity: int
    revenue: int
    ordered_at: datetime


@dataclass(frozen=True, slots=True)
class CatalogProduct:
    sku: str
    name: str
    url: str | None
    consumption_days: int | None
    lead_days: int | None
    related: tuple[str, ...]
    learned_seconds: int | None  # per unit, from the daily refresh


@dataclass(frozen=True, slots=True)
class NewReminder:
    customer_id: int
    sku: str
    order_ref: str
    ordered_at: datetime
    quantity: int
    basis: str
    runs_out_at: datetime
    remind_at: datetime


@dataclass(frozen=True, slots=True)
class ReminderRecord:
    id: int
    customer_id: int
    sku: str
    order_ref: str
    ordered_at: datetime
    quantity: int
    basis: str
    runs_out_at: datetime
    remind_at: datetime
    due_at: datetime | None
    state: str
    sent_at: datetime | None
    message_key: str | None
    name: str  # the catalog's name, else the sku
    url: str | None


@dataclass(frozen=True, slots=True)
class DueReminder:
    """A claimed reminder with what its message needs."""

    id: int
    customer_id: int
    sku: str
    name: str
    url: str | None
    due_at: datetime
    chat_id: int | None
    timezone: str | None
    locale: str | None
    language_code: str | None


@dataclass(frozen=True, slots=True)
class ReminderTotals:
    sent: int
    converted: int
    revenue: int


_RECORD_COLUMNS = (
    reminders.c.id,
    reminders.c.customer_id,
    reminders.c.sku,
    reminders.c.order_ref,
    reminders.c.ordered_at,
    reminders.c.quantity,
    reminders.c.basis,
    reminders.c.runs_out_at,
    reminders.c.remind_at,
    reminders.c.due_at,
    reminders.c.state,
    reminders.c.sent_at,
    reminders.c.message_key,
    func.coalesce(products.c.name, reminders.c.sku).label("name"),
    products.c.url,
)
_WITH_PRODUCT = reminders.outerjoin(products, products.c.sku == reminders.c.sku)
_DUE_COLUMNS = (
    reminders.c.id,
    reminders.c.customer_id,
    reminders.c.sku,
    func.coalesce(products.c.name, reminders.c.sku).label("name"),
    products.c.url,
    reminders.c.due_at,
    customers.c.telegram_id.label("chat_id"),
    customers.c.timezone,
    customers.c.locale,
    customers.c.language_code,
)


# One row per sku of an order, quantities and revenue summed: what planning reads of a purchase.
_LINE_PURCHASES = (
    select(
        orders.c.order_ref,
        order_items.c.sku,
        func.sum(order_items.c.quantity).label("quantity"),
        func.sum(order_items.c.quantity * order_items.c.price).label("revenue"),
        orders.c.ordered_at,
    )
    .join(orders, orders.c.id == order_items.c.order_id)
    .group_by(orders.c.order_ref, order_items.c.sku, orders.c.ordered_at)
)


class SqlReminders:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- what the planner reads ---------------------------------------------------------------

    async def order_lines(self, *, order_ref: str) -> list[LinePurchase]:
        """The skus of one order, quantities and revenue summed per sku."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                _LINE_PURCHASES.where(orders.c.order_ref == order_ref).order_by(order_items.c.sku)
            )
            return [LinePurchase(**row._mapping) for row in rows]

    async def order_lines_many(self, *, order_refs: Sequence[str]) -> dict[str, list[LinePurchase]]:
        """``order_lines`` of each of these orders, in one statement for all of them."""
        lines: dict[str, list[LinePurchase]] = {ref: [] for ref in order_refs}
        if not lines:
            return lines
        async with self._db.read() as conn:
            rows = await conn.execute(
                _LINE_PURCHASES.where(orders.c.order_ref.in_(sorted(lines))).order_by(
                    orders.c.order_ref, order_items.c.sku
                )
            )
            for row in rows:
                lines[row.order_ref].append(LinePurchase(**row._mapping))
        return lines

    async def purchases(self, *, customer_id: int, skus: Sequence[str]) -> list[LinePurchase]:
        """This customer's counted purchases of these skus, oldest first.

        The lines are found through the customer's orders and filtered here: a condition on
        the sku would tempt the planner into the sku index, which grows with every customer's
        orders of a popular product, while one customer's history stays short.
        """
        wanted = set(skus)
        if not wanted:
            return []
        async with self._db.read() as conn:
            rows = await conn.execute(
                _LINE_PURCHASES.where(
                    orders.c.customer_id == customer_id, orders.c.status.in_(COUNTED)
                ).order_by(orders.c.ordered_at)
            )
            return [LinePurchase(**row._mapping) for row in rows if row.sku in wanted]

    async def catalog(self, *, skus: Iterable[str]) -> dict[str, CatalogProduct]:
        wanted = sorted(set(skus))
        if not wanted:
            return {}
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(
                    products.c.sku,
                    products.c.name,
                    products.c.url,
                    products.c.consumption_days,
                    products.c.lead_days,
                    products.c.related,
                    product_intervals.c.seconds_per_unit,
                )
                .outerjoin(product_intervals, product_intervals.c.sku == products.c.sku)
                .where(products.c.sku.in_(wanted))
            )
            return {
                row.sku: CatalogProduct(
                    sku=row.sku,
                    name=row.name,
                    url=row.url,
                    consumption_days=row.consumption_days,
                    lead_days=row.lead_days,
                    related=tuple(row.related),
                    learned_seconds=row.seconds_per_unit,
                )
                for row in rows
            }

    async def customer_zone(self, *, customer_id: int) -> str | None:
        async with self._db.read() as conn:
            zone = (
                await conn.execute(
                    select(customers.c.timezone).where(customers.c.id == customer_id)
                )
            ).scalar_one_or_none()
        return str(zone) if zone else None

    async def stopped(self, *, customer_id: int, skus: Sequence[str]) -> set[str]:
        if not skus:
            return set()
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(reminder_stops.c.sku).where(
                    reminder_stops.c.customer_id == customer_id,
                    reminder_stops.c.sku.in_(list(skus)),
                )
            )
            return set(rows.scalars())

    async def of_customer(
        self, *, customer_id: int, states: Sequence[str] = WAITING
    ) -> list[ReminderRecord]:
        """A customer's reminders in these states, soonest first."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(*_RECORD_COLUMNS)
                .select_from(_WITH_PRODUCT)
                .where(reminders.c.customer_id == customer_id, reminders.c.state.in_(states))
                .order_by(reminders.c.remind_at, reminders.c.id)
            )
            return [ReminderRecord(**row._mapping) for row in rows]

    async def of_customers(
        self, *, customer_ids: Sequence[int], states: Sequence[str] = WAITING
    ) -> dict[int, list[ReminderRecord]]:
        """``of_customer`` of each of these customers, in one statement for all of them."""
        found: dict[int, list[ReminderRecord]] = {customer: [] for customer in customer_ids}
        if not found:
            return found
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(*_RECORD_COLUMNS)
                .select_from(_WITH_PRODUCT)
                .where(reminders.c.customer_id.in_(sorted(found)), reminders.c.state.in_(states))
                .order_by(reminders.c.remind_at, reminders.c.id)
            )
            for row in rows:
                found[row.customer_id].append(ReminderRecord(**row._mapping))
        return found

    async def get(self, *, id: int, lock: bool = False) -> ReminderRecord | None:
        statement = select(*_RECORD_COLUMNS).select_from(_WITH_PRODUCT).where(reminders.c.id == id)
        if lock:
            statement = statement.with_for_update(of=reminders)
        async with self._db.read() as conn:
            row = (await conn.execute(statement)).one_or_none()
        return ReminderRecord(**row._mapping) if row else None

    # -- what the planner writes --------------------------------------------------------------

    async def add(self, reminder: NewReminder, *, now: datetime) -> bool:
        """Schedule it; False when this order already scheduled this sku (a replay)."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                insert(conn, reminders)
                .values(
                    customer_id=reminder.customer_id,
                    sku=reminder.sku,
                    order_ref=reminder.order_ref,
                    ordered_at=reminder.ordered_at,
                    quantity=reminder.quantity,
                    basis=reminder.basis,
                    runs_out_at=reminder.runs_out_at,
                    remind_at=reminder.remind_at,
                    due_at=reminder.remind_at,
                    state=ReminderState.SCHEDULED,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["customer_id", "sku", "order_ref"])
            )
        return bool(result.rowcount)

    async def cancel(
        self, *, ids: Sequence[int], reason: str, now: datetime, by_order: str | None = None
    ) -> int:
        """Waiting reminders stop waiting (sent ones keep their history)."""
        if not ids:
            return 0
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(reminders)
                .where(reminders.c.id.in_(list(ids)), reminders.c.state.in_(WAITING))
                .values(
                    state=ReminderState.CANCELLED,
                    due_at=None,
                    reason=reason,
                    cancelled_by=by_order,
                    updated_at=now,
                )
            )
        return int(result.rowcount)

    async def convert(
        self, *, ids_revenue: Sequence[tuple[int, int]], order_ref: str, now: datetime
    ) -> None:
        async with self._db.transaction() as conn:
            for reminder_id, revenue in ids_revenue:
                await conn.execute(
                    update(reminders)
                    .where(reminders.c.id == reminder_id)
                    .values(
                        state=ReminderState.CONVERTED,
                        due_at=None,
                        converted_at=now,
                        converted_order_ref=order_ref,
                        revenue=revenue,
                        updated_at=now,
                    )
                )

    async def withdraw_order(self, *, customer_id: int, order_ref: str, now: datetime) -> int:
        """A cancelled or refunded order: its reminders stop waiting, what it converted is
        no longer converted, and the reminders it replaced wait again. Returns how many of
        its own were withdrawn."""
        async with self._db.transaction() as conn:
            withdrawn = await conn.execute(
                update(reminders)
                .where(
                    reminders.c.customer_id == customer_id,
                    reminders.c.order_ref == order_ref,
                    reminders.c.state.in_(WAITING),
                )
                .values(
                    state=ReminderState.CANCELLED,
                    due_at=None,
                    reason="order_cancelled",
                    updated_at=now,
                )
            )
            await conn.execute(
                update(reminders)
                .where(
                    reminders.c.customer_id == customer_id,
                    reminders.c.converted_order_ref == order_ref,
                )
                .values(
                    state=ReminderState.SENT,
                    converted_at=None,
                    converted_order_ref=None,
                    revenue=None,
                    updated_at=now,
                )
            )
            await conn.execute(
                update(reminders)
                .where(
                    reminders.c.customer_id == customer_id,
                    reminders.c.cancelled_by == order_ref,
                    reminders.c.state == ReminderState.CANCELLED,
                )
                .values(
                    state=ReminderState.SCHEDULED,
                    due_at=reminders.c.remind_at,
                    reason=None,
                    cancelled_by=None,
                    updated_at=now,
                )
            )
        return int(withdrawn.rowcount)

    # -- the customer's buttons --------------------------------------------------------------

    async def snooze(self, *, id: int, until: datetime, now: datetime) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                update(reminders)
                .where(reminders.c.id == id)
                .values(state=ReminderState.SNOOZED, due_at=until, updated_at=now)
            )

    async def stop(self, *, customer_id: int, sku: str, now: datetime) -> int:
        """No more reminders of this sku for this customer; returns the waiting ones cancelled."""
        async with self._db.transaction() as conn:
            await conn.execute(
                insert(conn, reminder_stops)
                .values(customer_id=customer_id, sku=sku, stopped_at=now)
                .on_conflict_do_nothing(index_elements=["customer_id", "sku"])
            )
            result = await conn.execute(
                update(reminders)
                .where(
                    reminders.c.customer_id == customer_id,
                    reminders.c.sku == sku,
                    reminders.c.state.in_(WAITING),
                )
                .values(
                    state=ReminderState.CANCELLED, due_at=None, reason="stopped", updated_at=now
                )
            )
        return int(result.rowcount)

    async def resume(self, *, customer_id: int, sku: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                delete(reminder_stops).where(
                    reminder_stops.c.customer_id == customer_id, reminder_stops.c.sku == sku
                )
            )

    # -- the sweep ----------------------------------------------------------------------------

    async def claim_due(self, *, now: datetime, limit: int) -> list[DueReminder]:
        """Lock up to ``limit`` due reminders for the caller's transaction, soonest first.

        Call it inside a transaction that also records what became of them. PostgreSQL skips
        rows another sweeper holds (SKIP LOCKED); SQLite's BEGIN IMMEDIATE lets one sweeper in
        at a time. The partial index on due_at makes this read the due rows only.
        """
        due = (
            select(reminders.c.id)
            .where(reminders.c.due_at <= now)
            .order_by(reminders.c.due_at, reminders.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return await self._due(due)

    async def companions(
        self, *, customer_ids: Sequence[int], until: datetime, exclude: Sequence[int]
    ) -> list[DueReminder]:
        """Other waiting reminders of these customers due by ``until`` (they join the message)."""
        if not customer_ids:
            return []
        more = (
            select(reminders.c.id)
            .where(
                reminders.c.customer_id.in_(list(customer_ids)),
                reminders.c.due_at <= until,
                reminders.c.id.not_in(list(exclude)),
            )
            .with_for_update(skip_locked=True)
        )
        return await self._due(more)

    async def _due(self, ids: Select[Any]) -> list[DueReminder]:
        async with self._db.transaction() as conn:
            locked = list((await conn.execute(ids)).scalars())
            if not locked:
                return []
            rows = await conn.execute(
                select(*_DUE_COLUMNS)
                .select_from(
                    reminders.join(customers, customers.c.id == reminders.c.customer_id).outerjoin(
                        products, products.c.sku == reminders.c.sku
                    )
                )
                .where(reminders.c.id.in_(locked))
                .order_by(reminders.c.due_at, reminders.c.id)
            )
            return [DueReminder(**row._mapping) for row in rows]

    async def mark_sent(self, *, sent: Sequence[tuple[int, str]], now: datetime) -> None:
        """(reminder id, the outbox key of its message) pairs, in one executemany."""
        if not sent:
            return
        async with self._db.transaction() as conn:
            await conn.execute(
                update(reminders)
                .where(reminders.c.id == bindparam("reminder_id"))
                .values(
                    state=ReminderState.SENT,
                    due_at=None,
                    sent_at=now,
                    message_key=bindparam("key"),
                    updated_at=now,
                ),
                [{"reminder_id": id, "key": key} for id, key in sent],
            )

    async def postpone(self, *, ids: Sequence[int], until: datetime, now: datetime) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                update(reminders)
                .where(reminders.c.id.in_(list(ids)))
                .values(due_at=until, updated_at=now)
            )

    # -- conversions and figures ---------------------------------------------------------------

    async def sent_for(
        self, *, customer_id: int, skus: Sequence[str], since: datetime
    ) -> list[ReminderRecord]:
        """Reminders of these skus sent to the customer since a moment, not yet converted,
        whose message did go out (a message the policy skipped converts nothing)."""
        found = await self.sent_to(customer_ids=[customer_id], skus=skus, since=since)
        return found[customer_id]

    async def sent_to(
        self, *, customer_ids: Sequence[int], skus: Sequence[str], since: datetime
    ) -> dict[int, list[ReminderRecord]]:
        """``sent_for`` of each of these customers, in one statement for all of them."""
        found: dict[int, list[ReminderRecord]] = {customer: [] for customer in customer_ids}
        if not skus or not found:
            return found
        went = select(outbox.c.dedupe_key).where(
            outbox.c.dedupe_key == reminders.c.message_key,
            outbox.c.state.in_(("sent", "sending", "unknown")),
        )
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(*_RECORD_COLUMNS)
                .select_from(_WITH_PRODUCT)
                .where(
                    reminders.c.customer_id.in_(sorted(found)),
                    reminders.c.sku.in_(sorted(set(skus))),
                    reminders.c.sent_at >= since,
                    reminders.c.state.in_((ReminderState.SENT, ReminderState.SNOOZED)),
                    went.exists(),
                )
            )
            for row in rows:
                found[row.customer_id].append(ReminderRecord(**row._mapping))
        return found

    async def totals(self) -> ReminderTotals:
        """Reminders whose message went out, how many converted, the revenue they brought."""
        went = select(outbox.c.dedupe_key).where(
            outbox.c.dedupe_key == reminders.c.message_key,
            outbox.c.state.in_(("sent", "sending", "unknown")),
        )
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        func.count(),
                        func.coalesce(
                            func.sum(
                                case((reminders.c.state == ReminderState.CONVERTED, 1), else_=0)
                            ),
                            0,
                        ),
                        func.coalesce(func.sum(reminders.c.revenue), 0),
                    ).where(reminders.c.sent_at.is_not(None), went.exists())
                )
            ).one()
        return ReminderTotals(sent=int(row[0]), converted=int(row[1]), revenue=int(row[2]))

    # -- learned intervals ---------------------------------------------------------------------

    async def uncatalogued_histories(self) -> list[tuple[str, int, datetime, int]]:
        """(sku, customer_id, ordered_at, quantity) of members' counted purchases of catalog
        products without consumption_days: what the daily refresh learns from."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(
                    order_items.c.sku,
                    orders.c.customer_id,
                    orders.c.ordered_at,
                    func.sum(order_items.c.quantity),
                )
                .join(orders, orders.c.id == order_items.c.order_id)
                .join(products, products.c.sku == order_items.c.sku)
                .where(
                    products.c.consumption_days.is_(None),
                    orders.c.customer_id.is_not(None),
                    orders.c.status.in_(COUNTED),
                )
                .group_by(order_items.c.sku, orders.c.customer_id, orders.c.ordered_at)
            )
            return [(sku, int(cid), at, int(qty)) for sku, cid, at, qty in rows]

    async def replace_intervals(
        self, *, learned: dict[str, tuple[int, int]], now: datetime
    ) -> None:
        """The whole table anew: sku -> (seconds per unit, customers)."""
        async with self._db.transaction() as conn:
            await conn.execute(delete(product_intervals))
            if learned:
                await conn.execute(
                    product_intervals.insert(),
                    [
                        {
                            "sku": sku,
                            "seconds_per_unit": seconds,
                            "customers": count,
                            "refreshed_at": now,
                        }
                        for sku, (seconds, count) in sorted(learned.items())
                    ],
                )
