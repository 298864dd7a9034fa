"""Joining, step two on: the member's own phone, the optional birthday, the member card with
its QR code (/card) and the personal invite link (/invite)."""

from __future__ import annotations

import io
from zoneinfo import ZoneInfo

import segno
from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardRemove,
)
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.flags import READS_ONLY
from handlers.start import Signup, accepted_at, phone_keyboard
from handlers.webapp import card_button
from handlers.wizard import go_to
from locales.formatting import format_points
from locales.rendering import Renderer
from scenarios.birthdays import parse_birthday
from scenarios.cards import display_card_number, member_card
from scenarios.clock import Clock
from scenarios.redeem_codes import RedeemCodes, display_code
from scenarios.referrals import Referrals, invite_link
from scenarios.rules import Rules
from scenarios.signup import Consent, PhoneRefusal, SignupDesk, SignupRefused, own_phone
from scenarios.tiers import minor_units_per_major
from storage.customers import CustomerRecord


class BirthdayPress(CallbackData, prefix="bday"):
    action: str  # skip


class SpendCodePress(CallbackData, prefix="rcode"):
    action: str  # new


def create_router() -> Router:
    router = Router(name="signup")
    router.message.filter(F.chat.type == "private")
    router.message.register(phone_shared, Signup.phone, F.contact)
    router.message.register(phone_expected, Signup.phone, ~F.text.startswith("/"))
    router.message.register(birthday_given, Signup.birthday, F.text, ~F.text.startswith("/"))
    router.callback_query.register(birthday_skipped, BirthdayPress.filter())
    router.message.register(show_card, Command("card"), flags=READS_ONLY)
    router.message.register(code_command, Command("code"))
    router.callback_query.register(code_pressed, SpendCodePress.filter())
    router.message.register(invite, Command("invite"))
    return router


def card_qr(number: str) -> bytes:
    """The card number as a QR code (PNG) a till scanner or a phone camera reads."""
    buffer = io.BytesIO()
    segno.make(number, error="m").save(buffer, kind="png", scale=10, border=4)
    return buffer.getvalue()


def skip_keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("Skip"), callback_data=BirthdayPress(action="skip"))
    return builder.as_markup()


def birthday_question() -> str:
    return _(
        "One more, optional: when is your birthday? There is a gift for it. "
        "Send the day and month, e.g. 31.12 (the year may follow: 31.12.1990), or tap Skip."
    )


def not_a_member() -> str:
    return _("You are not in the bonus program yet. Send /start to join: it takes a minute.")


def code_keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("Code to spend points"), callback_data=SpendCodePress(action="new"))
    return builder.as_markup()


def card_keyboard(*, codes: bool, webapp_url: str | None) -> InlineKeyboardMarkup | None:
    """Under the card: the spending code (when the shop asks for one), the Mini App's card."""
    rows = code_keyboard().inline_keyboard if codes else []
    button = card_button(webapp_url)
    if button is not None:
        rows = [*rows, [button]]
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


async def send_card(
    bot: Bot,
    *,
    chat_id: int,
    number: str,
    renderer: Renderer,
    locale: str,
    welcome: int,
    rules: Rules,
    webapp_url: str | None = None,
) -> None:
    """The card earns by itself; spending takes a one-time code when the shop asks for one."""
    codes = rules.bonus.redeem_requires_code
    await bot.send_photo(
        chat_id=chat_id,
        photo=BufferedInputFile(card_qr(number), filename=f"card-{number}.png"),
        caption=renderer.render(
            "member_card.html",
            locale=locale,
            card=display_card_number(number),
            welcome=welcome,
            spend_code=codes,
        ),
        reply_markup=card_keyboard(codes=codes, webapp_url=webapp_url),
    )


async def spend_code(
    bot: Bot,
    *,
    chat_id: int,
    customer: CustomerRecord,
    redeem_codes: RedeemCodes,
    renderer: Renderer,
    locale: str,
    rules: Rules,
) -> None:
    issued = await redeem_codes.issue(customer_id=customer.id)
    await bot.send_message(
        chat_id,
        renderer.render(
            "redeem_code.html",
            locale=locale,
            code=display_code(issued.code),
            minutes=rules.bonus.redeem_code_minutes,
        ),
    )


