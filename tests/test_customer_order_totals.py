"""The totals /stats reads per customer (customer_order_totals, kept by triggers on orders) always
equal the customer's counted orders, on SQLite and PostgreSQL, also with writers side by side."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

import storage.analytics as analytics_module
from storage.analytics import UTC_CALENDAR, HistoryGroup, SqlAnalytics, Window
from storage.database import Database
from storage.schema import customer_order_totals, customers, orders
from storage.segments import VOID_STATUSES
from tests.support.databases import postgres_database
from tests.support.seed import NOW, days_ago, member, order
from tests.support.small_shop import PERIOD_START, guest_order, seed_small_shop

Totals = dict[int, tuple[int, datetime, datetime, int]]


async def kept(db: Database) -> Totals:
    t = customer_order_totals.c
    async with db.read() as conn:
        rows = await conn.execute(select(t.customer_id, t.orders, t.first_at, t.last_at, t.spend))
        return {row[0]: tuple(row[1:]) for row in rows}


async def grouped(db: Database) -> Totals:
    o = orders.c
    statement = (
        select(o.customer_id, func.count(), func.min(o.ordered_at), func.max(o.ordered_at))
        .add_columns(func.sum(o.total))
        .where(o.customer_id.is_not(None), o.status.not_in(VOID_STATUSES))
        .group_by(o.customer_id)
    )
    async with db.read() as conn:
        return {row[0]: tuple(row[1:]) for row in await conn.execute(statement)}


async def change(db: Database, ref: str, **values: Any) -> None:
    async with db.transaction() as conn:
        await conn.execute(update(orders).where(orders.c.order_ref == ref).values(**values))


async def assert_kept(db: Database, expected: Totals) -> None:
    assert await kept(db) == expected
    assert await grouped(db) == expected


async def test_the_kept_totals_follow_every_change_to_orders(db: Database) -> None:
    anna, boris = await member(db, 1), await member(db, 2)
    await order(db, "A1", anna, 10, total=1_000)
    await order(db, "A2", anna, 5, total=2_000, status="paid")
    await order(db, "A3", anna, 3, total=4_000, status="cancelled")
    await order(db, "B1", boris, 20, total=500)
    await guest_order(db, "G1", 2, 7_000)
    await assert_kept(
        db,
        {
            anna: (2, days_ago(10), days_ago(5), 3_000),
            boris: (1, days_ago(20), days_ago(20), 500),
        },
    )
    await change(db, "A2", status="delivered")  # counted before and after: nothing moves
    await change(db, "A1", status="refunded")
    await assert_kept(
        db,
        {anna: (1, days_ago(5), days_ago(5), 2_000), boris: (1, days_ago(20), days_ago(20), 500)},
    )
    await change(db, "A3", status="paid")  # a cancelled order that counts again
    await change(db, "A2", total=2_500, ordered_at=days_ago(4))
    await change(db, "G1", customer_id=boris)  # a guest's order claimed at sign-up
    await assert_kept(
        db,
        {
            anna: (2, days_ago(4), days_ago(3), 6_500),
            boris: (2, days_ago(20), days_ago(2), 7_500),
        },
    )
    await change(db, "A3", customer_id=boris)  # moved to another customer
    async with db.transaction() as conn:
        await conn.execute(delete(orders).where(orders.c.order_ref == "B1"))
    await assert_kept(
        db,
        {
            anna: (1, days_ago(4), days_ago(4), 2_500),
            boris: (2, days_ago(3), days_ago(2), 11_000),
        },
    )
    async with db.transaction() as conn:  # the customer goes; their orders stay, as guests'
        await conn.execute(delete(customers).where(customers.c.id == anna))
    await assert_kept(db, {boris: (2, days_ago(3), days_ago(2), 11_000)})
    await change(db, "G1", status="cancelled")
    await change(db, "A3", status="refunded")
    await assert_kept(db, {})  # Boris has no counted order left: no row


async def test_writers_side_by_side_on_postgresql_leave_the_totals_right() -> None:
    """One transaction adds an order while another cancels the customer's other one; the
    recount of the second waits for the first to commit and sees its order."""
    async with postgres_database() as db:
        anna = await member(db, 1)
        await order(db, "A1", anna, 10, total=1_000)
        adding = await db.engine.connect()
        try:
            transaction = await adding.begin()
            await adding.execute(
                orders.insert().values(
                    order_ref="A2",
                    customer_id=anna,
                    total=2_000,
                    currency="RUB",
                    status="paid",
                    ordered_at=days_ago(1),
                    received_at=NOW,
                    updated_at=NOW,
                )
            )
            cancelling = asyncio.create_task(change(db, "A1", status="cancelled"))
            await asyncio.sleep(0.3)  # the cancel's recount is now waiting on Anna's row
            await transaction.commit()
            await cancelling
        finally:
            await adding.close()
        await assert_kept(db, {anna: (1, days_ago(1), days_ago(1), 2_000)})


def flat(groups: list[HistoryGroup]) -> list[float]:
    """Every number of the groups, in one order (the floats may differ in the last digits)."""
    return [value for group in sorted(groups) for value in group]


WINDOW = Window(start=PERIOD_START, end=NOW, sleeping_days=90, lost_days=365)


async def test_figures_from_the_kept_totals_are_those_grouped_from_the_orders(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_small_shop(db)
    for n in range(30):  # a few more histories, some with a cancelled or a guest's order
        customer = await member(db, 100 + n)
        for k in range(n % 4 + 1):
            status = "cancelled" if (n + k) % 5 == 0 else "delivered"
            await order(
                db, f"X{n}-{k}", customer, 3 + 37 * k + n, total=10_000 * (k + 1), status=status
            )
    shop = SqlAnalytics(db)
    month = UTC_CALENDAR.month_of(NOW) - 11
    from_totals = await shop.overview(WINDOW, first_month=month)
    cohorts = await shop.cohorts(first_month=month, end=NOW)

    async def grouped_from_orders(conn: Any, end: datetime) -> Any:
        return analytics_module._per_customer(end)

    monkeypatch.setattr(analytics_module, "_histories", grouped_from_orders)
    from_orders = await shop.overview(WINDOW, first_month=month)
    assert replace(from_totals, histories=[]) == replace(from_orders, histories=[])
    assert flat(from_totals.histories) == pytest.approx(flat(from_orders.histories))
    assert await shop.cohorts(first_month=month, end=NOW) == cohorts


async def test_an_order_stamped_after_the_end_counts_for_no_figure(db: Database) -> None:
    shop = await seed_small_shop(db)
    before = await SqlAnalytics(db).overview(WINDOW)
    # The shop's clock ran ahead: an order of C stamped a day after now.
    await order(db, "AHEAD", shop.ids["C"], -1, total=9_000_000)
    after = await SqlAnalytics(db).overview(WINDOW)
    assert replace(after, histories=[]) == replace(before, histories=[])
    assert flat(after.histories) == pytest.approx(flat(before.histories))
    assert (await kept(db))[shop.ids["C"]][0] == 2  # the kept totals do count it
