"""The last resort: log a failed update and tell the person, in their language, to try again."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramNetworkError
from aiogram.types import ErrorEvent
from aiogram.utils.i18n import I18n

from scenarios.customers import resolve_locale

log = logging.getLogger(__name__)


def create_router() -> Router:
    router = Router(name="errors")
    router.errors.register(apologise)
    return router


async def apologise(event: ErrorEvent, bot: Bot, i18n: I18n) -> None:
    update = event.update
    log.error(
        "update %s failed; what it had not committed yet was rolled back",
        update.update_id,
        exc_info=(type(event.exception), event.exception, event.exception.__traceback__),
    )
    if isinstance(event.exception, TelegramNetworkError):
        # A reply that timed out may well have reached the person, and what it said was
        # committed before it left: "try again" now could contradict it or double an action.
        return
    message = update.message or (update.callback_query.message if update.callback_query else None)
    user = (
        update.message.from_user
        if update.message
        else (update.callback_query.from_user if update.callback_query else None)
    )
    if message is None or message.chat.type != "private":
        return
    locale = resolve_locale(
        chosen=None,
        language_code=user.language_code if user else None,
        default=i18n.default_locale,
    )
    with i18n.use_locale(locale):
        text = i18n.gettext(
            "Sorry, something went wrong on our side. Please try again in a minute."
        )
    if update.callback_query is not None:
        await update.callback_query.answer(text, show_alert=True)
    else:
        await bot.send_message(message.chat.id, text)
