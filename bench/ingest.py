"""Orders/second through the shop's HTTP API and the CSV import, against raw insert+commit.

Run: python -m bench.ingest [--orders 1000] [--postgres]
The API runs in this process on a real TCP port and is called over HTTP by aiohttp clients:
one client (each order waits for the previous answer) and CONCURRENT clients. The baseline is
the cheapest write the database can do, one single-row insert and commit, at the same
concurrency and in the same run, so the ratio shows what an order costs on top of a commit:
HTTP, JSON validation, the idempotency fingerprint, the order and its items, the member's
redemption and accrual in the ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import socket
import statistics
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from bench.common import backends, fresh_database, per_second
from bot.api import create_api_app, start_api
from scenarios.clock import SystemClock
from scenarios.importing import ORDER_COLUMNS, REQUIRED_ORDER_COLUMNS, import_orders, read_rows
from scenarios.rules import Rules
from storage.database import Database
from storage.schema import audit_log, customers
from tests.support.services import services_for

CONCURRENT = 10  # several checkouts of the shop reporting at once
ROUNDS = 5
TOKEN = "bench-token"
MEMBERS = 200


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def phone(n: int) -> str:
    return f"+7999{n % MEMBERS:07d}"


def order_body(prefix: str, n: int) -> dict[str, Any]:
    # Every other order is a member's (points accrue), the rest a guest's (order only).
    customer = {"phone": phone(n)} if n % 2 == 0 else {"telegram_id": 10_000_000 + n}
    return {
        "order_id": f"{prefix}-{n}",
        "customer": customer,
        "items": [
            {"sku": "CAT-2KG", "name": "Cat food 2 kg", "quantity": 2, "price": "1290.00"},
            {"sku": "LITTER", "name": "Litter 10 l", "quantity": 1, "price": "710.00"},
        ],
        "total": "3290.00",
        "currency": "RUB",
    }


async def add_members(db: Database) -> None:
    now = datetime.now(UTC)
    async with db.transaction() as conn:
        await conn.execute(
            customers.insert(),
            [
                {
                    "telegram_id": 1_000 + n,
                    "phone": phone(n),
                    "created_at": now,
                    "last_seen_at": now,
                    "joined_at": now,
                }
                for n in range(MEMBERS)
            ],
        )


async def raw_commit(db: Database, n: int) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            audit_log.insert().values(
                at=datetime.now(UTC), actor_id=None, action="bench", customer_id=n, details={}
            )
        )


def csv_of(prefix: str, numbers: range) -> str:
    lines = ["order_id,phone,telegram_id,total,sku,item_name,quantity,price"]
    for n in numbers:
        who = f"{phone(n)}," if n % 2 == 0 else f",{10_000_000 + n}"
        lines.append(f"{prefix}-{n},{who},3290.00,CAT-2KG,Cat food 2 kg,2,1290.00")
        lines.append(f"{prefix}-{n},{who},3290.00,LITTER,Litter 10 l,1,710.00")
    return "\n".join(lines) + "\n"


async def bench_backend(db: Database, backend: str, orders: int) -> None:
    await add_members(db)
    rules, clock = Rules(), SystemClock()
    port = free_port()
    runner = await start_api(
        create_api_app(services_for(db, rules=rules, clock=clock, followers=()), api_token=TOKEN),
        "127.0.0.1",
        port,
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"http://127.0.0.1:{port}/api/v1/orders"
    try:
        async with aiohttp.ClientSession(headers=headers) as http:

            def poster(prefix: str, expect: int = 201) -> Callable[[int], Awaitable[None]]:
                async def post(n: int) -> None:
                    async with http.post(url, json=order_body(prefix, n)) as response:
                        if response.status != expect:
                            raise RuntimeError(f"{response.status}: {await response.text()}")

                return post

            async def raw(n: int) -> None:
                await raw_commit(db, n)

            for n in range(50):  # warm up connections, caches and statement compilation
                await poster("warm")(n)
                await raw(n)
            per_round = max(orders // ROUNDS, 1)
            results: dict[tuple[str, int], list[float]] = {}
            for round_number in range(ROUNDS):
                numbers = range(round_number * per_round, (round_number + 1) * per_round)
                for clients in (1, CONCURRENT):
                    prefix = f"r{round_number}c{clients}"
                    results.setdefault(("raw", clients), []).append(
                        await per_second(raw, numbers, concurrency=clients)
                    )
                    results.setdefault(("api", clients), []).append(
                        await per_second(poster(prefix), numbers, concurrency=clients)
                    )
            # The same replayed: idempotent answers read, nothing written.
            replay = await per_second(poster("r0c1", 200), range(per_round), concurrency=CONCURRENT)
    finally:
        await runner.cleanup()
    for clients in (1, CONCURRENT):
        ours = statistics.median(results[("api", clients)])
        base = statistics.median(results[("raw", clients)])
        # Each round's API rate against the raw rate measured just before it: the machine's
        # speed drifts by a third within a run, and neighbours drift together.
        ratio = statistics.median(
            api / raw
            for api, raw in zip(results[("api", clients)], results[("raw", clients)], strict=True)
        )
        print(
            f"{backend:<10} {clients:>2} client(s): API {ours:7.0f} orders/s | raw insert+commit "
            f"{base:7.0f}/s | ratio {ratio:.3f} (median of {ROUNDS} rounds' ratios)"
        )
    print(f"{backend:<10} replays ({CONCURRENT} clients): {replay:7.0f} orders/s")

    text = csv_of("csv", range(orders))
    rows = read_rows(io.StringIO(text), columns=ORDER_COLUMNS, required=REQUIRED_ORDER_COLUMNS)
    desk = services_for(db, rules=rules, clock=clock, followers=()).order_desk
    started = asyncio.get_running_loop().time()
    summary = await import_orders(
        rows, desk=desk, uow=db, zone=ZoneInfo("Europe/Moscow"), currency="RUB"
    )
    seconds = asyncio.get_running_loop().time() - started
    if summary.imported != orders or summary.rejected:
        raise RuntimeError(f"the import went wrong: {summary}")
    single = statistics.median(results[("raw", 1)])
    print(
        f"{backend:<10} CSV import: {orders / seconds:7.0f} orders/s | ratio to raw "
        f"insert+commit (1 client) {orders / seconds / single:.3f}"
    )


async def run(orders: int, with_postgres: bool) -> None:
    chosen = await backends(with_postgres=with_postgres)
    print(f"{orders} orders per measurement, 2 items each, half of them members' (points)")
    for backend in chosen:
        async with AsyncExitStack() as stack:
            db = await fresh_database(stack, backend)
            await bench_backend(db, backend, orders)
    print(f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--postgres", action="store_true", help="also measure on PostgreSQL")
    args = parser.parse_args()
    asyncio.run(run(args.orders, args.postgres))


if __name__ == "__main__":
    main()
