"""The delivery engine over real HTTP against the fake Telegram, with its limits enforced."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sqlalchemy import select

from bot.delivery.sender import OutboxSender
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import SystemClock
from scenarios.delivery import Category, Outgoing, enqueue
from scenarios.rules import Delivery, QuietHours, Rules
from storage.customers import SqlCustomers
from storage.database import Database
from storage.outbox import SqlOutbox
from storage.schema import outbox
from tests.fake_telegram import FakeTelegram, RateLimits

pytestmark = pytest.mark.e2e

# No quiet hours here: these tests run at any time of day on the real clock.
ALWAYS = QuietHours(start=QuietHours().end, end=QuietHours().end)


@dataclass
class Line:
    tg: FakeTelegram
    bot: Bot
    db: Database
    sender: OutboxSender
    outbox: SqlOutbox

    async def queue(self, key: str, chat_id: int, **extra: object) -> None:
        await enqueue(
            self.outbox,
            Outgoing(
                dedupe_key=key,
                chat_id=chat_id,
                category=extra.pop("category", Category.TRANSACTIONAL),  # type: ignore[arg-type]
                kind="test",
                content={"text": f"message {key}"},
                customer_id=extra.pop("customer_id", None),  # type: ignore[arg-type]
            ),
            clock=SystemClock(),
        )

    async def settle(self, *, timeout: float) -> dict[str, int]:
        """Drain until nothing is waiting (retries included); returns the final counts."""
        async with asyncio.timeout(timeout):
            while True:
                await self.sender.drain_until_empty()
                counts = await self.outbox.counts()
                if not counts.get("pending") and not counts.get("claimed"):
                    return counts
                await asyncio.sleep(0.1)


@pytest.fixture
async def line_factory(
    db: Database, renderer: Renderer, i18n: CatalogI18n
) -> AsyncIterator[object]:
    opened: list[tuple[FakeTelegram, Bot]] = []

    async def build(delivery: Delivery, limits: RateLimits | None = None) -> Line:
        tg = FakeTelegram(limits=limits)
        await tg.start()
        bot = tg.bot()
        opened.append((tg, bot))
        sender = OutboxSender(
            db=db,
            bot=bot,
            renderer=renderer,
            i18n=i18n,
            rules=Rules(delivery=delivery, quiet_hours=ALWAYS),
            clock=SystemClock(),
            shop_zone=ZoneInfo("UTC"),
            worker_id="e2e",
        )
        return Line(tg, bot, db, sender, SqlOutbox(db))

    yield build
    for tg, _bot in opened:
        await tg.close()


def received(tg: FakeTelegram, chat_ids: list[int]) -> Counter[int]:
    return Counter({chat: len(tg.sent(chat)) for chat in chat_ids})


async def test_draining_2000_messages_breaks_no_telegram_limit(line_factory: object) -> None:
    limits = RateLimits(global_per_second=200, private_min_interval=1.0, mode="count")
    line = await line_factory(  # type: ignore[operator]
        Delivery(rate_per_second=190, concurrency=16, batch_size=500), limits
    )
    singles = list(range(10_000, 11_500))  # 1500 chats, one message each
    regulars = list(range(20_000, 20_100))  # 100 chats, five messages each: per-chat spacing
    for chat in singles + regulars:
        line.tg.user(chat, known=True)
    for chat in singles:
        await line.queue(f"s{chat}", chat)
    for round_ in range(5):
        for chat in regulars:
            await line.queue(f"r{chat}-{round_}", chat)

    counts = await line.settle(timeout=120)

    assert counts == {"sent": 2000}
    assert line.tg.violations == {"global": 0, "private": 0, "group": 0}
    assert set(received(line.tg, singles).values()) == {1}
    assert set(received(line.tg, regulars).values()) == {5}


async def test_a_429_storm_delays_but_loses_and_repeats_nothing(line_factory: object) -> None:
    line = await line_factory(Delivery(rate_per_second=200, private_interval_seconds=0.0))  # type: ignore[operator]
    chats = list(range(30_000, 30_100))
    for chat in chats:
        line.tg.user(chat, known=True)
        await line.queue(f"m{chat}", chat)
    line.tg.fail_rate("sendMessage", 429, probability=0.1, seed=7, retry_after=1)

    counts = await line.settle(timeout=90)

    assert counts == {"sent": 100}
    assert set(received(line.tg, chats).values()) == {1}
    assert any(call.status == 429 for call in line.tg.calls)


async def test_a_5xx_storm_is_retried_until_everything_arrives_once(line_factory: object) -> None:
    line = await line_factory(  # type: ignore[operator]
        Delivery(
            rate_per_second=200,
            private_interval_seconds=0.0,
            backoff_seconds=0.05,
            max_attempts=12,
        )
    )
    chats = list(range(40_000, 40_200))
    for chat in chats:
        line.tg.user(chat, known=True)
        await line.queue(f"m{chat}", chat)
    line.tg.fail_rate("sendMessage", 502, probability=0.3, seed=11)

    counts = await line.settle(timeout=90)

    assert counts == {"sent": 200}
    assert set(received(line.tg, chats).values()) == {1}


async def test_a_user_who_blocked_the_bot_is_marked_and_gets_nothing_more(
    line_factory: object,
) -> None:
    line = await line_factory(Delivery(rate_per_second=200, private_interval_seconds=0.0))  # type: ignore[operator]
    customers = SqlCustomers(line.db)
    anna = line.tg.user(50_001, "Anna", known=True)
    record = await customers.seen(
        telegram_id=anna.id,
        first_name="Anna",
        username=None,
        language_code="ru",
        now=SystemClock().now(),
        refresh_after=timedelta(minutes=10),
    )
    await anna.block()
    for n in range(3):
        await line.queue(f"a{n}", anna.id, category=Category.SERVICE, customer_id=record.id)
    await line.queue("other", 50_002)
    line.tg.user(50_002, known=True)

    counts = await line.settle(timeout=30)

    # The first try meets the block and drops her queue; anything evaluated after the block is
    # known is skipped by the policy. Either way: nothing reached her, nothing is left waiting.
    assert counts["sent"] == 1
    assert counts.get("dropped", 0) + counts.get("skipped", 0) == 3
    assert line.tg.sent(anna) == []
    stored = await customers.by_telegram_id(telegram_id=anna.id)
    assert stored is not None
    assert stored.blocked_at is not None
    attempts = [c for c in line.tg.calls if c.method == "sendMessage" and c.status == 403]
    assert len(attempts) == 1, "one refusal is enough to stop writing to her"


async def test_i17_8_an_answer_later_than_the_timeout_is_unknown_and_never_sent_again(
    line_factory: object,
) -> None:
    line = await line_factory(  # type: ignore[operator]
        Delivery(
            rate_per_second=200,
            private_interval_seconds=0.0,
            backoff_seconds=0.05,
            max_attempts=3,
            request_timeout_seconds=0.3,
        )
    )
    chats = [41_001, 41_002, 41_003]
    for chat in chats:
        line.tg.user(chat, known=True)
        await line.queue(f"slow{chat}", chat)
    # Telegram takes each message but answers after the bot stopped waiting.
    line.tg.slow_next("sendMessage", 1.0, times=3 * 3)

    counts = await line.settle(timeout=30)
    await asyncio.sleep(1.5)  # the slow answers land

    assert counts == {"unknown": 3}
    assert received(line.tg, chats) == Counter(dict.fromkeys(chats, 1))
    async with line.db.read() as conn:
        errors = (await conn.execute(select(outbox.c.last_error))).scalars().all()
    assert all(e.startswith("no answer, may have arrived: TelegramNetworkError") for e in errors)


async def test_i17_8_a_connection_refused_before_the_request_left_is_retried(
    db: Database, renderer: Renderer, i18n: CatalogI18n
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    bot = Bot(
        "123:REFUSED",
        session=AiohttpSession(api=TelegramAPIServer.from_base(f"http://127.0.0.1:{closed}")),
    )
    sender = OutboxSender(
        db=db,
        bot=bot,
        renderer=renderer,
        i18n=i18n,
        rules=Rules(delivery=Delivery(backoff_seconds=60), quiet_hours=ALWAYS),
        clock=SystemClock(),
        shop_zone=ZoneInfo("UTC"),
        worker_id="refused",
    )
    queue = SqlOutbox(db)
    await enqueue(
        queue,
        Outgoing(
            dedupe_key="refused",
            chat_id=42_001,
            category=Category.TRANSACTIONAL,
            kind="test",
            content={"text": "hello"},
        ),
        clock=SystemClock(),
    )
    try:
        await sender.drain_until_empty()
    finally:
        await bot.session.close()
    async with db.read() as conn:
        state, attempts, error = (
            await conn.execute(select(outbox.c.state, outbox.c.attempts, outbox.c.last_error))
        ).one()
    # Nothing left the process: it is tried again later, as any failure to connect.
    assert (state, attempts) == ("pending", 1)
    assert "ClientConnectorError: Cannot connect to host 127.0.0.1" in error
