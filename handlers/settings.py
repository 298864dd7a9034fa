"""/settings: which messages the customer wants — offers, reminders, rating requests, warnings."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.flags import READS_ONLY
from scenarios.clock import Clock
from scenarios.preferences import SWITCHES, Switches, UnknownSwitchError, current, toggle
from storage.customers import CustomerRecord, SqlCustomers
from storage.preferences import SqlPreferences


class Toggle(CallbackData, prefix="set"):
    switch: str


def create_router() -> Router:
    router = Router(name="settings")
    router.message.register(
        show_settings, Command("settings"), F.chat.type == "private", flags=READS_ONLY
    )
    router.callback_query.register(flip, Toggle.filter())
    return router


def settings_keyboard(switches: Switches) -> InlineKeyboardMarkup:
    labels = {
        "marketing": _("Offers and news"),
        "reminder": _("Reminders to reorder"),
        "rating_request": _("Requests to rate an order"),
        "expiry_warning": _("Points expiry warnings"),
    }
    builder = InlineKeyboardBuilder()
    for switch in SWITCHES:
        mark = "✅" if switches.states[switch] else "🚫"
        builder.button(text=f"{mark} {labels[switch]}", callback_data=Toggle(switch=switch))
    builder.adjust(1)
    return builder.as_markup()


def settings_text() -> str:
    return _(
        "What should I send you? Tap a line to switch it on or off. "
        "Answers to your own actions and changes of your balance always come."
    )


async def show_settings(
    message: Message, customer: CustomerRecord, preferences: SqlPreferences
) -> None:
    switches = await current(
        preferences, customer_id=customer.id, marketing_opt_in=customer.marketing_opt_in
    )
    await message.answer(settings_text(), reply_markup=settings_keyboard(switches))


async def flip(
    callback: CallbackQuery,
    callback_data: Toggle,
    customer: CustomerRecord,
    preferences: SqlPreferences,
    customers: SqlCustomers,
    clock: Clock,
) -> None:
    try:
        switches = await toggle(
            preferences,
            customers,
            customer_id=customer.id,
            marketing_opt_in=customer.marketing_opt_in,
            switch=callback_data.switch,
            clock=clock,
        )
    except UnknownSwitchError:
        await callback.answer(_("This button is out of date."), show_alert=True)
        return
    await callback.answer(_("Saved."))
    if isinstance(callback.message, Message):
        await callback.message.edit_text(settings_text(), reply_markup=settings_keyboard(switches))
