"""Every customer, order line and ledger entry, read in keyset pages for CSV exports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import Select, select

from storage.database import Database
from storage.schema import customers, ledger_accounts, ledger_entries, order_items, orders

PAGE = 5_000


def _customers(after: int, limit: int) -> Select[Any]:
    return (
        select(
            customers.c.id,
            customers.c.card_number,
            customers.c.first_name,
            customers.c.username,
            customers.c.telegram_id,
            customers.c.phone,
            customers.c.locale,
            customers.c.created_at,
            customers.c.joined_at,
            customers.c.marketing_opt_in,
            customers.c.blocked_at,
            customers.c.erased_at,
            ledger_accounts.c.balance,
        )
        .select_from(
            customers.outerjoin(ledger_accounts, ledger_accounts.c.customer_id == customers.c.id)
        )
        .where(customers.c.id > after)
        .order_by(customers.c.id)
        .limit(limit)
    )


def _order_lines(after: int, limit: int) -> Select[Any]:
    return (
        select(
            order_items.c.id,
            orders.c.order_ref,
            orders.c.ordered_at,
            orders.c.status,
            orders.c.customer_id,
            orders.c.phone,
            orders.c.telegram_id,
            orders.c.currency,
            orders.c.total,
            orders.c.bonus_redeemed,
            order_items.c.sku,
            order_items.c.name,
            order_items.c.quantity,
            order_items.c.price,
            order_items.c.category,
        )
        .select_from(order_items.join(orders, orders.c.id == order_items.c.order_id))
        .where(order_items.c.id > after)
        .order_by(order_items.c.id)
        .limit(limit)
    )


def _ledger(after: int, limit: int) -> Select[Any]:
    c = ledger_entries.c
    return (
        select(
            c.id,
            c.customer_id,
            c.kind,
            c.source,
            c.amount,
            c.paid_amount,
            c.reason,
            c.actor_id,
            c.occurred_at,
        )
        .where(c.id > after)
        .order_by(c.id)
        .limit(limit)
    )


_QUERIES = {"customers": _customers, "orders": _order_lines, "ledger": _ledger}


class SqlExport:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def rows(self, kind: str, *, page: int = PAGE) -> AsyncIterator[Sequence[Any]]:
        """The rows of ``kind`` (customers, orders: one per line, ledger) by id, a page per
        read transaction: nothing stays open while the caller sends what it has."""
        query = _QUERIES[kind]
        after = 0
        while True:
            async with self._db.read() as conn:
                batch = (await conn.execute(query(after, page))).all()
            for row in batch:
                yield tuple(row)
            if len(batch) < page:
                return
            after = int(batch[-1][0])
