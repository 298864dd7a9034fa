"""kill -9 in the middle of a broadcast: the restarted bot finishes it, nobody gets a double."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from scenarios.broadcasts import Variant, launch
from scenarios.clock import SystemClock
from scenarios.rules import Rules
from scenarios.segments import Segment, SegmentKind
from storage.broadcasts import SqlBroadcasts
from storage.outbox import SqlOutbox
from storage.schema import customers, outbox
from storage.segments import SqlSegments
from tests.fake_telegram import FakeTelegram, RateLimits
from tests.support.bot_process import BotProcess
from tests.support.databases import sqlite_database

pytestmark = pytest.mark.e2e

RECIPIENTS = list(range(70_000, 70_400))
CONCURRENCY = 8
ADMIN = 9001
CONFIG = f"""
[broadcasts]
progress_every_seconds = 1.0

[quiet_hours]
start = "00:00"
end = "00:00"

[delivery]
rate_per_second = 80.0
concurrency = {CONCURRENCY}
"""


def delivered(tg: FakeTelegram) -> int:
    return sum(1 for call in tg.calls_to("sendMessage") if call.status == 200)


async def test_a_killed_bot_resumes_delivery_and_sends_nothing_twice(tmp_path: Path) -> None:
    database = tmp_path / "data" / "bot.sqlite3"
    async with sqlite_database(database) as db:
        now = SystemClock().now()
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
                    for chat in RECIPIENTS
                ],
            )
        _, total = await launch(
            SqlSegments(db),
            SqlBroadcasts(db),
            admin_id=ADMIN,
            segment=Segment(SegmentKind.ALL),
            variants={"A": Variant(text="<b>Autumn sale</b>: -20% on cat food")},
            rules=Rules(),
            clock=SystemClock(),
            seed=5,
        )
        assert total == len(RECIPIENTS)
    (tmp_path / "config.toml").write_text(CONFIG, encoding="utf-8")

    limits = RateLimits(global_per_second=100, mode="count")
    async with FakeTelegram(token="123456:CRASH-TOKEN", limits=limits) as tg:
        for chat in RECIPIENTS:
            tg.user(chat, known=True)
        tg.user(ADMIN, "Olga", known=True)
        # Slow answers keep several requests in flight when the axe falls.
        tg.slow_next("sendMessage", 0.15, times=10_000)
        env = {
            "BOT_TOKEN": tg.token,
            "TELEGRAM_API_BASE": tg.base_url,
            "DATABASE_URL": f"sqlite:///{database}",
            "ADMIN_IDS": str(ADMIN),
        }
        first = BotProcess(workdir=tmp_path, env=env)
        await first.start()
        async with asyncio.timeout(60):
            while delivered(tg) < 120:
                await asyncio.sleep(0.05)
        await first.kill()
        delivered_before_restart = delivered(tg)
        assert delivered_before_restart < len(RECIPIENTS), "the crash must come mid-run"

        second = BotProcess(workdir=tmp_path, env=env)
        await second.start()
        try:
            async with sqlite_database(database, migrated=False) as db:
                queue = SqlOutbox(db)
                async with asyncio.timeout(90):
                    while True:
                        counts = await queue.counts()
                        if set(counts) <= {"sent", "unknown"}:
                            break
                        await asyncio.sleep(0.2)
                # The admin's report waits for the conversion window to close (days: see
                # test_flows_broadcast); here what counts is what reached the recipients.
                async with db.read() as conn:
                    rows = (await conn.execute(select(outbox.c.chat_id, outbox.c.state))).all()
        finally:
            assert await second.stop() == 0
        got = Counter({chat: len(tg.sent(chat)) for chat in RECIPIENTS})
        states = dict(rows)
        unknown = [chat for chat, state in states.items() if state == "unknown"]
        # Requests were in flight at the kill (answers are slow): reported, bounded, not resent.
        assert 1 <= len(unknown) <= CONCURRENCY
        assert f"{len(unknown)} in flight when the previous sender stopped" in second.output()
        assert max(got.values()) == 1, "nobody may receive the same message twice"
        for chat in RECIPIENTS:
            if states[chat] == "sent":
                assert got[chat] == 1
        # Unknown ones were in flight at the crash: each arrived once or not at all.
        assert sum(got.values()) >= len(RECIPIENTS) - len(unknown)
        assert tg.violations == {"global": 0, "private": 0, "group": 0}
        assert counts["sent"] + len(unknown) == len(RECIPIENTS)
