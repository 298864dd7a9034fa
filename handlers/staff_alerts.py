"""The staff chat's side of a negative rating: the alert and what staff do with it."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, User
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from handlers.editing import unless_unchanged
from handlers.filters import ButtonNumber
from locales.formatting import format_points
from locales.rendering import Renderer
from scenarios.clock import Clock
from scenarios.delivery import Category, Outgoing, enqueue
from scenarios.ledger import PointsLedger
from scenarios.ratings import (
    STAFF_ALERT_KIND,
    CompensationResult,
    Escalation,
    alert_is_open,
    alert_key,
)
from scenarios.rules import Rules
from scenarios.tiers import TierLadder
from storage.audit import SqlAuditLog
from storage.database import Database
from storage.ledger import SqlLedger
from storage.outbox import OutboxState, SqlOutbox
from storage.ratings import AlertRecord, RatingRecord, SqlRatings

log = logging.getLogger(__name__)

STAFF_STATUSES = frozenset({"creator", "administrator", "member"})


class AlertPress(CallbackData, prefix="alert"):
    alert: ButtonNumber
    action: str  # take, resolve, comp, reply, back


class CompensatePress(CallbackData, prefix="comp"):
    alert: ButtonNumber
    points: ButtonNumber


class StaffReply(StatesGroup):
    waiting = State()


def create_router() -> Router:
    router = Router(name="staff_alerts")
    router.callback_query.register(press_alert, AlertPress.filter())
    router.callback_query.register(press_compensate, CompensatePress.filter())
    router.message.register(relay_reply, StaffReply.waiting, F.text)
    return router


def escalation(db: Database, rules: Rules, clock: Clock) -> Escalation:
    ledger = SqlLedger(db)
    return Escalation(
        store=SqlRatings(db),
        outbox=SqlOutbox(db),
        reader=ledger,
        ladder=TierLadder.from_rules(rules.bonus, currency=rules.shop.currency),
        clock=clock,
    )


# ---- what the alert looks like -----------------------------------------------------------


def alert_text(
    renderer: Renderer, locale: str, alert: AlertRecord, rating: RatingRecord, *, waiting: bool
) -> str:
    return renderer.render(
        "rating_alert.html",
        locale=locale,
        alert=alert,
        # The rating's own order: an erased customer's alert keeps no snapshot to read it from.
        order_id=rating.order_ref,
        score=rating.score or 1,
        comment=rating.comment,
        awaiting_comment=waiting and rating.comment is None,
    )


def alert_buttons(i18n: I18n, locale: str, alert: AlertRecord) -> list[list[dict[str, str]]]:
    """Rows of {text, callback_data}: what staff may still do with this alert."""
    with i18n.use_locale(locale):
        first: list[dict[str, str]] = []
        if alert_is_open(alert):
            take = AlertPress(alert=alert.id, action="take").pack()
            first.append({"text": _("Take"), "callback_data": take})
            first.append(
                {
                    "text": _("Resolved"),
                    "callback_data": AlertPress(alert=alert.id, action="resolve").pack(),
                }
            )
        second: list[dict[str, str]] = []
        if alert.compensation_points is None:
            second.append(
                {
                    "text": _("Compensate"),
                    "callback_data": AlertPress(alert=alert.id, action="comp").pack(),
                }
            )
        second.append(
            {"text": _("Reply"), "callback_data": AlertPress(alert=alert.id, action="reply").pack()}
        )
    return [row for row in (first, second) if row]


def compensation_buttons(
    i18n: I18n, locale: str, alert: AlertRecord, presets: tuple[int, ...]
) -> list[list[dict[str, str]]]:
    with i18n.use_locale(locale):
        back = _("Back")
    return [
        [
            {
                "text": f"+{points}",
                "callback_data": CompensatePress(alert=alert.id, points=points).pack(),
            }
            for points in presets
        ],
        [{"text": back, "callback_data": AlertPress(alert=alert.id, action="back").pack()}],
    ]


def markup(rows: list[list[dict[str, str]]]) -> InlineKeyboardMarkup | None:
    if not rows:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton.model_validate(b) for b in row] for row in rows]
    )


async def post_alert(
    *,
    alert: AlertRecord,
    rating: RatingRecord,
    staff_chat_id: int | None,
    outbox: SqlOutbox,
    renderer: Renderer,
    i18n: I18n,
    clock: Clock,
) -> None:
    """Queue the alert for the staff chat: transactional, so it goes at once, paced by the
    group limit (20 a minute); a burst waits in the queue, nothing is dropped."""
    if staff_chat_id is None:
        log.warning("negative rating of %s: STAFF_CHAT_ID is not set, no alert", rating.order_ref)
        return
    locale = i18n.default_locale
    await enqueue(
        outbox,
        Outgoing(
            dedupe_key=alert_key(alert.id),
            chat_id=staff_chat_id,
            category=Category.TRANSACTIONAL,
            kind=STAFF_ALERT_KIND,
            content={
                "text": alert_text(renderer, locale, alert, rating, waiting=True),
                "buttons": alert_buttons(i18n, locale, alert),
                "locale": locale,
            },
        ),
        clock=clock,
    )


async def refresh_alert(
    *,
    alert: AlertRecord,
    rating: RatingRecord,
    bot: Bot,
    outbox: SqlOutbox,
    renderer: Renderer,
    i18n: I18n,
    clock: Clock,
) -> None:
    """Show a late comment or a changed score in the alert, wherever the alert is by now:
    still queued (its content is replaced), sent (edited in place), or in flight (a follow-up
    copy is queued, so nothing is lost)."""
    queued = await outbox.by_key(dedupe_key=alert_key(alert.id))
    if queued is None:
        return
    locale = i18n.default_locale
    text = alert_text(renderer, locale, alert, rating, waiting=False)
    rows = alert_buttons(i18n, locale, alert)
    payload: dict[str, Any] = {"text": text, "buttons": rows, "locale": locale}
    now = clock.now()
    key = alert_key(alert.id)
    if await outbox.replace_waiting_payload(dedupe_key=key, payload=payload, now=now):
        return
    if queued.state is OutboxState.SENT and queued.telegram_message_id is not None:
        try:
            await bot.edit_message_text(
                text=text,
                chat_id=queued.chat_id,
                message_id=queued.telegram_message_id,
                reply_markup=markup(rows),
            )
            return
        except TelegramBadRequest as error:
            if "not modified" in error.message:
                return
            log.warning("alert %s cannot be edited (%s); sending a copy", alert.id, error.message)
    await enqueue(
        outbox,
        Outgoing(
            # Keyed by content: the same update twice is one message, a newer one another.
            dedupe_key=f"{key}:update:{hashlib.sha256(text.encode()).hexdigest()[:16]}",
            chat_id=queued.chat_id,
            category=Category.TRANSACTIONAL,
            kind=STAFF_ALERT_KIND,
            content=payload,
        ),
        clock=clock,
    )


# ---- staff presses -----------------------------------------------------------------------


async def is_staff(
    bot: Bot, user: User, *, staff_chat_id: int | None, admin_ids: tuple[int, ...]
) -> bool:
    """Admins, and members of the staff chat as Telegram says now (not as the button says)."""
    if user.id in admin_ids:
        return True
    if staff_chat_id is None:
        return False
    try:
        member = await bot.get_chat_member(chat_id=staff_chat_id, user_id=user.id)
    except TelegramAPIError:
        return False
    if member.status == "restricted":
        return bool(getattr(member, "is_member", False))
    return member.status in STAFF_STATUSES


def staff_name(user: User) -> str:
    return f"{user.full_name} (@{user.username})" if user.username else user.full_name


async def _edit_alert(
    callback: CallbackQuery,
    alert: AlertRecord,
    ratings: SqlRatings,
    renderer: Renderer,
    i18n: I18n,
    rows: list[list[dict[str, str]]] | None = None,
) -> None:
    if not isinstance(callback.message, Message):
        return
    rating = await ratings.by_id(rating_id=alert.rating_id)
    if rating is None:
        return
    locale = i18n.default_locale
    text = alert_text(renderer, locale, alert, rating, waiting=False)
    buttons = rows if rows is not None else alert_buttons(i18n, locale, alert)
    with unless_unchanged():
        await callback.message.edit_text(text, reply_markup=markup(buttons))


async def _refused_unless_staff(
    callback: CallbackQuery, bot: Bot, staff_chat_id: int | None, admin_ids: tuple[int, ...]
) -> bool:
    """Answers someone who is not staff (the buttons sit in a group anyone may join)."""
    if await is_staff(bot, callback.from_user, staff_chat_id=staff_chat_id, admin_ids=admin_ids):
        return False
    await callback.answer(_("Sorry, only the shop's staff may do this."), show_alert=True)
    return True


async def press_alert(
    callback: CallbackQuery,
    callback_data: AlertPress,
    bot: Bot,
    db: Database,
    rules: Rules,
    clock: Clock,
    renderer: Renderer,
    i18n: I18n,
    state: FSMContext,
    staff_chat_id: int | None,
    admin_ids: tuple[int, ...],
) -> None:
    if await _refused_unless_staff(callback, bot, staff_chat_id, admin_ids):
        return
    ratings = SqlRatings(db)
    alert = await ratings.alert(alert_id=callback_data.alert, lock=True)
    if alert is None:
        await callback.answer(_("This button is out of date."), show_alert=True)
        return
    desk = escalation(db, rules, clock)
    name = staff_name(callback.from_user)
    action = callback_data.action
    if action == "take":
        if not await desk.take(alert_id=alert.id, by=callback.from_user.id, name=name):
            await callback.answer(_("This alert is already resolved."))
        else:
            await callback.answer(_("It is yours now."))
    elif action == "resolve":
        if not await desk.resolve(alert_id=alert.id, by=callback.from_user.id, name=name):
            await callback.answer(_("This alert is already resolved."))
        else:
            await callback.answer(_("Marked as resolved."))
    elif action == "comp":
        if alert.compensation_points is not None:
            await callback.answer(_("This alert was already compensated."), show_alert=True)
        else:
            await callback.answer(_("How many points?"))
            presets = compensation_buttons(
                i18n, i18n.default_locale, alert, rules.ratings.compensation_points
            )
            await _edit_alert(callback, alert, ratings, renderer, i18n, presets)
            return
    elif action == "reply":
        await state.set_state(StaffReply.waiting)
        await state.update_data(alert_id=alert.id)
        await callback.answer(
            _("Send your reply as your next message in this chat; it goes to the customer."),
            show_alert=True,
        )
        return
    elif action == "back":
        await callback.answer()
    else:
        await callback.answer(_("This button is out of date."), show_alert=True)
        return
    changed = await ratings.alert(alert_id=alert.id)
    if changed is not None:
        await _edit_alert(callback, changed, ratings, renderer, i18n)


async def press_compensate(
    callback: CallbackQuery,
    callback_data: CompensatePress,
    bot: Bot,
    db: Database,
    rules: Rules,
    clock: Clock,
    renderer: Renderer,
    i18n: I18n,
    staff_chat_id: int | None,
    admin_ids: tuple[int, ...],
) -> None:
    if await _refused_unless_staff(callback, bot, staff_chat_id, admin_ids):
        return
    ledger = SqlLedger(db)
    points_ledger = PointsLedger(
        ledger,
        bonus=rules.bonus,
        ladder=TierLadder.from_rules(rules.bonus, currency=rules.shop.currency),
        clock=clock,
    )
    outcome = await escalation(db, rules, clock).compensate(
        alert_id=callback_data.alert,
        points=callback_data.points,
        by=callback.from_user.id,
        name=staff_name(callback.from_user),
        presets=rules.ratings.compensation_points,
        ledger=points_ledger,
        audit=SqlAuditLog(db),
    )
    shown = format_points(outcome.points, i18n, i18n.default_locale)
    if outcome.result is CompensationResult.GRANTED:
        await callback.answer(_("Granted {points}; the customer is told.").format(points=shown))
    elif outcome.result is CompensationResult.ALREADY:
        await callback.answer(
            _("Already compensated with {points}; nothing more was granted.").format(points=shown),
            show_alert=True,
        )
    else:
        await callback.answer(_("This button is out of date."), show_alert=True)
        return
    ratings = SqlRatings(db)
    alert = await ratings.alert(alert_id=callback_data.alert)
    if alert is not None:
        await _edit_alert(callback, alert, ratings, renderer, i18n)


async def relay_reply(
    message: Message,
    state: FSMContext,
    bot: Bot,
    db: Database,
    rules: Rules,
    clock: Clock,
    renderer: Renderer,
    i18n: I18n,
) -> None:
    """The staff member's next message after Reply goes to the customer, signed as the shop."""
    data = await state.get_data()
    await state.clear()
    alert_id = data.get("alert_id")
    if message.from_user is None or not isinstance(alert_id, int) or message.text is None:
        return
    desk = escalation(db, rules, clock)
    relayed = await desk.relay_reply(
        alert_id=alert_id,
        message_id=message.message_id,
        text=message.text,
        name=staff_name(message.from_user),
        shop=rules.shop.name,
    )
    if not relayed:
        await message.reply(_("This customer cannot be reached from here."))
        return
    await message.reply(_("Sent to the customer."))
    ratings = SqlRatings(db)
    alert = await ratings.alert(alert_id=alert_id)
    rating = await ratings.by_id(rating_id=alert.rating_id) if alert is not None else None
    if alert is not None and rating is not None:
        await refresh_alert(
            alert=alert,
            rating=rating,
            bot=bot,
            outbox=SqlOutbox(db),
            renderer=renderer,
            i18n=i18n,
            clock=clock,
        )
