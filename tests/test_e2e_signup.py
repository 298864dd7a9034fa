"""End to end: joining, the card, an invitation, /stop and /delete_me with the real bot process
(python main.py) against the fake Telegram."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fake_telegram import FakeTelegram
from tests.support.bot_process import BotProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token="123456:E2E-TOKEN", bot_username="lapki_bot") as fake:
        yield fake


def rows(workdir: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(workdir / "data" / "bot.sqlite3") as conn:
        return conn.execute(sql).fetchall()


async def test_a_customer_joins_invites_a_friend_stops_offers_and_leaves(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    (tmp_path / "config.toml").write_text(
        '[shop]\nname = "Lapki"\nterms_url = "https://lapki.example/terms"\n'
        "[signup]\nwelcome_points = 50\n",
        encoding="utf-8",
    )
    bot = BotProcess(
        workdir=tmp_path,
        env={
            "BOT_TOKEN": tg.token,
            "TELEGRAM_API_BASE": tg.base_url,
            "DATABASE_URL": f"sqlite:///{tmp_path}/data/bot.sqlite3",
        },
    )
    await bot.start()
    try:
        await bot.wait_for_log("is polling")
        anna = tg.user(3001, "Анна", language_code="ru")
        await anna.command("start")
        [welcome] = await tg.wait_for(anna)
        assert welcome.text is not None
        assert welcome.text.startswith(
            "Здравствуйте, Анна!\nЭто бонусная программа магазина Lapki."
        )
        assert welcome.button_texts == [
            "📄 Условия программы",
            "⬜ Предложения и новости",
            "✅ Принять условия и вступить",
            "Нет, спасибо",
        ]
        await tg.wait_callback_answer(
            await anna.press_button(welcome, text="✅ Принять условия и вступить")
        )
        ask = (await tg.wait_for(anna, count=2))[-1]
        assert ask.button_texts == ["📱 Поделиться номером телефона"]
        await anna.press_button(ask, text="📱 Поделиться номером телефона")
        saved, question = (await tg.wait_for(anna, count=4))[-2:]
        assert saved.text == "Вы в программе! Номер телефона сохранён."
        assert question.button_texts == ["Пропустить"]
        await anna.press_button(question, text="Пропустить")
        card = (await tg.wait_for(anna, count=5))[-1]
        assert card.photo is not None
        assert card.caption is not None
        assert card.caption.startswith(
            "Добро пожаловать в программу! 50 бонусов уже ваши.\nВаша карта участника: 2 "
        )
        # A random number (#18.7), not the one "29" + the customer id spells.
        assert "2 900000 000018" not in card.caption

        await anna.command("invite")
        invite = (await tg.wait_for(anna, count=6))[-1]
        assert invite.text is not None
        link = invite.text.split("\n")[1]
        assert link.startswith("https://t.me/lapki_bot?start=")

        ivan = tg.user(3002, "Ivan", language_code="en")
        await ivan.command("start", link.rsplit("=", 1)[1])
        [hello] = await tg.wait_for(ivan)
        await ivan.press_button(hello, text="✅ Accept the terms and join")
        ask = (await tg.wait_for(ivan, count=2))[-1]
        await ivan.press_button(ask, text="📱 Share my phone number")
        question = (await tg.wait_for(ivan, count=4))[-1]
        await ivan.send("7.7.1991")
        card = (await tg.wait_for(ivan, count=6))[-1]
        assert card.photo is not None
        # Anna hears that her friend joined, and what the reward waits for.
        joined = (await tg.wait_for(anna, count=7))[-1]
        assert joined.text is not None
        assert joined.text.startswith("🤝 Друг присоединился к бонусной программе по вашей ссылке.")

        await anna.command("stop")
        stopped = (await tg.wait_for(anna, count=8))[-1]
        assert stopped.button_texts == ["🔔 Снова включить предложения"]
        await anna.command("delete_me")
        confirm = (await tg.wait_for(anna, count=9))[-1]
        await tg.wait_callback_answer(
            await anna.press_button(confirm, text="Да, удалить мои данные")
        )
        async with asyncio.timeout(5):
            while not tg.message(anna, confirm.message_id).edits:
                await asyncio.sleep(0.05)
        goodbye = tg.message(anna, confirm.message_id)
        assert goodbye.text is not None
        assert goodbye.text.startswith("Ваши личные данные удалены.")
    finally:
        status = await bot.stop()
    assert status == 0, bot.output()
    assert question.button_texts == ["Skip"]
    assert rows(
        tmp_path, "SELECT id, telegram_id, phone, erased_at IS NOT NULL FROM customers"
    ) == [
        (1, None, None, 1),
        (2, 3002, "+79990003002", 0),
    ]
    assert rows(tmp_path, "SELECT referee_id, referrer_id, state FROM referrals") == [
        (2, 1, "joined")
    ]
    assert rows(tmp_path, "SELECT birthday_day, birthday_month, birthday_year FROM customers") == [
        (None, None, None),
        (7, 7, 1991),
    ]
    assert rows(tmp_path, "SELECT action, customer_id FROM audit_log") == [("erasure", 1)]
