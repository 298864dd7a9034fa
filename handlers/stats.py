"""/stats for admins: what the engagement features achieved, one template partial per feature."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from handlers.filters import IsAdmin
from locales.rendering import Renderer
from scenarios.reminders import reminder_stats
from storage.reminders import SqlReminders


def create_router() -> Router:
    router = Router(name="stats")
    router.message.filter(F.chat.type == "private")
    router.message.register(show_stats, Command("stats"), IsAdmin())
    router.message.register(refuse, Command("stats"), ~IsAdmin())
    return router


async def show_stats(
    message: Message, renderer: Renderer, locale: str, reminders: SqlReminders
) -> None:
    await message.answer(
        renderer.render("stats.html", locale=locale, reminders=await reminder_stats(reminders))
    )


async def refuse(message: Message) -> None:
    await message.answer(_("Sorry, this command is not allowed for you."))
