"""End to end: /balance, /history and an admin's /bonus over HTTP against the fake Telegram."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import update

from scenarios.clock import SystemClock
from scenarios.ledger import PointsLedger
from scenarios.rules import Rules
from scenarios.tiers import TierLadder
from storage.ledger import EntryKind, SqlLedger
from storage.schema import customers
from tests.fake_telegram import FakeTelegram
from tests.support.bot_process import BotProcess
from tests.support.databases import sqlite_database
from tests.support.seed import member

pytestmark = pytest.mark.e2e

ADMIN_ID = 9001


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token="123456:E2E-TOKEN", bot_username="lapki_bot") as fake:
        yield fake


def plain(text: str | None) -> str:
    return (text or "").replace("\xa0", " ").replace("\u202f", " ")


async def seed(workdir: Path) -> None:
    """A member with 250 points, in the database the bot will open."""
    (workdir / "data").mkdir()
    async with sqlite_database(workdir / "data" / "bot.sqlite3") as db:
        customer_id = await member(db, 1001)
        async with db.transaction() as conn:
            await conn.execute(
                update(customers)
                .where(customers.c.id == customer_id)
                .values(phone="+79991234567", first_name="Anna")
            )
        rules = Rules()
        ladder = TierLadder.from_rules(rules.bonus, currency="RUB")
        ledger = PointsLedger(SqlLedger(db), bonus=rules.bonus, ladder=ladder, clock=SystemClock())
        await ledger.grant(
            customer_id=customer_id,
            kind=EntryKind.WELCOME,
            source=f"customer:{customer_id}",
            points=250,
            reason="welcome",
        )


async def test_balance_history_and_a_confirmed_bonus_reach_the_customer(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    await seed(tmp_path)
    bot = BotProcess(
        workdir=tmp_path,
        env={
            "BOT_TOKEN": tg.token,
            "TELEGRAM_API_BASE": tg.base_url,
            "ADMIN_IDS": str(ADMIN_ID),
            "DATABASE_URL": f"sqlite:///{tmp_path}/data/bot.sqlite3",
        },
    )
    await bot.start()
    try:
        await bot.wait_for_log("is polling")
        anna = tg.user(1001, "Anna", language_code="ru")
        admin = tg.user(ADMIN_ID, "Olga", language_code="en")

        await anna.command("balance")
        [shown] = await tg.wait_for(anna)
        assert plain(shown.text).startswith("Ваши бонусы\nДоступно: 250 бонусов\n")
        await anna.command("history")
        history = (await tg.wait_for(anna, count=2))[-1]
        assert "+250 бонусов — приветственный бонус" in plain(history.text)

        await admin.command("bonus", "+7 999 123-45-67 +100 sorry for the delay")
        [preview] = await tg.wait_for(admin)
        assert "Available: 250 points → 350 points" in plain(preview.text)
        asked = preview.text
        press = await admin.press_button(preview, text="✅ Confirm")
        await tg.wait_callback_answer(press)
        async with asyncio.timeout(5):  # the answer comes first, then the edit
            while (done := tg.message(admin, preview.message_id)).text == asked:
                await asyncio.sleep(0.05)
        assert plain(done.text) == (
            "Done: +100 points for Anna. Available now: 350 points. The customer is told."
        )

        # The outbox sender delivers the notice in Anna's language.
        told = (await tg.wait_for(anna, count=3, timeout=15))[-1]
        assert plain(told.text) == (
            "Магазин начислил вам 100 бонусов: sorry for the delay\nДоступно сейчас: 350 бонусов"
        )
        await anna.command("balance")
        again = (await tg.wait_for(anna, count=4))[-1]
        assert "Доступно: 350 бонусов" in plain(again.text)

        stranger = tg.user(1005, "Eve", language_code="en")
        await stranger.command("bonus", "tg:1001 +1000 mine")
        [refused] = await tg.wait_for(stranger)
        assert refused.text == "This command is for the shop's admins."
    finally:
        status = await bot.stop()
    assert status == 0, bot.output()
