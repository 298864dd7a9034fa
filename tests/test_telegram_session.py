"""The Bot API session keeps the response models it builds: a reply never pays for building
its response class again after the garbage collector ran."""

from __future__ import annotations

import gc
import weakref

from aiogram import Bot
from aiogram.methods.base import Response
from aiogram.types import Message

from bot.telegram_session import TelegramSession
from tests.fake_telegram import FakeTelegram


async def test_the_response_model_of_a_reply_outlives_a_garbage_collection() -> None:
    async with FakeTelegram() as tg:
        tg.user(501, known=True)
        bot = Bot(tg.token, session=TelegramSession(api=tg.api_server))
        try:
            sent = await bot.send_message(501, "first")
            model = weakref.ref(Response[Message])
            gc.collect()
            assert model() is not None  # pydantic's weak cache still has it
            again = await bot.send_message(501, "second")
        finally:
            await bot.session.close()
    assert [sent.text, again.text] == ["first", "second"]
    assert [m.text for m in tg.sent(501)] == ["first", "second"]
