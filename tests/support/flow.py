"""Flow harness: real Update objects through the real Dispatcher, answers recorded in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from aiogram.methods import TelegramMethod
from aiogram.types import Message, Update

from bot.dispatcher import create_dispatcher
from bot.fsm_storage import DatabaseFsmStorage
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import Clock
from scenarios.rules import Rules
from storage.database import Database
from tests.support.recording_session import RecordingSession
from tests.support.services import services_for
from tests.support.updates import TgUser, Updates

BOT_TOKEN = "123456:TEST-TOKEN"


@dataclass
class Flow:
    dispatcher: Dispatcher
    bot: Bot
    session: RecordingSession
    db: Database
    updates: Updates = field(default_factory=Updates)

    async def feed(self, update: Update) -> list[TelegramMethod[Any]]:
        """Handle one update; returns the API calls the bot made while handling it."""
        start = len(self.session.requests)
        await self.dispatcher.feed_update(self.bot, update)
        return self.session.requests[start:]

    async def send(self, user: TgUser, text: str) -> list[TelegramMethod[Any]]:
        return await self.feed(self.updates.message(user, text))

    async def press(
        self, user: TgUser, data: str, *, message: Message | None = None
    ) -> list[TelegramMethod[Any]]:
        return await self.feed(self.updates.callback(user, data, message=message))

    def message_from(self, method: TelegramMethod[Any]) -> Message:
        """The Message Telegram would return for a recorded send, to press its buttons."""
        return Message.model_validate(
            {
                "message_id": 500,
                "date": int(datetime.now(UTC).timestamp()),
                "chat": {"id": method.chat_id, "type": "private"},  # type: ignore[attr-defined]
                "text": method.text,  # type: ignore[attr-defined]
                "reply_markup": method.reply_markup.model_dump()  # type: ignore[attr-defined]
                if method.reply_markup is not None  # type: ignore[attr-defined]
                else None,
            }
        )


def build_flow(
    *,
    db: Database,
    clock: Clock,
    i18n: CatalogI18n,
    renderer: Renderer,
    admin_ids: tuple[int, ...] = (),
    rules: Rules | None = None,
    staff_chat_id: int | None = None,
    session: RecordingSession | None = None,
) -> Flow:
    session = session or RecordingSession()
    bot = Bot(BOT_TOKEN, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    services = services_for(
        db,
        rules=rules,
        clock=clock,
        i18n=i18n,
        renderer=renderer,
        admin_ids=admin_ids,
        staff_chat_id=staff_chat_id,
    )
    dispatcher = create_dispatcher(
        services=services,
        fsm_storage=DatabaseFsmStorage(services.fsm_states, clock),
        version="test",
        started_at=clock.now(),
    )
    return Flow(dispatcher=dispatcher, bot=bot, session=session, db=db)
