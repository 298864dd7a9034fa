"""End to end: the real bot process (python main.py) talking HTTP to the fake Telegram only."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.fake_telegram import FakeTelegram
from tests.support.bot_process import BotProcess

pytestmark = pytest.mark.e2e

ADMIN_ID = 9001


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token="123456:E2E-TOKEN", bot_username="lapki_bot") as fake:
        yield fake


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bot_env(tg: FakeTelegram, workdir: Path, **extra: str) -> dict[str, str]:
    return {
        "BOT_TOKEN": tg.token,
        "TELEGRAM_API_BASE": tg.base_url,
        "ADMIN_IDS": str(ADMIN_ID),
        "DATABASE_URL": f"sqlite:///{workdir}/data/bot.sqlite3",
        **extra,
    }


async def test_the_bot_answers_start_in_each_users_language_and_stops_cleanly(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    (tmp_path / "config.toml").write_text('[shop]\nname = "Lapki"\n', encoding="utf-8")
    api_port = free_port()
    bot = BotProcess(
        workdir=tmp_path,
        env=bot_env(tg, tmp_path, API_TOKEN="shop-secret", API_PORT=str(api_port)),
    )
    await bot.start()
    try:
        await bot.wait_for_log("is polling")
        # The shop's HTTP API runs in the same process.
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{api_port}"
            async with http.get(f"{base}/healthz") as health:
                assert (health.status, await health.json()) == (200, {"status": "ok"})
            async with http.get(f"{base}/api/v1/customers/tg:1001") as anonymous:
                assert anonymous.status == 401
        anna = tg.user(1001, "Anna", language_code="ru")
        taras = tg.user(1002, "Тарас", language_code="uk")
        john = tg.user(1003, "John", language_code="en-GB")
        for user in (anna, taras, john):
            await user.command("start")
        [ru] = await tg.wait_for(anna)
        [uk] = await tg.wait_for(taras)
        [en] = await tg.wait_for(john)
        assert ru.text is not None
        assert ru.text.startswith("Здравствуйте, Anna!\nЭто бонусная программа магазина Lapki.")
        assert ru.html is not None
        assert "<b>Lapki</b>" in ru.html
        assert uk.text is not None
        assert uk.text.startswith("Вітаємо, Тарас!")
        assert en.text is not None
        assert en.text.startswith("Hello, John!\nThis is the bonus program of Lapki.")

        # The menus: per language for customers, the admin's own list in their chat.
        assert [c["description"] for c in tg.commands("default", "uk")][:4] == [
            "Почати та приєднатися до бонусної програми",
            "Моя картка учасника",
            "Мої бали, рівень і кешбек",
            "Історія моїх балів",
        ]
        admin_menu = tg.commands({"type": "chat", "chat_id": ADMIN_ID}, "ru")
        assert [c["command"] for c in admin_menu] == [
            "start",
            "card",
            "balance",
            "history",
            "code",
            "invite",
            "birthday",
            "lang",
            "settings",
            "reminders",
            "help",
            "stop",
            "my_data",
            "delete_me",
            "status",
            "broadcast",
            "broadcasts",
            "bonus",
            "customer",
            "gift",
            "stats",
            "export",
        ]

        # /lang round trip over real HTTP: the button edits the message and sticks.
        await john.command("lang")
        offer = (await tg.wait_for(john, count=2))[-1]
        press = await john.press_button(offer, text="Українська")
        await tg.wait_callback_answer(press)
        edited = tg.message(john, offer.message_id)
        assert edited.text == "Готово! Тепер бот розмовляє з вами українською."
        await john.command("start")
        again = (await tg.wait_for(john, count=3))[-1]
        assert again.text is not None
        assert again.text.startswith("Вітаємо, John!")
    finally:
        status = await bot.stop()
    assert status == 0, bot.output()
    assert "stopped" in bot.output()
    assert tg.token not in bot.output(), "the token must never be logged"
    assert (tmp_path / "data" / "bot.sqlite3").exists()
