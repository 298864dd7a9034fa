"""/birthday: a member sets or changes their birthday after joining."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.signup import birthday_question, not_a_member, skip_keyboard
from handlers.start import Signup
from locales.formatting import format_birthday, tidy_stops
from locales.rendering import Renderer
from scenarios.birthdays import gift_eligible, next_birthday, parse_birthday
from scenarios.clock import Clock
from scenarios.signup import SignupDesk
from storage.customers import CustomerRecord


class BirthdayChange(StatesGroup):
    date = State()


class BirthdayChangePress(CallbackData, prefix="bdaychg"):
    action: str  # cancel


def create_router() -> Router:
    router = Router(name="birthday")
    router.message.filter(F.chat.type == "private")
    router.message.register(ask_birthday, Command("birthday"))
    router.message.register(birthday_typed, BirthdayChange.date, F.text, ~F.text.startswith("/"))
    router.callback_query.register(cancelled, BirthdayChangePress.filter())
    return router


def cancel_keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("Cancel"), callback_data=BirthdayChangePress(action="cancel"))
    return builder.as_markup()


async def ask_birthday(
    message: Message, state: FSMContext, customer: CustomerRecord, locale: str
) -> None:
    if customer.joined_at is None:
        await message.answer(not_a_member())
        return
    if await state.get_state() == Signup.birthday.state:
        # Still joining: the sign-up's own question, whose answer also brings the card.
        await message.answer(birthday_question(), reply_markup=skip_keyboard())
        return
    if customer.birthday_day is not None and customer.birthday_month is not None:
        current = tidy_stops(
            _("Your birthday is saved as %(date)s.")
            % {
                "date": format_birthday(
                    day=customer.birthday_day,
                    month=customer.birthday_month,
                    year=customer.birthday_year,
                    locale=locale,
                )
            }
        )
    else:
        current = _("Your birthday is not saved yet.")
    await state.set_state(BirthdayChange.date)
    await message.answer(
        current
        + "\n"
        + _(
            "Send the day and month, e.g. 31.12 (the year may follow: 31.12.1990), "
            "or tap Cancel. A birthday set or changed less than 30 days before the date "
            "gets its gift only from the next year on."
        ),
        reply_markup=cancel_keyboard(),
    )


async def birthday_typed(
    message: Message,
    state: FSMContext,
    customer: CustomerRecord,
    signup: SignupDesk,
    renderer: Renderer,
    locale: str,
    clock: Clock,
    shop_zone: ZoneInfo,
) -> None:
    assert message.text is not None
    if customer.joined_at is None:  # erased since the question was asked
        await state.clear()
        await message.answer(not_a_member())
        return
    now = clock.now()
    today = now.astimezone(shop_zone).date()
    birthday = parse_birthday(message.text, today=today)
    if birthday is None:
        await message.answer(
            _(
                "I could not read that date. Send the day and month like 31.12 "
                "(or with the year: 31.12.1990), or tap Cancel."
            ),
            reply_markup=cancel_keyboard(),
        )
        return
    await signup.set_birthday(customer, birthday)
    await state.clear()
    saved = tidy_stops(
        _("Your birthday is saved: %(date)s.")
        % {
            "date": format_birthday(
                day=birthday.day, month=birthday.month, year=birthday.year, locale=locale
            )
        }
    )
    upcoming = next_birthday(birthday, today=today)
    if not gift_eligible(birthday_set_at=now, birthday=upcoming, zone=shop_zone):
        saved += "\n" + _(
            "It is less than 30 days away, so this time there is no birthday gift; "
            "from next year on there will be."
        )
    await message.answer(saved)


async def cancelled(callback: CallbackQuery, state: FSMContext) -> None:
    if await state.get_state() != BirthdayChange.date.state:
        await callback.answer(_("This button is out of date."))
        return
    await state.clear()
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(_("Your birthday stays as it was."))
