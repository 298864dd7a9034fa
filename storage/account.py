"""Reads and writes behind /balance, /history, /customer, expiry warnings and tier announcements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, select, update

from storage.customers import CustomerRecord
from storage.database import Database
from storage.ledger import EntryKind
from storage.refunds import paid_after_refunds
from storage.schema import customers, ledger_entries, ledger_lots, tier_standings
from storage.sql import insert


@dataclass(frozen=True, slots=True)
class ExpiringLot:
    """Unspent points of one customer that expire at one moment."""

    customer_id: int
    telegram_id: int | None
    timezone: str | None
    expires_at: datetime
    amount: int


@dataclass(frozen=True, slots=True)
class Standing:
    customer_id: int
    tier: str
    changes: int  # how many tier changes were announced so far


def paid_spend_of(customer_id: ColumnElement[int], since: datetime | None) -> ColumnElement[int]:
    """Money paid on a customer's orders (accruals not reversed, less what partial refunds
    returned), as a correlated subquery."""
    reversal = ledger_entries.alias("reversal_of_spend")
    condition = and_(
        ledger_entries.c.customer_id == customer_id,
        ledger_entries.c.kind == EntryKind.ACCRUAL,
        ~exists().where(
            reversal.c.source == ledger_entries.c.source, reversal.c.kind == EntryKind.REVERSAL
        ),
    )
    if since is not None:
        condition = and_(condition, ledger_entries.c.occurred_at >= since)
    return (
        select(
            func.coalesce(
                func.sum(paid_after_refunds(ledger_entries.c.paid_amount, ledger_entries.c.source)),
                0,
            )
        )
        .where(condition)
        .scalar_subquery()
    )


class SqlAccount:
    """Every method joins the caller's transaction if there is one."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def customer(self, *, customer_id: int) -> CustomerRecord | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(customers).where(customers.c.id == customer_id))
            ).one_or_none()
        return CustomerRecord(**row._mapping) if row else None

    async def customers(self, *, customer_ids: Sequence[int]) -> dict[int, CustomerRecord]:
        """``customer`` of many, in one statement; ids not found are left out."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(customers).where(customers.c.id.in_(sorted(set(customer_ids))))
            )
            return {row.id: CustomerRecord(**row._mapping) for row in rows}

    async def newer_page_start(self, *, customer_id: int, after_id: int, limit: int) -> int | None:
        """The ``before_id`` of the page just newer than entries below ``after_id`` + 1;
        None when that page is the newest (the first page)."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(ledger_entries.c.id)
                .where(
                    ledger_entries.c.customer_id == customer_id,
                    ledger_entries.c.id > after_id,
                    ledger_entries.c.amount != 0,  # as the history pages leave them out
                )
                .order_by(ledger_entries.c.id)
                .limit(limit + 1)
            )
            ids = [int(entry_id) for entry_id in rows.scalars()]
        if len(ids) <= limit:
            return None
        return ids[limit - 1] + 1

    async def expiring_lots(
        self, *, start: datetime, end: datetime, after_customer_id: int, limit: int
    ) -> list[ExpiringLot]:
        """Unspent points expiring in [start, end) of the next ``limit`` customers after
        ``after_customer_id``, grouped by customer and expiry moment, by customer id."""
        window = and_(
            ledger_lots.c.remaining > 0,
            ledger_lots.c.expires_at >= start,
            ledger_lots.c.expires_at < end,
        )
        page = (
            select(ledger_lots.c.customer_id)
            .where(window, ledger_lots.c.customer_id > after_customer_id)
            .distinct()
            .order_by(ledger_lots.c.customer_id)
            .limit(limit)
            .subquery()
        )
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(
                    ledger_lots.c.customer_id,
                    customers.c.telegram_id,
                    customers.c.timezone,
                    ledger_lots.c.expires_at,
                    func.sum(ledger_lots.c.remaining).label("amount"),
                )
                .join(customers, customers.c.id == ledger_lots.c.customer_id)
                .where(window, ledger_lots.c.customer_id.in_(select(page.c.customer_id)))
                .group_by(
                    ledger_lots.c.customer_id,
                    customers.c.telegram_id,
                    customers.c.timezone,
                    ledger_lots.c.expires_at,
                )
                .order_by(ledger_lots.c.customer_id, ledger_lots.c.expires_at)
            )
            return [
                ExpiringLot(
                    customer_id=int(row.customer_id),
                    telegram_id=row.telegram_id,
                    timezone=row.timezone,
                    expires_at=row.expires_at,
                    amount=int(row.amount),
                )
                for row in rows
            ]

    async def standing(self, *, customer_id: int) -> Standing | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(tier_standings.c.tier, tier_standings.c.changes).where(
                        tier_standings.c.customer_id == customer_id
                    )
                )
            ).one_or_none()
        if row is None:
            return None
        return Standing(customer_id=customer_id, tier=row.tier, changes=int(row.changes))

    async def standings(self, *, customer_ids: Sequence[int]) -> dict[int, Standing]:
        """``standing`` of many, in one statement; customers never ranked are left out."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(
                    tier_standings.c.customer_id, tier_standings.c.tier, tier_standings.c.changes
                ).where(tier_standings.c.customer_id.in_(sorted(set(customer_ids))))
            )
            return {
                row.customer_id: Standing(
                    customer_id=row.customer_id, tier=row.tier, changes=int(row.changes)
                )
                for row in rows
            }

    async def save_standing(
        self, *, customer_id: int, tier: str, changes: int, now: datetime
    ) -> bool:
        """Record the announced tier; False if another writer recorded this change first."""
        async with self._db.transaction() as conn:
            if changes == 1:
                result = await conn.execute(
                    insert(conn, tier_standings)
                    .values(customer_id=customer_id, tier=tier, changes=1, changed_at=now)
                    .on_conflict_do_nothing(index_elements=["customer_id"])
                )
            else:
                result = await conn.execute(
                    update(tier_standings)
                    .where(
                        tier_standings.c.customer_id == customer_id,
                        tier_standings.c.changes == changes - 1,
                    )
                    .values(tier=tier, changes=changes, changed_at=now)
                )
        return bool(result.rowcount)

    async def standings_above(
        self, *, lowest: str, after_customer_id: int, limit: int
    ) -> list[int]:
        """Customers standing above the lowest tier (those a rolling window may demote)."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(tier_standings.c.customer_id)
                .where(
                    tier_standings.c.tier != lowest,
                    tier_standings.c.customer_id > after_customer_id,
                )
                .order_by(tier_standings.c.customer_id)
                .limit(limit)
            )
            return [int(customer_id) for customer_id in rows.scalars()]
