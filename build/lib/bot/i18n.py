"""Picks each update's language: the customer's /lang choice, else Telegram's, else the default."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram.types import Chat, TelegramObject
from aiogram.utils.i18n import I18nMiddleware

from scenarios.customers import resolve_locale
from scenarios.rules import Rules
from storage.customers import CustomerRecord


class CustomerLocaleMiddleware(I18nMiddleware):
    """The locale of the customer behind the event: /lang choice, else Telegram's, else default.
    In the staff chat, the staff's one language (``staff.locale``) for everyone.

    Runs after the customer middleware, which puts the ``customer`` record into ``data``.
    """

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        chat: Chat | None = data.get("event_chat")
        staff_chat_id: int | None = data.get("staff_chat_id")
        rules: Rules | None = data.get("rules")
        if chat is not None and staff_chat_id is not None and chat.id == staff_chat_id:
            return (
                rules.staff.locale_or(self.i18n.default_locale)
                if rules
                else self.i18n.default_locale
            )
        customer: CustomerRecord | None = data.get("customer")
        if customer is None:
            return self.i18n.default_locale
        return resolve_locale(
            chosen=customer.locale,
            language_code=customer.language_code,
            default=self.i18n.default_locale,
        )

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        locale = await self.get_locale(event, data)
        data["locale"] = locale
        data["i18n"] = self.i18n
        with self.i18n.context(), self.i18n.use_locale(locale):
            return await handler(event, data)
