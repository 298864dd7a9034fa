"""/stats for admins: each feature contributes its figures (ratings, reminders) to one message."""

from __future__ import annotations

from datetime import timedelta

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _
from babel.dates import format_timedelta

from handlers.filters import IsAdmin
from handlers.flags import READS_ONLY
from locales.rendering import Renderer
from scenarios.clock import Clock
from scenarios.reminders import reminder_stats
from storage.ratings import SqlRatings
from storage.reminders import SqlReminders


def create_router() -> Router:
    router = Router(name="stats")
    router.message.filter(F.chat.type == "private")
    router.message.register(show_stats, Command("stats"), IsAdmin(), flags=READS_ONLY)
    router.message.register(refuse, Command("stats"), ~IsAdmin(), flags=READS_ONLY)
    return router


async def show_stats(
    message: Message,
    renderer: Renderer,
    locale: str,
    ratings: SqlRatings,
    clock: Clock,
    reminders: SqlReminders,
) -> None:
    rated = await ratings.stats(now=clock.now())
    median = (
        format_timedelta(
            timedelta(seconds=rated.median_resolve_seconds), threshold=1.5, locale=locale
        )
        if rated.median_resolve_seconds is not None
        else None
    )
    await message.answer(
        renderer.render(
            "stats.html",
            locale=locale,
            ratings=rated,
            median=median,
            reminders=await reminder_stats(reminders),
        )
    )


async def refuse(message: Message) -> None:
    await message.answer(_("This command is for the shop's admins."))
