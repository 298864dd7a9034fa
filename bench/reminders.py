"""Reminder costs against the pending total: one sweep round and scheduling one reminder.

Run: python -m bench.reminders [--pending 1000000] [--due 10000] [--postgres]
Each backend gets two fresh databases: one with only the due reminders (10 000 pending, all
due) and one with the full pending total (1 000 000, of which the same 10 000 are due), seeded
with bulk inserts and ANALYZEd. In each, a sweep round (claim batch_size due reminders, queue one
message per customer) and scheduling one reminder (the order follower on a new order: conversion
check, replacement, the customer's history, the insert) are timed; medians are shown. The ratio
big/small near 1 shows the cost does not grow with the pending total.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, text

from bench.common import backends, fresh_database
from bot.services import build_services
from bot.settings import Settings
from scenarios.clock import FixedClock
from scenarios.orders import OrderEvent
from scenarios.reminders import ReplenishmentFollower
from scenarios.rules import Rules
from storage.database import Database
from storage.orders import NewOrder, OrderLine, SqlOrders
from storage.products import ProductRecord, SqlProducts
from storage.reminders import SqlReminders
from storage.schema import customers, reminders

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CHUNK = 20_000
PER_CUSTOMER = 10  # pending reminders per customer (ten different products)
SWEEP_SAMPLES = 15
SCHEDULE_SAMPLES = 60


async def seed(db: Database, *, pending: int, due: int) -> None:
    """``pending`` scheduled reminders, the first ``due`` of them due (one per customer)."""
    customer_count = max(due, -(-pending // PER_CUSTOMER))
    async with db.transaction() as conn:
        for start in range(0, customer_count, CHUNK):
            await conn.execute(
                insert(customers),
                [
                    {
                        "id": n + 1,
                        "telegram_id": 1_000_000 + n,
                        "created_at": NOW,
                        "last_seen_at": NOW,
                        "joined_at": NOW,
                    }
                    for n in range(start, min(start + CHUNK, customer_count))
                ],
            )
    if db.backend == "postgresql":  # explicit ids: move the sequence past them
        async with db.transaction() as conn:
            await conn.execute(
                text("SELECT setval(pg_get_serial_sequence('customers', 'id'), :n)"),
                {"n": customer_count},
            )
    await SqlProducts(db).save(
        ProductRecord(
            sku="SKU-0",
            name="Cat food",
            url=None,
            category=None,
            consumption_days=30,
            lead_days=None,
            related=(),
        ),
        now=NOW,
    )
    rng = random.Random(7)
    slots = [(customer, k) for k in range(PER_CUSTOMER) for customer in range(customer_count)]
    slots = slots[:pending]
    for start in range(0, len(slots), CHUNK):
        rows = []
        for index in range(start, min(start + CHUNK, len(slots))):
            customer, k = slots[index]
            when = (
                NOW - timedelta(minutes=1 + index)
                if index < due
                else NOW + timedelta(days=10 + rng.random() * 90)
            )
            rows.append(
                {
                    "customer_id": customer + 1,
                    "sku": f"SKU-{k}",
                    "order_ref": f"S-{customer}",
                    "ordered_at": NOW - timedelta(days=30),
                    "quantity": 1,
                    "basis": "catalog",
                    "runs_out_at": when + timedelta(days=3),
                    "remind_at": when,
                    "due_at": when,
                    "state": "scheduled",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            )
        async with db.transaction() as conn:
            await conn.execute(insert(reminders), rows)
    async with db.engine.connect() as conn:  # what an operator's database would know
        await conn.execute(text("ANALYZE"))
        await conn.commit()


async def timed(work: Callable[[int], Awaitable[Any]], samples: int) -> float:
    """The median seconds of ``samples`` calls."""
    spent = []
    for n in range(samples):
        started = time.perf_counter()
        await work(n)
        spent.append(time.perf_counter() - started)
    return statistics.median(spent)


async def measure(db: Database, *, pending: int, due: int) -> tuple[float, float, float]:
    """(seconds to seed, median sweep round, median scheduling of one reminder)."""
    started = time.perf_counter()
    await seed(db, pending=pending, due=due)
    seeded = time.perf_counter() - started
    clock = FixedClock(NOW)
    rules = Rules()
    sweeper = build_services(
        Settings(_env_file=None, timezone="UTC", default_locale="en"), rules, db, clock
    ).reminder_sweeper

    async def sweep_round(_n: int) -> None:
        handled = await sweeper.sweep_once()
        assert handled == rules.reminders.batch_size, handled

    follower = ReplenishmentFollower(
        store=SqlReminders(db),
        rules=rules.reminders,
        quiet=rules.quiet_hours,
        shop_zone=ZoneInfo("UTC"),
        clock=clock,
    )
    orders = SqlOrders(db)

    async def schedule_one(n: int) -> None:
        # A member with pending reminders orders the product again (not timed: the order row).
        customer_id = 1 + (n * 7919) % (pending // PER_CUSTOMER or 1)
        ref = f"NEW-{n}"
        await orders.add(
            NewOrder(
                order_ref=ref,
                total=129_000,
                currency="RUB",
                status="paid",
                ordered_at=NOW,
                lines=[OrderLine(sku="SKU-0", name="Cat food", quantity=1, price=129_000)],
                customer_id=customer_id,
            ),
            now=NOW,
        )
        event = OrderEvent(
            order_id=ref,
            customer_id=customer_id,
            status="paid",
            previous_status=None,
            ordered_at=NOW,
            recent=True,
        )
        started = time.perf_counter()
        async with db.transaction():
            await follower.after_order(event)
        spent.append(time.perf_counter() - started)

    spent: list[float] = []
    for n in range(5):  # warm up connections and statement caches
        await schedule_one(10_000 + n)
    await sweep_round(0)
    sweep = await timed(sweep_round, SWEEP_SAMPLES)
    spent.clear()
    for n in range(SCHEDULE_SAMPLES):
        await schedule_one(n)
    return seeded, sweep, statistics.median(spent)


async def run(pending: int, due: int, with_postgres: bool) -> None:
    chosen = await backends(with_postgres=with_postgres)
    print(
        f"sweep round = claim {Rules().reminders.batch_size} due reminders and queue their "
        f"messages; schedule = the order follower planning one reminder"
    )
    for backend in chosen:
        results = {}
        for total in (due, pending):
            async with AsyncExitStack() as stack:
                db = await fresh_database(stack, backend)
                results[total] = await measure(db, pending=total, due=due)
            seeded, sweep, schedule = results[total]
            print(
                f"{backend:<10} {total:>9,} pending ({due:,} due): seeded in {seeded:6.1f} s | "
                f"sweep round {sweep * 1000:7.1f} ms | schedule one {schedule * 1000:6.2f} ms"
            )
        _s, small_sweep, small_schedule = results[due]
        _b, big_sweep, big_schedule = results[pending]
        print(
            f"{backend:<10} ratio {pending:,}/{due:,} pending: sweep round "
            f"{big_sweep / small_sweep:.2f}, schedule one {big_schedule / small_schedule:.2f}"
        )
    print(f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--postgres", action="store_true", help="also measure on PostgreSQL")
    args = parser.parse_args()
    asyncio.run(run(args.pending, args.due, args.postgres))


if __name__ == "__main__":
    main()
