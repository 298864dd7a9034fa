"""Admin commands on customers' points: /bonus, /customer and /gift, each confirmed by a button."""

from __future__ import annotations

import secrets
from typing import Any
from zoneinfo import ZoneInfo

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.filters import IsAdmin
from handlers.flags import READS_ONLY
from locales.formatting import fill, format_points
from locales.rendering import Renderer
from scenarios.admin_bonus import (
    AdminProblem,
    BonusPreview,
    Problem,
    account_view,
    apply_bonus,
    find_customer,
    parse_bonus,
    preview_bonus,
)
from scenarios.audit import AuditLog
from scenarios.cards import display_card_number, member_card
from scenarios.clock import Clock
from scenarios.delivery import OutboxWriter
from scenarios.gifts import (
    GiftRequest,
    GiftStore,
    UnknownTierError,
    parse_gift,
    plan_gift,
    start_gift,
)
from scenarios.ledger import LedgerReader, PointsLedger
from scenarios.orders import region_for
from scenarios.rules import Rules
from scenarios.tiers import TierLadder
from storage.account import SqlAccount
from storage.customers import CustomerRecord
from storage.orders import SqlOrders
from storage.preferences import SqlPreferences
from storage.ratings import SqlRatings

PENDING_BONUS = "pending_bonus"
PENDING_GIFT = "pending_gift"
COMMANDS = ("bonus", "customer", "gift")


class BonusConfirm(CallbackData, prefix="bonus"):
    nonce: str
    ok: bool


class GiftConfirm(CallbackData, prefix="gift"):
    nonce: str
    ok: bool


def create_router() -> Router:
    router = Router(name="admin_account")
    router.message.filter(F.chat.type == "private")
    router.message.register(bonus, Command("bonus"), IsAdmin())
    router.message.register(customer_profile, Command("customer"), IsAdmin(), flags=READS_ONLY)
    router.message.register(gift, Command("gift"), IsAdmin())
    router.message.register(refuse_command, Command(*COMMANDS), ~IsAdmin(), flags=READS_ONLY)
    # The confirm buttons re-check admin rights on every press: a button proves nothing.
    router.callback_query.register(confirm_bonus, BonusConfirm.filter(), IsAdmin())
    router.callback_query.register(confirm_gift, GiftConfirm.filter(), IsAdmin())
    router.callback_query.register(refuse_button, F.data.startswith(("bonus:", "gift:")))
    return router


async def refuse_command(message: Message) -> None:
    await message.answer(_("This command is for the shop's admins."))


async def refuse_button(callback: CallbackQuery, admin_ids: tuple[int, ...]) -> None:
    if callback.from_user.id in admin_ids:
        await callback.answer(_("This button is out of date."), show_alert=True)
        return
    await callback.answer(_("This is for the shop's admins."), show_alert=True)


def bonus_usage() -> str:
    return _(
        "Usage: /bonus CUSTOMER +N|-N REASON\n"
        "CUSTOMER is a phone, a card number, a Telegram id or @username.\n"
        "Example: /bonus +79991234567 +100 sorry for the late delivery"
    )


def gift_usage() -> str:
    return _(
        "Usage: /gift AMOUNT REASON [tier:NAME]\n"
        "Example: /gift 100 Happy New Year! tier:gold\n"
        "Higher tiers get more: the amount times the tier's multiplier.\n"
        "The reason in other languages: on lines of their own that start with ru:, uk: or en:."
    )


def problem_text(problem: AdminProblem, usage: str) -> str:
    texts = {
        Problem.USAGE: usage,
        Problem.BAD_NUMBER: _("The number of points must look like +100 or -50.") + "\n\n" + usage,
        Problem.ZERO: _("0 points would change nothing.") + "\n\n" + usage,
        Problem.TOO_MANY: _("That is too many points at once."),
        Problem.MISSING_REASON: _("Please add a reason.") + "\n\n" + usage,
        Problem.REASON_TOO_LONG: _("The reason is too long: at most 500 characters."),
        Problem.BAD_REFERENCE: _(
            "I cannot read this customer reference. Use a phone, a card number, "
            "a Telegram id or @username."
        ),
        Problem.UNKNOWN_CUSTOMER: _("There is no customer with this reference."),
        Problem.NOT_A_MEMBER: _("This customer has not joined the bonus program."),
        Problem.NOT_ENOUGH_POINTS: fill(
            _("Cannot remove that many: the customer has only %(points)s available."),
            points=str(problem.available),
        ),
    }
    return texts[problem.problem] + "\n" + _("Nothing was changed.")


