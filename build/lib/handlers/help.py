"""/help: what the bot can do, with the commands this user may use."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import Message
from aiogram.utils.i18n import I18n

from handlers.flags import READS_ONLY
from handlers.menu import command_menu
from locales.rendering import Renderer
from scenarios.rules import Rules


def create_router() -> Router:
    router = Router(name="help")
    router.message.register(show_help, Command("help"), F.chat.type == "private", flags=READS_ONLY)
    return router


async def show_help(
    message: Message,
    renderer: Renderer,
    locale: str,
    i18n: I18n,
    admin_ids: tuple[int, ...],
    rules: Rules,
) -> None:
    is_admin = message.from_user is not None and message.from_user.id in admin_ids
    commands = command_menu(admin=is_admin, i18n=i18n, locale=locale)
    await message.answer(
        renderer.render("help.html", locale=locale, commands=commands, shop=rules.shop.name)
    )
