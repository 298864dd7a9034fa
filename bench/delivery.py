"""Messages/second the delivery engine achieves against its configured limit, and CPU per message.

Run: python -m bench.delivery [--postgres] [--quick]
The fake Telegram runs in a child process (so its CPU is not counted as ours), enforcing the
same limits; the engine drains a full outbox: transactional messages at 30/s, paid marketing
broadcasts at 1000/s. Target: achieved/limit >= 0.95, zero limit violations.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from zoneinfo import ZoneInfo

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sqlalchemy import insert

from bench.common import backends, fresh_database
from bot.delivery.sender import OutboxSender
from locales import create_i18n
from locales.rendering import Renderer
from scenarios.clock import SystemClock
from scenarios.delivery import Category, Outgoing, enqueue
from scenarios.rules import Delivery, QuietHours, Rules
from storage.database import Database
from storage.outbox import SqlOutbox
from storage.schema import customers
from tests.fake_telegram import FakeTelegram, RateLimits

TOKEN = "123456:BENCH-TOKEN"
FIRST_CHAT = 100_000
NO_QUIET_HOURS = QuietHours(start=QuietHours().end, end=QuietHours().end)


def serve_fake(conn: Connection, users: int) -> None:
    """Child process: a fake Telegram with Telegram's limits counted, until told to stop."""

    async def main() -> None:
        limits = RateLimits(global_per_second=30, paid_global_per_second=1000, mode="count")
        async with FakeTelegram(token=TOKEN, limits=limits, record_calls=False) as tg:
            for chat in range(FIRST_CHAT, FIRST_CHAT + users):
                tg.user(chat, known=True)
            # The fake stands in for Telegram's servers: its own garbage-collector pauses (a
            # few hundred milliseconds once its message logs grow) would be charged to the
            # engine as a Telegram hiccup. Measure the engine, not the stand-in.
            gc.freeze()
            gc.disable()
            conn.send(tg.base_url)
            loop = asyncio.get_running_loop()
            while True:
                command = await loop.run_in_executor(None, conn.recv)
                if command == "stop":
                    break
                conn.send(dict(tg.violations))

    asyncio.run(main())


async def seed(db: Database, *, count: int, marketing: bool) -> None:
    now = datetime.now(UTC)
    chats = range(FIRST_CHAT, FIRST_CHAT + count)
    async with db.transaction() as conn:
        await conn.execute(
            insert(customers),
            [
                {
                    "telegram_id": chat,
                    "first_name": f"C{chat}",
                    "language_code": "ru",
                    "created_at": now,
                    "last_seen_at": now,
                    "marketing_opt_in": True,
                }
                for chat in chats
            ],
        )
    queue = SqlOutbox(db)
    async with db.transaction():
        for customer_id, chat in enumerate(chats, start=1):
            await enqueue(
                queue,
                Outgoing(
                    dedupe_key=f"bench:{chat}",
                    chat_id=chat,
                    category=Category.MARKETING if marketing else Category.TRANSACTIONAL,
                    kind="broadcast" if marketing else "answer",
                    content={"text": f"<b>Offer</b> for {chat}"},
                    customer_id=customer_id,
                ),
                clock=SystemClock(),
            )


async def run_case(
    db: Database, base_url: str, *, limit: float, count: int, paid: bool
) -> tuple[float, float]:
    """Returns (achieved messages/second, CPU milliseconds per message)."""
    await seed(db, count=count, marketing=paid)
    delivery = Delivery(
        rate_per_second=limit if not paid else 25.0,
        allow_paid_broadcast=paid,
        paid_rate_per_second=limit,
        concurrency=64 if paid else 8,
        batch_size=1000,
        marketing_per_day=1,
        marketing_per_week=2,
    )
    i18n = create_i18n("en")
    session = AiohttpSession(api=TelegramAPIServer.from_base(base_url))
    bot = Bot(TOKEN, session=session)
    sender = OutboxSender(
        db=db,
        bot=bot,
        renderer=Renderer(i18n, currency="RUB", zone=ZoneInfo("UTC")),
        i18n=i18n,
        rules=Rules(delivery=delivery, quiet_hours=NO_QUIET_HOURS),
        clock=SystemClock(),
        shop_zone=ZoneInfo("UTC"),
        worker_id="bench",
    )
    try:
        # The seeding's garbage is not the engine's; the rest is frozen as the bot freezes
        # what it loaded once started (bot/app.py).
        gc.collect()
        gc.freeze()
        cpu, wall = time.process_time(), time.perf_counter()
        await sender.drain_until_empty()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await session.close()
    sent = (await SqlOutbox(db).counts()).get("sent", 0)
    assert sent == count, f"only {sent} of {count} sent"
    return count / wall, cpu / count * 1000


async def bench(chosen: list[str], cases: list[tuple[float, int, bool]]) -> None:
    users = max(count for _, count, _ in cases)
    parent, child = multiprocessing.Pipe()
    fake = multiprocessing.Process(target=serve_fake, args=(child, users), daemon=True)
    fake.start()
    base_url = parent.recv()
    try:
        for backend in chosen:
            for limit, count, paid in cases:
                async with AsyncExitStack() as stack:
                    db = await fresh_database(stack, backend)
                    rate, cpu_ms = await run_case(db, base_url, limit=limit, count=count, paid=paid)
                parent.send("violations")
                violations = parent.recv()
                kind = "paid broadcast" if paid else "transactional"
                print(
                    f"{backend:<10} limit {limit:6.0f}/s ({kind:<14}) {count:5d} msgs: "
                    f"{rate:7.1f} msg/s, achieved/limit {rate / limit:.3f}, "
                    f"CPU {cpu_ms:.2f} ms/msg, violations {violations}"
                )
                await asyncio.sleep(1.1)  # let the fake's 1-second windows empty between cases
    finally:
        parent.send("stop")
        fake.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", action="store_true", help="also measure on PostgreSQL")
    parser.add_argument("--quick", action="store_true", help="fewer messages per case")
    args = parser.parse_args()
    scale = 0.3 if args.quick else 1.0
    cases = [(30.0, int(600 * scale), False), (1000.0, int(10_000 * scale), True)]
    asyncio.run(bench(asyncio.run(backends(with_postgres=args.postgres)), cases))
    print(f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
