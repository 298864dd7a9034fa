"""Whatever no feature claimed: a private message gets a pointer to /help instead of silence,
a button nothing knows (out of date, or forged data) a short answer instead of a spinner."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from handlers.flags import READS_ONLY


def create_router() -> Router:
    router = Router(name="fallback")
    router.message.register(point_to_help, F.chat.type == "private", flags=READS_ONLY)
    router.callback_query.register(unknown_button, flags=READS_ONLY)
    return router


async def unknown_button(callback: CallbackQuery) -> None:
    await callback.answer(
        _("This button is out of date. Send /start to begin again."), show_alert=True
    )


async def point_to_help(message: Message) -> None:
    if message.text and message.text.startswith("/"):
        await message.answer(_("I don't know this command. /help shows what I can do."))
    else:
        await message.answer(_("I didn't understand that. /help shows what I can do."))