def confirm_keyboard(factory: type[BonusConfirm] | type[GiftConfirm], nonce: str) -> Any:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("✅ Confirm"), callback_data=factory(nonce=nonce, ok=True))
    builder.button(text=_("Cancel"), callback_data=factory(nonce=nonce, ok=False))
    return builder.as_markup()


async def bonus(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    renderer: Renderer,
    locale: str,
    rules: Rules,
    clock: Clock,
    order_store: SqlOrders,
    account_store: SqlAccount,
    ledger_reader: LedgerReader,
    tier_ladder: TierLadder,
    shop_zone: ZoneInfo,
) -> None:
    try:
        request = parse_bonus(command.args)
        found = await find_customer(
            order_store, account_store, request.ref, region=region_for(rules.shop.currency)
        )
        view = await account_view(
            ledger_reader, found, ladder=tier_ladder, clock=clock, zone=shop_zone
        )
        preview = preview_bonus(view, request)
    except AdminProblem as problem:
        await message.answer(problem_text(problem, bonus_usage()))
        return
    nonce = secrets.token_hex(6)
    await state.update_data(
        {
            PENDING_BONUS: {
                "nonce": nonce,
                "customer_id": found.id,
                "points": preview.points,
                "reason": preview.reason,
            }
        }
    )
    await message.answer(
        _render_preview(renderer, locale, preview),
        reply_markup=confirm_keyboard(BonusConfirm, nonce),
    )


def _render_preview(renderer: Renderer, locale: str, preview: BonusPreview) -> str:
    card = display_card_number(member_card(preview.account.customer))
    return renderer.render("bonus_preview.html", locale=locale, preview=preview, card=card)


async def _confirmed(
    callback: CallbackQuery, state: FSMContext, name: str, nonce: str, *, ok: bool
) -> dict[str, Any] | None:
    """The pending action a Confirm press applies, removed so a second press finds nothing;
    None (and the presser told why) for a stale button or a Cancel."""
    data = await state.get_data()
    pending = data.get(name)
    if not isinstance(pending, dict) or pending.get("nonce") != nonce:
        await callback.answer(
            _("This confirmation is no longer valid: it was used, cancelled or replaced."),
            show_alert=True,
        )
        return None
    await state.update_data({name: None})
    if not ok:
        await callback.answer()
        await _edit(callback, _("Cancelled; nothing was changed."))
        return None
    return pending


async def confirm_bonus(
    callback: CallbackQuery,
    callback_data: BonusConfirm,
    state: FSMContext,
    clock: Clock,
    account_store: SqlAccount,
    ledger_reader: LedgerReader,
    points_ledger: PointsLedger,
    audit_log: AuditLog,
    outbox: OutboxWriter,
    i18n: I18n,
    locale: str,
) -> None:
    pending = await _confirmed(
        callback, state, PENDING_BONUS, callback_data.nonce, ok=callback_data.ok
    )
    if pending is None:
        return
    customer = await account_store.customer(customer_id=int(pending["customer_id"]))
    if customer is None:
        await callback.answer(_("There is no customer with this reference."), show_alert=True)
        return
    try:
        applied = await apply_bonus(
            ledger=points_ledger,
            reader=ledger_reader,
            audit=audit_log,
            outbox=outbox,
            clock=clock,
            customer=customer,
            points=int(pending["points"]),
            reason=str(pending["reason"]),
            admin_id=callback.from_user.id,
            key=f"{callback.from_user.id}:{callback_data.nonce}",
        )
    except AdminProblem as problem:
        await callback.answer()
        await _edit(callback, problem_text(problem, bonus_usage()))
        return
    await callback.answer(_("Done."))
    change = int(pending["points"])
    await _edit(
        callback,
        fill(
            _("Done: %(change)s for %(name)s. Available now: %(points)s."),
            change=("+" if change > 0 else "−") + format_points(abs(change), i18n, locale),
            name=_name(customer),
            points=format_points(applied.available, i18n, locale),
        )
        + " "
        + told(customer),
    )


def told(customer: CustomerRecord) -> str:
    """Whether the customer hears about a change: only a chat that is not blocked can."""
    if customer.telegram_id is None:
        return _("The customer cannot be told: they have no chat with the bot.")
    if customer.blocked_at is not None:
        return _("The customer cannot be told: they blocked the bot.")
    return _("The customer is told.")


def _name(customer: CustomerRecord) -> str:
    return customer.first_name or customer.phone or f"#{customer.id}"


async def _edit(callback: CallbackQuery, text: str) -> None:
    if isinstance(callback.message, Message):
        await callback.message.edit_text(text, reply_markup=None)


