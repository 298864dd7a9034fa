"""After a database outage delivery resumes by itself: nothing stays claimed, nothing goes twice.

In process (the sender against the fake Telegram, SQLite and PostgreSQL) and end to end (the
real bot process, python main.py) with "sending" marks refused for a few seconds, and with
PostgreSQL's backends killed in the middle of a broadcast.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from bot.delivery.sender import OutboxSender
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.broadcasts import Variant, launch
from scenarios.clock import SystemClock
from scenarios.delivery import Category, Outgoing, enqueue
from scenarios.rules import Delivery, QuietHours, Rules
from scenarios.segments import Segment, SegmentKind
from storage.broadcasts import SqlBroadcasts
from storage.database import Database
from storage.migrate import migrate
from storage.outbox import SqlOutbox
from storage.schema import customers, outbox
from storage.segments import SqlSegments
from tests.fake_telegram import FakeTelegram
from tests.support.bot_process import BotProcess
from tests.support.databases import sqlite_database
from tests.support.outage import (
    allow_sending,
    kill_backends_for,
    postgres_role_database,
    refuse_sending,
)

pytestmark = pytest.mark.e2e

ALWAYS = QuietHours(start=QuietHours().end, end=QuietHours().end)
AWAY = "database unavailable"
BACK = "database is back"
CONFIG = """
[quiet_hours]
start = "00:00"
end = "00:00"

[broadcasts]
progress_every_seconds = 1.0

[delivery]
rate_per_second = 50.0
private_interval_seconds = 0.0
concurrency = 8
idle_poll_seconds = 0.2
"""


async def queue(db: Database, key: str, chat_id: int) -> None:
    await enqueue(
        SqlOutbox(db),
        Outgoing(
            dedupe_key=key,
            chat_id=chat_id,
            category=Category.TRANSACTIONAL,
            kind="test",
            content={"text": f"message {key}"},
        ),
        clock=SystemClock(),
    )


async def states(db: Database) -> dict[int, str]:
    async with db.read() as conn:
        rows = await conn.execute(select(outbox.c.chat_id, outbox.c.state))
        return {chat: state for chat, state in rows.all()}


async def until(check: Callable[[], Awaitable[bool]], *, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


def received(tg: FakeTelegram, chats: list[int]) -> Counter[int]:
    return Counter({chat: len(tg.sent(chat)) for chat in chats})


async def test_i17_7_a_refused_sending_mark_leaks_nothing_and_delivery_resumes(
    db: Database, renderer: Renderer, i18n: CatalogI18n, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with FakeTelegram() as tg:
        bot = tg.bot()
        sender = OutboxSender(
            db=db,
            bot=bot,
            renderer=renderer,
            i18n=i18n,
            rules=Rules(
                delivery=Delivery(
                    rate_per_second=100, private_interval_seconds=0.0, idle_poll_seconds=0.1
                ),
                quiet_hours=ALWAYS,
            ),
            clock=SystemClock(),
            shop_zone=ZoneInfo("UTC"),
            worker_id="outage",
        )
        first = list(range(60_001, 60_013))
        later = list(range(60_101, 60_108))
        for chat in first + later:
            tg.user(chat, known=True)
        await refuse_sending(db)
        running = asyncio.create_task(sender.run())
        try:
            for chat in first:
                await queue(db, f"gift-{chat}", chat)
            # Far more failed marks than in-flight slots (8): each used to leak its slots.
            await asyncio.sleep(3)
            assert received(tg, first + later).total() == 0
            await allow_sending(db)
            for chat in later:
                await queue(db, f"bonus-{chat}", chat)

            async def all_sent() -> bool:
                return set((await states(db)).values()) == {"sent"}

            await until(all_sent, timeout=15)

            async def said_back() -> bool:
                return any(r.getMessage().startswith(BACK) for r in caplog.records)

            await until(said_back, timeout=5)  # once nothing failed for a second
        finally:
            sender.stop()
            await running
            await bot.session.close()
        assert received(tg, first + later) == Counter(dict.fromkeys(first + later, 1))
    log = [r.getMessage() for r in caplog.records if r.name == "storage.database"]
    assert len([line for line in log if line.startswith(AWAY)]) == 1, log
    assert len([line for line in log if line.startswith(BACK)]) == 1, log


# ---- end to end: the real bot process ----------------------------------------------------


Backend = tuple[str, Database]


@pytest.fixture(params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A URL the bot process opens, and the test's own handle on the same database."""
    if request.param == "sqlite":
        path = tmp_path / "data" / "bot.sqlite3"
        async with sqlite_database(path) as db:
            yield f"sqlite:///{path}", db
    else:
        async with postgres_role_database() as (url, db):
            await migrate(db)
            yield url, db


