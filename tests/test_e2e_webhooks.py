"""kill -9 between the 200 and the processing: the restarted bot processes every delivery once."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, insert, select

from storage.inbox_file import inbox_path
from storage.schema import customers, ledger_entries, orders, webhook_inbox
from tests.fake_telegram import FakeTelegram
from tests.support.bot_process import BotProcess
from tests.support.databases import sqlite_database
from tests.support.webhooks import SHOPIFY_SECRET, body_of, shopify_headers, shopify_order

pytestmark = pytest.mark.e2e

ORDERS = 160
IN_FLIGHT = 16
KILL_AFTER = 60  # acknowledged deliveries


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def phone(n: int) -> str:
    return f"+7999100{n:04d}"


def delivery(n: int) -> tuple[bytes, dict[str, str]]:
    placed = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    order = shopify_order(
        id=9_000_000 + n,
        name=f"#{5000 + n}",
        order_number=5000 + n,
        processed_at=placed,
        created_at=placed,
        customer={"first_name": "Анна", "phone": phone(n)},
    )
    body = body_of(order)
    return body, shopify_headers(body, topic="orders/paid", webhook_id=f"wh-{n}")


async def counts(database: Path) -> dict[str, int]:
    """The deliveries in the inbox's own file, by state."""
    async with sqlite_database(inbox_path(database), migrated=False) as db, db.read() as conn:
        rows = await conn.execute(
            select(webhook_inbox.c.state, func.count()).group_by(webhook_inbox.c.state)
        )
        return {state: int(count) for state, count in rows.all()}


async def test_a_killed_bot_processes_every_acknowledged_delivery_once(tmp_path: Path) -> None:
    database = tmp_path / "data" / "bot.sqlite3"
    now = datetime.now(UTC)
    async with sqlite_database(database) as db, db.transaction() as conn:
        await conn.execute(
            insert(customers),
            [
                {
                    "telegram_id": 80_000 + n,
                    "phone": phone(n),
                    "created_at": now,
                    "last_seen_at": now,
                    "joined_at": now,
                }
                for n in range(ORDERS)
            ],
        )
    port = free_port()
    async with FakeTelegram(token="123456:HOOKS-TOKEN") as tg:
        for n in range(ORDERS):
            tg.user(80_000 + n, known=True)
        env = {
            "BOT_TOKEN": tg.token,
            "TELEGRAM_API_BASE": tg.base_url,
            "DATABASE_URL": f"sqlite:///{database}",
            "SHOPIFY_WEBHOOK_SECRET": SHOPIFY_SECRET,
            "API_PORT": str(port),
        }
        url = f"http://127.0.0.1:{port}/webhooks/shopify"
        first = BotProcess(workdir=tmp_path, env=env)
        await first.start()
        await first.wait_for_log("is polling")
        acknowledged: set[int] = set()
        enough = asyncio.Event()
        gate = asyncio.Semaphore(IN_FLIGHT)

        async with aiohttp.ClientSession() as http:

            async def send(n: int) -> None:
                body, headers = delivery(n)
                async with gate:
                    if enough.is_set():
                        return
                    try:
                        async with http.post(url, data=body, headers=headers) as answer:
                            if answer.status == 200:
                                acknowledged.add(n)
                    except aiohttp.ClientError:
                        return  # the bot died under it: the platform would retry
                if len(acknowledged) >= KILL_AFTER:
                    enough.set()

            senders = [asyncio.create_task(send(n)) for n in range(ORDERS)]
            await asyncio.wait_for(enough.wait(), 60)
            await first.kill()
            await asyncio.gather(*senders)

            before = await counts(database)
            assert before.get("pending", 0) > 0, f"the kill must come before processing: {before}"
            assert sum(before.values()) >= len(acknowledged)

            restarted = tmp_path / "restarted"  # a log of its own to wait on
            restarted.mkdir()
            second = BotProcess(workdir=restarted, env=env)
            await second.start()
            await second.wait_for_log("is polling")
            try:
                # The platform retries what was not acknowledged, and (as Shopify may) a few
                # that were: the same webhook ids.
                for n in range(ORDERS):
                    body, headers = delivery(n)
                    async with http.post(url, data=body, headers=headers) as answer:
                        assert answer.status == 200
                async with asyncio.timeout(120):
                    while (await counts(database)).get("pending", 0):
                        await asyncio.sleep(0.2)
            finally:
                assert await second.stop() == 0

    after = await counts(database)
    assert after == {"done": ORDERS}
    async with sqlite_database(database, migrated=False) as db, db.read() as conn:
        stored = (await conn.execute(select(func.count()).select_from(orders))).scalar_one()
        accruals = (
            await conn.execute(
                select(ledger_entries.c.source, func.count())
                .where(ledger_entries.c.kind == "accrual")
                .group_by(ledger_entries.c.source)
            )
        ).all()
    assert stored == ORDERS
    assert len(accruals) == ORDERS
    assert {count for _, count in accruals} == {1}, "an order earned points twice"
