"""End to end: an order posted to the shop API becomes a reminder in the fake Telegram, and its
buttons do what they say (the real Dispatcher polling, the real sender, real HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiogram import Bot, Dispatcher

from bot.delivery.sender import OutboxSender
from bot.dispatcher import create_dispatcher
from bot.fsm_storage import DatabaseFsmStorage
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import SystemClock
from scenarios.rules import QuietHours, Rules
from storage.database import Database
from storage.fsm import SqlFsmStates
from tests.fake_telegram import FakeTelegram
from tests.support.reminders import add_member, add_product, open_shop, reminder_rows
from tests.support.services import services_for

pytestmark = pytest.mark.e2e

# No quiet hours: this test runs at any time of day on the real clock.
RULES = Rules(quiet_hours=QuietHours(start=QuietHours().end, end=QuietHours().end))
STAFF_CHAT = -1001234


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token="123456:E2E-TOKEN", bot_username="lapki_bot") as fake:
        yield fake


async def test_an_order_from_the_api_becomes_a_reminder_whose_buttons_work(
    tg: FakeTelegram, sqlite_db: Database, i18n: CatalogI18n, renderer: Renderer
) -> None:
    db, clock = sqlite_db, SystemClock()
    now = clock.now()
    await add_product(db, "LITTER", name="Litter 10 l", at=now, days=20)
    await add_product(db, "CAT", name="Cat food", at=now, days=30, url="https://shop.example/cat")
    await add_member(db, 501, at=now - timedelta(days=60), first_name="Anna")
    anna = tg.user(501, "Anna", language_code="en", known=True)
    tg.group(STAFF_CHAT, "Staff")

    bot: Bot = tg.bot()
    dispatcher: Dispatcher = create_dispatcher(
        services=services_for(
            db, rules=RULES, clock=clock, i18n=i18n, renderer=renderer, staff_chat_id=STAFF_CHAT
        ),
        fsm_storage=DatabaseFsmStorage(SqlFsmStates(db), clock),
        version="e2e",
        started_at=now,
    )
    sender = OutboxSender(
        db=db,
        bot=bot,
        renderer=renderer,
        i18n=i18n,
        rules=RULES,
        clock=clock,
        shop_zone=ZoneInfo("UTC"),
        worker_id="e2e",
    )
    sweeper = services_for(
        db, i18n=i18n, rules=RULES, clock=clock, zone=ZoneInfo("UTC")
    ).reminder_sweeper
    polling = asyncio.create_task(dispatcher.start_polling(bot, handle_signals=False))
    try:
        async with open_shop(db, clock=clock, rules=RULES) as shop:
            # Bought 18 days ago: litter lasts 20 days, so the reminder was due yesterday.
            ordered = datetime.now(UTC) - timedelta(days=18)
            await shop.order(501, [("LITTER", 1), ("CAT", 1)], at=ordered, ref="A-1001")
        assert await sweeper.tick() == 1
        await sender.drain_until_empty()

        [reminder] = await tg.wait_for(anna)
        assert reminder.text is not None
        assert reminder.text.startswith("Your Litter 10 l should be running low soon.")
        assert reminder.reply_markup is not None
        labels = [
            [button["text"] for button in row] for row in reminder.reply_markup["inline_keyboard"]
        ]
        assert labels == [
            ["🛒 Reorder: Litter 10 l"],
            ["⏰ In 3 days", "⏰ In 7 days", "🚫 I don't need this"],
        ]

        # Remind me in 7 days: the answer says so and the reminder waits a week.
        pressed = await anna.press_button(reminder, text="⏰ In 7 days")
        answer = await tg.wait_callback_answer(pressed)
        assert answer.text == "OK, I will remind you about Litter 10 l in 7 days."
        litter = next(r for r in await reminder_rows(db) if r["sku"] == "LITTER")
        assert litter["state"] == "snoozed"
        assert litter["due_at"] - clock.now() > timedelta(days=6, hours=23)

        # Reorder without a link: the staff chat gets the request with the customer and item.
        pressed = await anna.press_button(reminder, text="🛒 Reorder: Litter 10 l")
        answer = await tg.wait_callback_answer(pressed)
        assert answer.text == "Thank you! The shop will contact you about your order."
        await sender.drain_until_empty()
        [request] = await tg.wait_for(STAFF_CHAT)
        assert request.text is not None
        assert request.text.startswith("🛒 Reorder request\nCustomer: Anna, card ")
        assert "Wants to reorder: Litter 10 l (LITTER), last time 1 pcs." in request.text
    finally:
        await dispatcher.stop_polling()
        await polling
        await bot.session.close()