async def start_bot(tg: FakeTelegram, tmp_path: Path, url: str) -> BotProcess:
    (tmp_path / "config.toml").write_text(CONFIG, encoding="utf-8")
    bot = BotProcess(
        workdir=tmp_path,
        env={
            "BOT_TOKEN": tg.token,
            "TELEGRAM_API_BASE": tg.base_url,
            "DATABASE_URL": url,
            "ADMIN_IDS": "9001",
        },
    )
    await bot.start()
    await bot.wait_for_log("is polling")
    return bot


async def test_i17_7_e2e_sending_marks_refused_for_seconds_then_everything_goes_once(
    backend: Backend, tmp_path: Path
) -> None:
    url, db = backend
    first = list(range(61_001, 61_013))  # a gift's messages
    later = list(range(61_101, 61_108))  # /bonus notices queued after the database is back
    async with FakeTelegram(token="123456:OUTAGE") as tg:
        for chat in first + later:
            tg.user(chat, known=True)
        bot = await start_bot(tg, tmp_path, url)
        try:
            await refuse_sending(db)
            for chat in first:
                await queue(db, f"gift-{chat}", chat)
            await bot.wait_for_log(AWAY, timeout=10)
            await asyncio.sleep(4)
            assert received(tg, first).total() == 0
            await allow_sending(db)
            for chat in later:
                await queue(db, f"bonus-{chat}", chat)

            async def all_sent() -> bool:
                return set((await states(db)).values()) == {"sent"}

            await until(all_sent, timeout=10)
            await bot.wait_for_log(BACK, timeout=10)
        finally:
            assert await bot.stop() == 0
        assert received(tg, first + later) == Counter(dict.fromkeys(first + later, 1))
        output = bot.output()
        assert output.count(AWAY) == 1, output
        assert output.count(BACK) == 1, output
        assert "Traceback" not in output, output


async def test_i17_7_e2e_postgres_backends_killed_mid_broadcast_then_everyone_gets_it_once(
    tmp_path: Path,
) -> None:
    recipients = list(range(62_000, 62_150))
    async with postgres_role_database() as (url, db):
        await migrate(db)
        role = url.partition("://")[2].partition("@")[0]
        now = datetime.now(UTC)
        async with db.transaction() as conn:
            await conn.execute(
                insert(customers),
                [
                    {
                        "telegram_id": chat,
                        "created_at": now,
                        "last_seen_at": now,
                        "joined_at": now,
                        "marketing_opt_in": True,
                    }
                    for chat in recipients
                ],
            )
        async with FakeTelegram(token="123456:KILLED") as tg:
            for chat in recipients:
                tg.user(chat, known=True)
            tg.user(9001, "Olga", known=True)
            tg.slow_next("sendMessage", 0.05, times=100_000)
            bot = await start_bot(tg, tmp_path, url)
            try:
                await launch(
                    SqlSegments(db),
                    SqlBroadcasts(db),
                    admin_id=9001,
                    segment=Segment(SegmentKind.ALL),
                    variants={"A": Variant(text="Autumn sale")},
                    rules=Rules(),
                    clock=SystemClock(),
                    seed=5,
                )
                async with asyncio.timeout(30):
                    while received(tg, recipients).total() < 20:
                        await asyncio.sleep(0.05)
                await db.close()  # the test's own connections would be killed too
                # The rate limit (50 a second) needs over 2.5 s for the other 130 messages,
                # so 2 s of killing always lands mid-run, however fast the machine.
                killed = await kill_backends_for(role, seconds=2)
                assert killed >= 3
                assert received(tg, recipients).total() < len(recipients), "killed mid-run"

                async def done() -> bool:
                    now = await states(db)
                    return len(now) == len(recipients) and set(now.values()) <= {"sent", "unknown"}

                await until(done, timeout=30)
                await bot.wait_for_log(BACK, timeout=10)
                final = await states(db)
            finally:
                assert await bot.stop() == 0
            got = received(tg, recipients)
            output = bot.output()
    # Outcomes are written again until they go in, and marks that failed are taken back:
    # every message went out exactly once and is recorded as sent.
    assert set(final.values()) == {"sent"}
    assert got == Counter(dict.fromkeys(recipients, 1))
    assert output.count(AWAY) == 1, output
    assert output.count(BACK) == 1, output
