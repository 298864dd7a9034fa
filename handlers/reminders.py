"""Replenishment reminders for the customer: the message's buttons and /reminders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.filters import ButtonNumber
from handlers.flags import READS_ONLY
from locales.rendering import Renderer
from scenarios.cards import display_card_number, member_card
from scenarios.clock import Clock
from scenarios.reminders import (
    Answer,
    cancel_one,
    reorder_request,
    snooze,
    stop_sku,
)
from scenarios.rules import Rules
from storage.customers import CustomerRecord
from storage.outbox import SqlOutbox
from storage.reminders import DueReminder, ReminderRecord, SqlReminders

MAX_NAME_IN_BUTTON = 40


class ReminderAction(CallbackData, prefix="rmd"):
    """A button under a reminder: reorder (no link), snooze N days, stop this product."""

    action: str  # "order" | "snooze" | "stop"
    id: ButtonNumber
    days: ButtonNumber = 0


class ReminderCancel(CallbackData, prefix="rmc"):
    """/reminders: cancel one scheduled reminder."""

    id: ButtonNumber


def create_router() -> Router:
    router = Router(name="reminders")
    router.message.register(
        show_reminders, Command("reminders"), F.chat.type == "private", flags=READS_ONLY
    )
    router.callback_query.register(act, ReminderAction.filter())
    router.callback_query.register(cancel_pressed, ReminderCancel.filter())
    return router


def _short(name: str) -> str:
    return name if len(name) <= MAX_NAME_IN_BUTTON else name[: MAX_NAME_IN_BUTTON - 1] + "…"


def reminder_buttons(
    items: Sequence[DueReminder], *, snooze_days: Sequence[int]
) -> list[list[dict[str, str]]]:
    """Per product: Reorder (its link, or a request to staff), then snooze presets and stop.
    Call it inside the recipient's locale."""
    rows: list[list[dict[str, str]]] = []
    for item in items:
        label = _("🛒 Reorder: {name}").format(name=_short(item.name))
        if item.url:
            rows.append([{"text": label, "url": item.url}])
        else:
            data = ReminderAction(action="order", id=item.id).pack()
            rows.append([{"text": label, "callback_data": data}])
        row = [
            {
                "text": ngettext("⏰ In {days} day", "⏰ In {days} days", days).format(days=days),
                "callback_data": ReminderAction(action="snooze", id=item.id, days=days).pack(),
            }
            for days in snooze_days
        ]
        row.append(
            {
                "text": _("🚫 I don't need this"),
                "callback_data": ReminderAction(action="stop", id=item.id).pack(),
            }
        )
        rows.append(row)
    return rows


def reminder_content(items: Sequence[DueReminder], *, snooze_days: Sequence[int]) -> dict[str, Any]:
    """The outbox payload: the text is rendered in the recipient's language when sent."""
    return {
        "template": "reminder.html",
        "context": {"names": [item.name for item in items]},
        "buttons": reminder_buttons(items, snooze_days=snooze_days),
    }


def _zone(customer: CustomerRecord, shop_zone: ZoneInfo) -> ZoneInfo:
    return ZoneInfo(customer.timezone) if customer.timezone else shop_zone


async def act(
    callback: CallbackQuery,
    callback_data: ReminderAction,
    customer: CustomerRecord,
    reminders: SqlReminders,
    outbox: SqlOutbox,
    renderer: Renderer,
    rules: Rules,
    staff_chat_id: int | None,
    locale: str,
    clock: Clock,
    shop_zone: ZoneInfo,
) -> None:
    if callback_data.action == "snooze":
        outcome = await snooze(
            reminders,
            reminder_id=callback_data.id,
            customer_id=customer.id,
            days=callback_data.days,
            rules=rules.reminders,
            zone=_zone(customer, shop_zone),
            quiet=rules.quiet_hours,
            clock=clock,
        )
        if outcome.answer is Answer.DONE:
            assert outcome.reminder is not None
            days = callback_data.days
            await callback.answer(
                ngettext(
                    "OK, I will remind you about {name} in {days} day.",
                    "OK, I will remind you about {name} in {days} days.",
                    days,
                ).format(name=outcome.reminder.name, days=days),
                show_alert=True,
            )
            return
    elif callback_data.action == "stop":
        outcome = await stop_sku(
            reminders, reminder_id=callback_data.id, customer_id=customer.id, clock=clock
        )
        if outcome.answer is Answer.DONE:
            assert outcome.reminder is not None
            await callback.answer(
                _("OK, no more reminders about {name}.").format(name=outcome.reminder.name),
                show_alert=True,
            )
            return
    elif callback_data.action == "order":

        def render(reminder: ReminderRecord) -> str:
            return renderer.render(
                "reorder_request.html",
                # For the staff chat, in its one language.
                locale=rules.staff.locale_or(renderer.i18n.default_locale),
                name=customer.first_name or "",
                username=customer.username,
                phone=customer.phone,
                card=display_card_number(member_card(customer)),
                product=reminder.name,
                sku=reminder.sku,
                quantity=reminder.quantity,
            )

        outcome = await reorder_request(
            reminders,
            outbox,
            reminder_id=callback_data.id,
            customer_id=customer.id,
            staff_chat_id=staff_chat_id,
            render=render,
            clock=clock,
        )
        if outcome.answer is Answer.DONE:
            await callback.answer(
                _("Thank you! The shop will contact you about your order."), show_alert=True
            )
            return
        if outcome.answer is Answer.STALE:
            await callback.answer(_("The shop already has your request."), show_alert=True)
            return
        if outcome.reminder is not None:  # yours, but no staff chat to pass it on to
            await callback.answer(
                _("Sorry, the shop cannot take orders here. Please order as usual."),
                show_alert=True,
            )
            return
    else:
        outcome = None
    if outcome is not None and outcome.answer is Answer.STALE:
        await callback.answer(_("This is already done."))
        return
    await callback.answer(_("This button is out of date."), show_alert=True)


def list_text(items: Sequence[ReminderRecord], renderer: Renderer, locale: str) -> str:
    return renderer.render("reminders_list.html", locale=locale, reminders=items)


def list_keyboard(items: Sequence[ReminderRecord]) -> InlineKeyboardMarkup | None:
    if not items:
        return None
    builder = InlineKeyboardBuilder()
    for item in items:
        builder.button(
            text=_("❌ Cancel: {name}").format(name=_short(item.name)),
            callback_data=ReminderCancel(id=item.id),
        )
    builder.adjust(1)
    return builder.as_markup()


async def show_reminders(
    message: Message,
    customer: CustomerRecord,
    reminders: SqlReminders,
    renderer: Renderer,
    locale: str,
) -> None:
    items = await reminders.of_customer(customer_id=customer.id)
    await message.answer(list_text(items, renderer, locale), reply_markup=list_keyboard(items))


async def cancel_pressed(
    callback: CallbackQuery,
    callback_data: ReminderCancel,
    customer: CustomerRecord,
    reminders: SqlReminders,
    renderer: Renderer,
    locale: str,
    clock: Clock,
) -> None:
    outcome = await cancel_one(
        reminders, reminder_id=callback_data.id, customer_id=customer.id, clock=clock
    )
    if outcome.answer is Answer.NOT_YOURS:
        await callback.answer(_("This button is out of date."), show_alert=True)
        return
    if outcome.answer is Answer.STALE:
        await callback.answer(_("This is already done."))
    else:
        await callback.answer(_("Cancelled."))
    items = await reminders.of_customer(customer_id=customer.id)
    if isinstance(callback.message, Message):
        await callback.message.edit_text(
            list_text(items, renderer, locale), reply_markup=list_keyboard(items)
        )
