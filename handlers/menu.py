"""The command menus: customers and admins each see their own list, in their language."""

from __future__ import annotations

import functools
import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import lazy_gettext as __
from babel.support import LazyProxy

from scenarios.customers import SUPPORTED_LOCALES

log = logging.getLogger(__name__)

CUSTOMER_COMMANDS: tuple[tuple[str, LazyProxy], ...] = (
    ("start", __("Start and join the bonus program")),
    ("card", __("My member card")),
    ("balance", __("My points, tier and cashback")),
    ("history", __("My points history")),
    ("code", __("A one-time code to spend points")),
    ("invite", __("Invite a friend")),
    ("birthday", __("Set or change my birthday")),
    ("lang", __("Change the language")),
    ("settings", __("Choose which messages you get")),
    ("reminders", __("Your reminders to reorder")),
    ("help", __("What this bot can do")),
    ("stop", __("No more offers (stay a member)")),
    ("my_data", __("A copy of my data")),
    ("delete_me", __("Delete my personal data")),
)
ADMIN_COMMANDS: tuple[tuple[str, LazyProxy], ...] = (
    *CUSTOMER_COMMANDS,
    ("status", __("Bot status (admins)")),
    ("broadcast", __("Send a broadcast (admins)")),
    ("broadcasts", __("Broadcasts and their results (admins)")),
    ("bonus", __("Add or remove a customer's points (admins)")),
    ("customer", __("A customer's profile (admins)")),
    ("gift", __("A holiday gift to members (admins)")),
    ("stats", __("Statistics (admins)")),
    ("export", __("Customers, orders and points as CSV files (admins)")),
)


def command_menu(*, admin: bool, i18n: I18n, locale: str) -> list[BotCommand]:
    return list(_command_menu(admin, i18n, locale))


@functools.lru_cache(maxsize=64)
def _command_menu(admin: bool, i18n: I18n, locale: str) -> tuple[BotCommand, ...]:
    """Built once per menu and language: /help shows it on every call, and building a
    dozen pydantic objects and translations each time cost more than the reply's query."""
    entries = ADMIN_COMMANDS if admin else CUSTOMER_COMMANDS
    with i18n.context(), i18n.use_locale(locale):
        return tuple(BotCommand(command=name, description=str(text)) for name, text in entries)


async def register_commands(
    bot: Bot, *, i18n: I18n, admin_ids: tuple[int, ...], default_locale: str
) -> None:
    """Customers get the menu per app language; each admin gets the admin menu in their chat."""
    await bot.set_my_commands(
        command_menu(admin=False, i18n=i18n, locale=default_locale), scope=BotCommandScopeDefault()
    )
    for locale in SUPPORTED_LOCALES:
        await bot.set_my_commands(
            command_menu(admin=False, i18n=i18n, locale=locale),
            scope=BotCommandScopeDefault(),
            language_code=locale,
        )
    for admin_id in admin_ids:
        try:
            await set_chat_menu(
                bot,
                chat_id=admin_id,
                admin=True,
                i18n=i18n,
                locale=None,
                default_locale=default_locale,
            )
        except TelegramAPIError as error:
            # An admin who never opened the bot has no chat yet; the rest still get their menu.
            log.warning("admin %s gets no admin menu yet: %s", admin_id, error.message)


async def set_chat_menu(
    bot: Bot,
    *,
    chat_id: int,
    admin: bool,
    i18n: I18n,
    locale: str | None,
    default_locale: str,
) -> None:
    """One chat's own menu: in ``locale`` if the user chose one, else per app language."""
    scope = BotCommandScopeChat(chat_id=chat_id)
    if locale is not None:
        await bot.set_my_commands(command_menu(admin=admin, i18n=i18n, locale=locale), scope=scope)
        if admin:
            # Per-language lists of this chat would win over the chosen language; drop them.
            for each in SUPPORTED_LOCALES:
                await bot.delete_my_commands(scope=scope, language_code=each)
        return
    await bot.set_my_commands(
        command_menu(admin=admin, i18n=i18n, locale=default_locale), scope=scope
    )
    for each in SUPPORTED_LOCALES:
        await bot.set_my_commands(
            command_menu(admin=admin, i18n=i18n, locale=each), scope=scope, language_code=each
        )