def code_refusal(customer: CustomerRecord, rules: Rules) -> str | None:
    """Why no spending code is given (not a member; the shop needs none), or None."""
    if customer.joined_at is None:
        return not_a_member()
    if not rules.bonus.redeem_requires_code:
        return _("This shop needs no code: your points are spent when you pay.")
    return None


async def code_command(
    message: Message,
    bot: Bot,
    customer: CustomerRecord,
    redeem_codes: RedeemCodes,
    renderer: Renderer,
    locale: str,
    rules: Rules,
) -> None:
    refusal = code_refusal(customer, rules)
    if refusal is not None:
        await message.answer(refusal)
        return
    await spend_code(
        bot,
        chat_id=message.chat.id,
        customer=customer,
        redeem_codes=redeem_codes,
        renderer=renderer,
        locale=locale,
        rules=rules,
    )


async def code_pressed(
    callback: CallbackQuery,
    bot: Bot,
    customer: CustomerRecord,
    redeem_codes: RedeemCodes,
    renderer: Renderer,
    locale: str,
    rules: Rules,
) -> None:
    """Always a code for the presser, in their own chat: the button names nobody."""
    refusal = code_refusal(customer, rules)
    if refusal is not None:
        await callback.answer(refusal, show_alert=True)
        return
    await callback.answer()
    await spend_code(
        bot,
        chat_id=callback.from_user.id,
        customer=customer,
        redeem_codes=redeem_codes,
        renderer=renderer,
        locale=locale,
        rules=rules,
    )


async def phone_shared(
    message: Message,
    state: FSMContext,
    customer: CustomerRecord,
    signup: SignupDesk,
    rules: Rules,
    i18n: I18n,
    locale: str,
) -> None:
    assert message.contact is not None
    assert message.from_user is not None
    if customer.joined_at is not None:  # a second contact after joining: nothing to redo
        await state.clear()
        await message.answer(
            _("You are already a member. /card shows your card."),
            reply_markup=ReplyKeyboardRemove(),
        )
        return
    data = await state.get_data()
    try:
        phone = own_phone(
            contact_user_id=message.contact.user_id,
            sender_id=message.from_user.id,
            phone_number=message.contact.phone_number,
            currency=rules.shop.currency,
        )
        joined = await signup.join(
            customer,
            phone=phone,
            consent=Consent(
                accepted_at=accepted_at(data), marketing_opt_in=bool(data.get("offers"))
            ),
            invite=data.get("invite"),
        )
    except SignupRefused as refused:
        texts = {
            PhoneRefusal.NOT_OWN: _(
                "I can only accept your own number. Tap “Share my phone number” below: "
                "Telegram then sends the number of this account."
            ),
            PhoneRefusal.INVALID: _(
                "This phone number does not look valid. Please share the number of this "
                "Telegram account with the button below."
            ),
            PhoneRefusal.TAKEN: _(
                "This phone number already belongs to another member of the program. "
                "If it is yours, please contact the shop."
            ),
        }
        await message.answer(texts[refused.reason], reply_markup=phone_keyboard())
        return
    await go_to(state, Signup.birthday, {"welcome": joined.welcome_points})
    if joined.orders_too_old:
        found = _(
            "You are in! I found %(count)s earlier order of yours.",
            "You are in! I found %(count)s earlier orders of yours.",
            joined.orders_claimed,
        ) % {"count": joined.orders_claimed}
        days = rules.signup.claim_orders_days
        if days:
            found += " " + _(
                "Orders from the last %(days)s day before joining earn points: yours earned "
                "%(points)s.",
                "Orders from the last %(days)s days before joining earn points: yours earned "
                "%(points)s.",
                days,
            ) % {"days": days, "points": format_points(joined.points_credited, i18n, locale)}
        else:
            found += " " + _("Orders placed before joining earn no points.")
    elif joined.orders_claimed:
        found = _(
            "You are in! I found %(count)s earlier order of yours; it earned %(points)s.",
            "You are in! I found %(count)s earlier orders of yours; they earned %(points)s.",
            joined.orders_claimed,
        ) % {
            "count": joined.orders_claimed,
            "points": format_points(joined.points_credited, i18n, locale),
        }
    else:
        found = _("You are in! Your phone number is saved.")
    await message.answer(found, reply_markup=ReplyKeyboardRemove())
    await message.answer(birthday_question(), reply_markup=skip_keyboard())


