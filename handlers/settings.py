"""/settings: which messages the customer wants — offers, reminders, rating requests, warnings —
and their time zone, which quiet hours follow."""

from __future__ import annotations

from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.flags import READS_ONLY
from locales.zones import zone_city, zone_label, zone_time
from scenarios.clock import Clock
from scenarios.preferences import (
    SWITCHES,
    Switches,
    UnknownSwitchError,
    UnknownZoneError,
    current,
    set_time_zone,
    toggle,
    zone_choices,
)
from storage.customers import CustomerRecord, SqlCustomers
from storage.preferences import SqlPreferences


class Toggle(CallbackData, prefix="set"):
    switch: str


class ZoneMenu(CallbackData, prefix="tzm"):
    open: bool  # True: the list of zones; False: back to the switches


class ZonePick(CallbackData, prefix="tz"):
    zone: str  # an IANA name, at most 32 characters: the data stays under 64 bytes


def create_router() -> Router:
    router = Router(name="settings")
    router.message.register(
        show_settings, Command("settings"), F.chat.type == "private", flags=READS_ONLY
    )
    router.callback_query.register(flip, Toggle.filter())
    router.callback_query.register(zone_menu, ZoneMenu.filter())
    router.callback_query.register(pick_zone, ZonePick.filter())
    return router


@dataclass(frozen=True, slots=True)
class ZoneView:
    """The customer's zone (theirs, else the shop's) and the choices the shop's country has."""

    zone: str
    choices: tuple[str, ...]


def zone_view(customer: CustomerRecord, shop_zone: ZoneInfo, clock: Clock) -> ZoneView:
    choices = zone_choices(shop_zone.key, clock.now())
    return ZoneView(zone=customer.timezone or shop_zone.key, choices=choices)


def settings_keyboard(
    switches: Switches, zones: ZoneView | None = None, locale: str = "en"
) -> InlineKeyboardMarkup:
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
    if zones is not None and len(zones.choices) > 1:  # a one-zone country has nothing to pick
        text = _("🕒 Time zone: {place}").format(place=zone_city(zones.zone, locale))
        builder.button(text=text, callback_data=ZoneMenu(open=True))
    builder.adjust(1)
    return builder.as_markup()


def zones_keyboard(zones: ZoneView, locale: str, clock: Clock) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    now = clock.now()
    for zone in zones.choices:
        mark = "✅ " if zone == zones.zone else ""
        builder.button(text=mark + zone_label(zone, locale, now), callback_data=ZonePick(zone=zone))
    builder.button(text=_("Back"), callback_data=ZoneMenu(open=False))
    builder.adjust(1)
    return builder.as_markup()


def zones_text() -> str:
    return _(
        "Which time zone are you in? Each button shows the time there now: pick the one your "
        "clock shows. I keep quiet at night by it."
    )


def settings_text() -> str:
    return _(
        "What should I send you? Tap a line to switch it on or off. "
        "Answers to your own actions and changes of your balance always come."
    )


async def show_settings(
    message: Message,
    customer: CustomerRecord,
    preferences: SqlPreferences,
    shop_zone: ZoneInfo,
    clock: Clock,
    locale: str,
) -> None:
    switches = await current(
        preferences, customer_id=customer.id, marketing_opt_in=customer.marketing_opt_in
    )
    zones = zone_view(customer, shop_zone, clock)
    await message.answer(settings_text(), reply_markup=settings_keyboard(switches, zones, locale))


async def flip(
    callback: CallbackQuery,
    callback_data: Toggle,
    customer: CustomerRecord,
    preferences: SqlPreferences,
    customers: SqlCustomers,
    clock: Clock,
    shop_zone: ZoneInfo,
    locale: str,
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
        zones = zone_view(customer, shop_zone, clock)
        await callback.message.edit_text(
            settings_text(), reply_markup=settings_keyboard(switches, zones, locale)
        )


async def zone_menu(
    callback: CallbackQuery,
    callback_data: ZoneMenu,
    customer: CustomerRecord,
    preferences: SqlPreferences,
    shop_zone: ZoneInfo,
    clock: Clock,
    locale: str,
) -> None:
    await callback.answer()
    if not isinstance(callback.message, Message):
        return
    zones = zone_view(customer, shop_zone, clock)
    if callback_data.open:
        await callback.message.edit_text(
            zones_text(), reply_markup=zones_keyboard(zones, locale, clock)
        )
        return
    switches = await current(
        preferences, customer_id=customer.id, marketing_opt_in=customer.marketing_opt_in
    )
    await callback.message.edit_text(
        settings_text(), reply_markup=settings_keyboard(switches, zones, locale)
    )


async def pick_zone(
    callback: CallbackQuery,
    callback_data: ZonePick,
    customer: CustomerRecord,
    preferences: SqlPreferences,
    shop_zone: ZoneInfo,
    clock: Clock,
    locale: str,
) -> None:
    try:
        stored = await set_time_zone(
            preferences,
            customer_id=customer.id,
            zone=callback_data.zone,
            shop_zone=shop_zone.key,
            clock=clock,
        )
    except UnknownZoneError:
        await callback.answer(_("This button is out of date."), show_alert=True)
        return
    zones = zone_view(replace(customer, timezone=stored), shop_zone, clock)
    now = clock.now()
    await callback.answer(
        _("Saved: {place}, {time} there now.").format(
            place=zone_city(zones.zone, locale),
            time=zone_time(zones.zone, locale, now),
        )
    )
    if isinstance(callback.message, Message):
        switches = await current(
            preferences, customer_id=customer.id, marketing_opt_in=customer.marketing_opt_in
        )
        await callback.message.edit_text(
            settings_text(), reply_markup=settings_keyboard(switches, zones, locale)
        )
