"""Accruals/second through the points ledger, against raw single-row insert+commit transactions.

Run: python -m bench.ledger [--accruals 2000] [--customers 200] [--postgres]
Both sides run CONCURRENCY at a time on the same database, in alternating rounds (medians are
shown, so a busy machine slows both alike). The ratio shows what an accrual costs over the
cheapest possible write: the customer's lock, the idempotency check, the tier's spend, the
expiry check, the entry, its lot and the cached account.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

from bench.common import backends, fresh_database, per_second
from scenarios.clock import SystemClock
from scenarios.ledger import PointsLedger
from scenarios.rules import Bonus
from scenarios.tiers import TierLadder
from storage.customers import SqlCustomers
from storage.database import Database
from storage.ledger import SqlLedger
from storage.schema import ledger_entries

CONCURRENCY = 10  # like several shop webhooks arriving at once
ROUNDS = 5


async def measure(work: Callable[[int], Awaitable[object]], numbers: range) -> float:
    """Calls per second, CONCURRENCY at a time."""
    return await per_second(work, numbers, concurrency=CONCURRENCY)


async def make_customers(db: Database, count: int) -> list[int]:
    repo = SqlCustomers(db)
    now = datetime.now(UTC)
    ids = []
    for n in range(count):
        record = await repo.seen(
            telegram_id=50_000 + n,
            first_name=None,
            username=None,
            language_code=None,
            now=now,
            refresh_after=timedelta(minutes=10),
        )
        ids.append(record.id)
    return ids


async def bench_backend(db: Database, backend: str, accruals: int, customer_count: int) -> None:
    customers = await make_customers(db, customer_count)
    bonus = Bonus()
    ledger = PointsLedger(
        SqlLedger(db),
        bonus=bonus,
        ladder=TierLadder.from_rules(bonus, currency="RUB"),
        clock=SystemClock(),
    )

    async def accrue(n: int, prefix: str = "B") -> None:
        await ledger.accrue(
            customer_id=customers[n % len(customers)],
            order_id=f"{prefix}-{n}",
            total=100_000 + n,
        )

    async def raw_insert(n: int, prefix: str = "raw") -> None:
        async with db.transaction() as conn:
            await conn.execute(
                ledger_entries.insert().values(
                    customer_id=customers[n % len(customers)],
                    kind="accrual",
                    source=f"{prefix}:{n}",
                    amount=0,
                    reason="bench",
                    occurred_at=datetime.now(UTC),
                )
            )

    for n in range(100):  # warm up connections, caches and statement compilation
        await accrue(n, "warm")
        await raw_insert(n, "warm")
    raw_rates, our_rates = [], []
    per_round = max(accruals // ROUNDS, 1)
    for start in range(0, per_round * ROUNDS, per_round):
        numbers = range(start, start + per_round)
        raw_rates.append(await measure(raw_insert, numbers))
        our_rates.append(await measure(accrue, numbers))
    raw, ours = statistics.median(raw_rates), statistics.median(our_rates)
    print(
        f"{backend:<10} accruals {ours:8.0f}/s | raw insert+commit {raw:8.0f}/s | "
        f"ratio accrual/raw {ours / raw:.3f}"
    )


async def run(accruals: int, customer_count: int, with_postgres: bool) -> None:
    chosen = await backends(with_postgres=with_postgres)
    print(f"{accruals} accruals for {customer_count} customers, {CONCURRENCY} in flight")
    for backend in chosen:
        async with AsyncExitStack() as stack:
            db = await fresh_database(stack, backend)
            await bench_backend(db, backend, accruals, customer_count)
    print(f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accruals", type=int, default=2000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--postgres", action="store_true", help="also measure on PostgreSQL")
    args = parser.parse_args()
    asyncio.run(run(args.accruals, args.customers, args.postgres))


if __name__ == "__main__":
    main()