async def phone_expected(message: Message) -> None:
    await message.answer(
        _("Please tap “Share my phone number” below to join."), reply_markup=phone_keyboard()
    )


async def birthday_given(
    message: Message,
    bot: Bot,
    state: FSMContext,
    customer: CustomerRecord,
    signup: SignupDesk,
    renderer: Renderer,
    locale: str,
    clock: Clock,
    rules: Rules,
    shop_zone: ZoneInfo,
) -> None:
    assert message.text is not None
    today = clock.now().astimezone(shop_zone).date()
    birthday = parse_birthday(message.text, today=today)
    if birthday is None:
        await message.answer(
            _(
                "I could not read that date. Send the day and month like 31.12 "
                "(or with the year: 31.12.1990), or tap Skip."
            ),
            reply_markup=skip_keyboard(),
        )
        return
    await signup.set_birthday(customer, birthday)
    await message.answer(_("Thank you, your birthday is saved."))
    await finish(
        bot,
        message.chat.id,
        state,
        customer=customer,
        renderer=renderer,
        locale=locale,
        rules=rules,
    )


async def birthday_skipped(
    callback: CallbackQuery,
    bot: Bot,
    state: FSMContext,
    customer: CustomerRecord,
    renderer: Renderer,
    locale: str,
    rules: Rules,
) -> None:
    if await state.get_state() != Signup.birthday.state or customer.joined_at is None:
        await callback.answer(_("This button is out of date."))
        return
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_reply_markup(reply_markup=None)
    await finish(
        bot,
        callback.from_user.id,
        state,
        customer=customer,
        renderer=renderer,
        locale=locale,
        rules=rules,
    )


async def finish(
    bot: Bot,
    chat_id: int,
    state: FSMContext,
    *,
    customer: CustomerRecord,
    renderer: Renderer,
    locale: str,
    rules: Rules,
) -> None:
    """The sign-up's last word: the member card, with the welcome bonus if there was one."""
    welcome = int((await state.get_data()).get("welcome", 0))
    await state.clear()
    await send_card(
        bot,
        chat_id=chat_id,
        number=member_card(customer),
        renderer=renderer,
        locale=locale,
        welcome=welcome,
        rules=rules,
    )


async def show_card(
    message: Message,
    bot: Bot,
    customer: CustomerRecord,
    renderer: Renderer,
    locale: str,
    rules: Rules,
    webapp_url: str | None = None,
) -> None:
    if customer.joined_at is None:
        await message.answer(not_a_member())
        return
    await send_card(
        bot,
        chat_id=message.chat.id,
        number=member_card(customer),
        renderer=renderer,
        locale=locale,
        welcome=0,
        rules=rules,
        webapp_url=webapp_url,
    )


async def invite(
    message: Message,
    bot: Bot,
    customer: CustomerRecord,
    referrals: Referrals,
    renderer: Renderer,
    locale: str,
    rules: Rules,
) -> None:
    if customer.joined_at is None:
        await message.answer(not_a_member())
        return
    code = await referrals.invite_code(customer_id=customer.id)
    me = await bot.me()
    await message.answer(
        renderer.render(
            "invite.html",
            locale=locale,
            link=invite_link(me.username or "", code),
            friend_points=rules.referral.friend_points,
            referrer_points=rules.referral.referrer_points,
            min_order=rules.referral.referral_min_order
            * minor_units_per_major(rules.shop.currency),
            hold_days=rules.bonus.hold_days,
            check_minutes=rules.referral.check_every_minutes,
        )
    )
