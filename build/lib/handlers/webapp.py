"""Buttons that open the Mini App (WEBAPP_URL): on the member card, in /status, the menu button."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MenuButtonWebApp,
    WebAppInfo,
)
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _


def card_button(webapp_url: str | None) -> InlineKeyboardButton | None:
    """ "Open my card" on /card; None when the shop runs no Mini App."""
    if not webapp_url:
        return None
    return InlineKeyboardButton(text=_("📱 Open my card"), web_app=WebAppInfo(url=webapp_url))


def till_keyboard(webapp_url: str | None) -> InlineKeyboardMarkup | None:
    """ "Open the till" under the admin's /status; None without a Mini App."""
    if not webapp_url:
        return None
    button = InlineKeyboardButton(text=_("🧾 Open the till"), web_app=WebAppInfo(url=webapp_url))
    return InlineKeyboardMarkup(inline_keyboard=[[button]])


async def set_menu_button(bot: Bot, *, webapp_url: str, i18n: I18n, locale: str) -> None:
    """The menu button next to the message field opens the Mini App for everyone."""
    with i18n.context(), i18n.use_locale(locale):
        text = _("Card")
    await bot.set_chat_menu_button(
        menu_button=MenuButtonWebApp(text=text, web_app=WebAppInfo(url=webapp_url))
    )