async def customer_profile(
    message: Message,
    command: CommandObject,
    renderer: Renderer,
    locale: str,
    rules: Rules,
    clock: Clock,
    order_store: SqlOrders,
    account_store: SqlAccount,
    ledger_reader: LedgerReader,
    tier_ladder: TierLadder,
    preferences: SqlPreferences,
    audit_log: AuditLog,
    ratings: SqlRatings,
    shop_zone: ZoneInfo,
) -> None:
    ref = (command.args or "").strip()
    try:
        if not ref or len(ref.split()) != 1:
            raise AdminProblem(Problem.USAGE)
        found = await find_customer(
            order_store, account_store, ref, region=region_for(rules.shop.currency)
        )
    except AdminProblem as problem:
        usage = _("Usage: /customer CUSTOMER (a phone, a card number, a Telegram id or @username)")
        await message.answer(problem_text(problem, usage))
        return
    view = await account_view(ledger_reader, found, ladder=tier_ladder, clock=clock, zone=shop_zone)
    await message.answer(
        renderer.render(
            "customer_profile.html",
            locale=locale,
            account=view,
            card=display_card_number(member_card(found)),
            orders=await order_store.latest_for(customer_id=found.id, limit=5),
            muted=await preferences.muted_kinds(customer_id=found.id),
            audit=await audit_log.for_customer(customer_id=found.id, limit=5),
            ratings=await ratings.answered_by(customer_id=found.id, limit=5),
        )
    )


async def gift(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    renderer: Renderer,
    locale: str,
    rules: Rules,
    clock: Clock,
    gift_store: GiftStore,
    tier_ladder: TierLadder,
) -> None:
    names = tuple(tier.name for tier in tier_ladder.tiers)
    try:
        request = parse_gift(command.args, tier_names=names)
    except UnknownTierError as unknown:
        await message.answer(
            fill(
                _("There is no tier %(name)s. Tiers: %(tiers)s."),
                name=unknown.name,
                tiers=", ".join(names),
            )
            + "\n"
            + _("Nothing was changed.")
        )
        return
    except AdminProblem as problem:
        if problem.problem is Problem.BAD_NUMBER:  # a gift's amount has no sign
            await message.answer(
                _("The amount must be a whole number of points, e.g. 100.")
                + "\n\n"
                + gift_usage()
                + "\n"
                + _("Nothing was changed.")
            )
            return
        await message.answer(problem_text(problem, gift_usage()))
        return
    plan = await plan_gift(
        gift_store,
        request,
        ladder=tier_ladder,
        multipliers=rules.gifts.tier_multipliers,
        clock=clock,
    )
    nonce = secrets.token_hex(6)
    await state.update_data(
        {
            PENDING_GIFT: {
                "nonce": nonce,
                "amount": request.amount,
                "reason": request.reason,
                "reasons": dict(request.reasons),
                "tier": request.tier,
            }
        }
    )
    markup: InlineKeyboardMarkup | None = (
        confirm_keyboard(GiftConfirm, nonce) if plan.recipients else None
    )
    await message.answer(
        renderer.render("gift_preview.html", locale=locale, plan=plan), reply_markup=markup
    )


async def confirm_gift(
    callback: CallbackQuery,
    callback_data: GiftConfirm,
    state: FSMContext,
    locale: str,
    rules: Rules,
    clock: Clock,
    gift_store: GiftStore,
    tier_ladder: TierLadder,
    audit_log: AuditLog,
) -> None:
    pending = await _confirmed(
        callback, state, PENDING_GIFT, callback_data.nonce, ok=callback_data.ok
    )
    if pending is None:
        return
    request = GiftRequest(
        amount=int(pending["amount"]),
        reason=str(pending["reason"]),
        tier=pending.get("tier"),
        reasons={str(k): str(v) for k, v in (pending.get("reasons") or {}).items()},
    )
    plan = await plan_gift(
        gift_store,
        request,
        ladder=tier_ladder,
        multipliers=rules.gifts.tier_multipliers,
        clock=clock,
    )
    gift_id, _started = await start_gift(
        gift_store,
        audit_log,
        plan,
        ladder=tier_ladder,
        multipliers=rules.gifts.tier_multipliers,
        admin_id=callback.from_user.id,
        locale=locale,
        key=f"{callback.from_user.id}:{callback_data.nonce}",
        clock=clock,
    )
    await callback.answer(_("Done."))
    await _edit(
        callback,
        fill(
            _(
                "Gift #%(gift_id)s is on its way to %(recipients)s recipient. "
                "I will write when everyone has it.",
                "Gift #%(gift_id)s is on its way to %(recipients)s recipients. "
                "I will write when everyone has it.",
                plan.recipients,
            ),
            gift_id=str(gift_id),
            recipients=str(plan.recipients),
        ),
    )
