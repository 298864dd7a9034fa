"""Per-update plumbing: one database transaction, and the customer behind the update."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Chat, TelegramObject, Update, User

from scenarios.clock import Clock
from scenarios.customers import TelegramUser, recognise
from scenarios.reachability import chat_returned
from storage.customers import SqlCustomers
from storage.database import Database

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UnitOfWorkMiddleware(BaseMiddleware):
    """Everything an update changes is committed together, or not at all if handling fails."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async with self.db.transaction():
            return await handler(event, data)


class CustomerMiddleware(BaseMiddleware):
    """Recognises the Telegram user as a customer (created on first contact) for the handlers."""

    def __init__(self, customers: SqlCustomers, clock: Clock) -> None:
        self.customers = customers
        self.clock = clock

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        if user is not None and not user.is_bot:
            customer = await recognise(
                self.customers,
                user=TelegramUser(
                    id=user.id,
                    first_name=user.first_name,
                    username=user.username,
                    language_code=user.language_code,
                ),
                clock=self.clock,
            )
            if customer.blocked_at is not None and _writes_to_us(event, chat):
                # Someone who writes to the bot has evidently not blocked it (any more).
                await chat_returned(self.customers, telegram_id=user.id)
            data["customer"] = customer
        return await handler(event, data)


def _writes_to_us(update: TelegramObject, chat: Chat | None) -> bool:
    """A message or button press in the private chat; a block notice itself does not count."""
    if chat is None or chat.type != "private" or not isinstance(update, Update):
        return False
    return update.message is not None or update.callback_query is not None
