"""/lang: the customer picks ru, uk or en; the choice is stored and the menu follows it."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.flags import READS_ONLY
from handlers.menu import set_chat_menu
from scenarios.customers import SUPPORTED_LOCALES, UnsupportedLocaleError, choose_locale
from storage.customers import CustomerRecord, SqlCustomers

# Each language is offered under its own name, the same in every locale, so anyone finds theirs.
ENDONYMS = {"ru": "Русский", "uk": "Українська", "en": "English"}


class LanguageChoice(CallbackData, prefix="lang"):
    locale: str


def create_router() -> Router:
    router = Router(name="language")
    router.message.register(
        offer_languages, Command("lang"), F.chat.type == "private", flags=READS_ONLY
    )
    router.callback_query.register(switch_language, LanguageChoice.filter())
    return router


def language_keyboard(current: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for locale in SUPPORTED_LOCALES:
        mark = "✓ " if locale == current else ""
        builder.button(text=mark + ENDONYMS[locale], callback_data=LanguageChoice(locale=locale))
    builder.adjust(len(SUPPORTED_LOCALES))
    return builder.as_markup()


async def offer_languages(message: Message, locale: str) -> None:
    await message.answer(
        _("Choose the language of the bot:"), reply_markup=language_keyboard(locale)
    )


async def switch_language(
    callback: CallbackQuery,
    callback_data: LanguageChoice,
    customer: CustomerRecord,
    customers: SqlCustomers,
    i18n: I18n,
    bot: Bot,
    admin_ids: tuple[int, ...],
) -> None:
    try:
        locale = await choose_locale(
            customers, customer_id=customer.id, locale=callback_data.locale
        )
    except UnsupportedLocaleError:
        await callback.answer(_("This language is not available."), show_alert=True)
        return
    with i18n.use_locale(locale):
        done = _("Done! The bot now speaks English with you.")
    if isinstance(callback.message, Message):
        await callback.message.edit_text(done, reply_markup=language_keyboard(locale))
    await callback.answer()
    await set_chat_menu(
        bot,
        chat_id=callback.from_user.id,
        admin=callback.from_user.id in admin_ids,
        i18n=i18n,
        locale=locale,
        default_locale=i18n.default_locale,
    )
