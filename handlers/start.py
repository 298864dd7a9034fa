"""/start: greet, explain the program, ask consent (terms, and offers separately); members are
welcomed back and may turn offers on again."""

from __future__ import annotations

from datetime import datetime

from aiogram import Bot, F, Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
)
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.wizard import go_on_to, go_to
from locales.rendering import Renderer
from scenarios.cards import display_card_number, member_card
from scenarios.clock import Clock
from scenarios.referrals import Referrals, valid_code
from scenarios.rules import Rules
from scenarios.signup import SignupDesk
from scenarios.tiers import TierLadder, minor_units_per_major
from storage.customers import CustomerRecord


class Signup(StatesGroup):
    consent = State()
    phone = State()
    birthday = State()


class ConsentPress(CallbackData, prefix="join"):
    action: str  # offers (tick/untick), accept, decline


class OffersOn(CallbackData, prefix="offers"):
    pass


def create_router() -> Router:
    router = Router(name="start")
    router.message.filter(F.chat.type == "private")
    router.message.register(greet, CommandStart())
    router.callback_query.register(consent, ConsentPress.filter())
    router.callback_query.register(offers_on, OffersOn.filter())
    return router


def consent_keyboard(*, offers: bool, terms_url: str | None) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if terms_url:
        builder.button(text=_("📄 Program terms"), url=terms_url)
    mark = "☑️" if offers else "⬜"
    builder.button(
        text=f"{mark} {_('Offers and news')}", callback_data=ConsentPress(action="offers")
    )
    builder.button(
        text=_("✅ Accept the terms and join"), callback_data=ConsentPress(action="accept")
    )
    builder.button(text=_("No, thanks"), callback_data=ConsentPress(action="decline"))
    builder.adjust(1)
    return builder.as_markup()


def offers_on_keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("🔔 Turn offers back on"), callback_data=OffersOn())
    return builder.as_markup()


def phone_keyboard() -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=_("📱 Share my phone number"), request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def phone_request() -> str:
    return _(
        "Thank you! Now share your phone number with the button below: it is how the shop "
        "recognises your purchases."
    )


def terms_url(rules: Rules) -> str | None:
    return str(rules.shop.terms_url) if rules.shop.terms_url else None


async def greet(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    renderer: Renderer,
    locale: str,
    customer: CustomerRecord,
    rules: Rules,
    referrals: Referrals,
    tier_ladder: TierLadder,
) -> None:
    code = command.args.strip() if command.args else None
    if customer.joined_at is not None:
        await state.clear()
        if valid_code(code):
            assert code is not None
            await referrals.member_followed_link(member_id=customer.id, code=code)
        await message.answer(
            renderer.render(
                "welcome_back.html",
                locale=locale,
                name=customer.first_name or "",
                card=display_card_number(member_card(customer)),
                offers_on=customer.marketing_opt_in,
            ),
            reply_markup=None if customer.marketing_opt_in else offers_on_keyboard(),
        )
        return
    await go_to(
        state, Signup.consent, {"offers": False, "invite": code if valid_code(code) else None}
    )
    await message.answer(
        renderer.render(
            "welcome.html",
            locale=locale,
            name=customer.first_name or "",
            shop=rules.shop.name,
            terms_url=terms_url(rules) or "",
            # Without a link to the terms, the customer accepts what this summary says.
            terms=rules.bonus,
            tiers=tier_ladder.tiers,
            welcome=rules.signup.welcome_points,
            invite=(
                {
                    "friend_points": rules.referral.friend_points,
                    "min_order": rules.referral.referral_min_order
                    * minor_units_per_major(rules.shop.currency),
                    "hold_days": rules.bonus.hold_days,
                }
                if valid_code(code)
                else None
            ),
        ),
        reply_markup=consent_keyboard(offers=False, terms_url=terms_url(rules)),
    )


async def consent(
    callback: CallbackQuery,
    bot: Bot,
    callback_data: ConsentPress,
    state: FSMContext,
    customer: CustomerRecord,
    rules: Rules,
    clock: Clock,
) -> None:
    if customer.joined_at is not None:
        await state.clear()
        await callback.answer(
            _("You are already a member. /card shows your card."), show_alert=True
        )
        return
    if await state.get_state() != Signup.consent.state or callback_data.action not in (
        "offers",
        "accept",
        "decline",
    ):
        await callback.answer(_("This button is out of date. Send /start to begin again."))
        return
    data = await state.get_data()
    message = callback.message if isinstance(callback.message, Message) else None
    if callback_data.action == "offers":
        offers = not data.get("offers", False)
        await state.update_data(offers=offers)
        await callback.answer(_("Offers and news: on") if offers else _("Offers and news: off"))
        if message is not None:
            await message.edit_reply_markup(
                reply_markup=consent_keyboard(offers=offers, terms_url=terms_url(rules))
            )
        return
    if callback_data.action == "decline":
        await state.clear()
        await callback.answer()
        text = _(
            "All right: you have not joined the program. The bot keeps only your Telegram id "
            "and the name and language your Telegram profile shows, so that it recognises this "
            "chat; nothing else about you. If you change your mind, send /start."
        )
        if message is not None:
            await message.edit_text(text)
        return
    await go_on_to(state, Signup.phone, accepted_at=clock.now().isoformat())
    await callback.answer()
    if message is not None:
        await message.edit_reply_markup(reply_markup=None)
    # Sent to the presser's chat even when the consent message is too old to be edited.
    await bot.send_message(
        chat_id=callback.from_user.id, text=phone_request(), reply_markup=phone_keyboard()
    )


async def offers_on(callback: CallbackQuery, customer: CustomerRecord, signup: SignupDesk) -> None:
    # The button may be old: the customer's row, as read for this update, decides.
    if customer.joined_at is None:
        await callback.answer(_("Join the program first: send /start."), show_alert=True)
        return
    await signup.set_offers(customer, opt_in=True)
    await callback.answer(_("Saved."))
    text = _("Offers and news are on again. /stop turns them off.")
    if isinstance(callback.message, Message):
        await callback.message.edit_text(text)


def accepted_at(data: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(data["accepted_at"]))
