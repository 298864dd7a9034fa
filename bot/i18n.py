"""Picks each update's language: the customer's /lang choice, else Telegram's, else the default."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram.types import TelegramObject
from aiogram.utils.i18n import I18nMiddleware

from scenarios.customers import resolve_locale
from storage.customers import CustomerRecord


class CustomerLocaleMiddleware(I18nMiddleware):
    """The locale of the customer behind the event: /lang choice, else Telegram's, else default.

    Runs after the customer middleware, which puts the ``customer`` record into ``data``.
    """

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
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
