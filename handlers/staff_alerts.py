"""The staff chat's side of a negative rating: the alert and what staff do with it."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, User
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from handlers.editing import unless_unchanged
from handlers.filters import ButtonNumber
from handlers.keyboards import keyboard
from handlers.wizard import go_on_to
from locales.formatting import format_points
from locales.rendering import Renderer
from scenarios.clock import Clock
from scenarios.delivery import Category, Outgoing, enqueue, fits
from scenarios.ledger import PointsLedger
from scenarios.ratings import (
    STAFF_ALERT_KIND,
    Compensation,
    CompensationResult,
    Escalation,
    alert_is_open,
    alert_key,
)
from scenarios.rules import Rules
from storage.audit import SqlAuditLog
from storage.messages import Button, ButtonRows, MessageContent
from storage.outbox import SqlOutbox
from storage.ratings import AlertRecord, RatingRecord, SqlRatings

log = logging.getLogger(__name__)

STAFF_STATUSES = frozenset({"creator", "administrator", "member"})
STAFF_ALERT_EDIT_KIND = "staff_alert_edit"
STAFF_ALERT_COMMENT_KIND = "staff_alert_comment"
# An alert keeps at least this many order lines (if it has them) before its comment is moved
# to a reply of its own: who bought what matters to staff too.
MIN_LINES_WITH_COMMENT = 3


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


def staff_locale(rules: Rules, i18n: I18n) -> str:
    """The staff chat's one language: ``staff.locale``, else DEFAULT_LOCALE."""
    return rules.staff.locale_or(i18n.default_locale)


# ---- what the alert looks like -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertText:
    text: str
    comment_apart: bool  # the comment would not fit: it goes as a reply to the alert


def alert_text(
    renderer: Renderer, locale: str, alert: AlertRecord, rating: RatingRecord, *, waiting: bool
) -> AlertText:
    """The alert as it fits one Telegram message: all of it if it can; else fewer order lines
    ("…and 21 more items"); and should even a few lines leave no room for the comment, the
    comment goes apart, as a reply to the alert (see ``comment_text``)."""

    def render(shown: int, apart: bool) -> str:
        return renderer.render(
            "rating_alert.html",
            locale=locale,
            alert=alert,
            # The rating's own order: an erased customer's alert keeps no snapshot to read.
            order_id=rating.order_ref,
            score=rating.score or 1,
            comment=rating.comment,
            awaiting_comment=waiting and rating.comment is None,
            items_shown=shown,
            comment_apart=apart,
        )

    def most_lines(apart: bool) -> tuple[int, str]:
        """The most order lines that fit (fitting shrinks as lines grow: a binary search)."""
        low, high = 0, lines
        while low < high:
            middle = (low + high + 1) // 2
            if fits(render(middle, apart)):
                low = middle
            else:
                high = middle - 1
        return low, render(low, apart)

    lines = len(alert.snapshot.get("items") or ())
    whole = render(lines, False)
    if fits(whole):
        return AlertText(whole, comment_apart=False)
    shown, text = most_lines(apart=False)
    if fits(text) and (not rating.comment or shown >= min(lines, MIN_LINES_WITH_COMMENT)):
        return AlertText(text, comment_apart=False)
    return AlertText(most_lines(apart=True)[1], comment_apart=bool(rating.comment))


def comment_text(renderer: Renderer, locale: str, rating: RatingRecord) -> str:
    """The reply that carries a comment too long for its alert: with a heading if it fits (the
    reply's link to the alert says which order it is about anyway)."""
    with_heading = renderer.render(
        "rating_comment.html",
        locale=locale,
        order_id=rating.order_ref,
        comment=rating.comment,
        heading=True,
    )
    if fits(with_heading):
        return with_heading
    return renderer.render(
        "rating_comment.html",
        locale=locale,
        order_id=rating.order_ref,
        comment=rating.comment,
        heading=False,
    )


def alert_buttons(i18n: I18n, locale: str, alert: AlertRecord) -> ButtonRows:
    """Rows of {text, callback_data}: what staff may still do with this alert."""
    with i18n.use_locale(locale):
        first: list[Button] = []
        if alert_is_open(alert):
            take = AlertPress(alert=alert.id, action="take").pack()
            first.append({"text": _("Take"), "callback_data": take})
            first.append(
                {
                    "text": _("Resolved"),
                    "callback_data": AlertPress(alert=alert.id, action="resolve").pack(),
                }
            )
        second: list[Button] = []
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
) -> ButtonRows:
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


class GroupPace(Protocol):
    """The delivery engine's per-group window (bot/delivery/limiter.py), which every message to
    the staff chat counts against, the outbox's and the edits made in answer to a press."""

    def group_has_room(self, chat_id: int) -> bool: ...

    def count_group_send(self, chat_id: int) -> None: ...


class StaffAlerts:
    """A negative rating's alert in the staff chat, built once: posted, refreshed, compensated
    and replied to through here, so every message and edit of it goes through the delivery
    engine (the outbox, or in answer to a press the same group limit), in the staff chat's
    one language (``staff_locale``)."""

    def __init__(
        self,
        *,
        staff_chat_id: int | None,
        escalation: Escalation,
        ratings: SqlRatings,
        outbox: SqlOutbox,
        points: PointsLedger,
        audit: SqlAuditLog,
        pace: GroupPace,
        renderer: Renderer,
        i18n: I18n,
        rules: Rules,
        clock: Clock,
    ) -> None:
        self.staff_chat_id = staff_chat_id
        self.escalation = escalation
        self._ratings = ratings
        self._outbox = outbox
        self._points = points
        self._audit = audit
        self._pace = pace
        self._renderer = renderer
        self._i18n = i18n
        self._rules = rules
        self._clock = clock
        self.locale = staff_locale(rules, i18n)

    # -- what it looks like --------------------------------------------------------------------

    def text(self, alert: AlertRecord, rating: RatingRecord, *, waiting: bool) -> AlertText:
        return alert_text(self._renderer, self.locale, alert, rating, waiting=waiting)

    def buttons(self, alert: AlertRecord) -> ButtonRows:
        return alert_buttons(self._i18n, self.locale, alert)

    def compensation_buttons(self, alert: AlertRecord) -> ButtonRows:
        presets = self._rules.ratings.compensation_points
        return compensation_buttons(self._i18n, self.locale, alert, presets)

    # -- the customer's side: a low score, a comment, a better score ---------------------------

    async def raise_for(self, rating: RatingRecord) -> None:
        """Raise the rating's alert once and post it; a changed score updates the posted one."""
        if self.staff_chat_id is None:
            # Nobody could resolve an alert, and an open one would mute the customer for good.
            log.warning(
                "negative rating of %s: STAFF_CHAT_ID is not set, no alert", rating.order_ref
            )
            return
        alert, created = await self.escalation.raise_alert(rating)
        if created:
            await self.post(alert, rating, staff_chat_id=self.staff_chat_id)
        else:
            await self.refresh(alert, rating)

    async def score_raised(self, rating: RatingRecord, alert: AlertRecord | None) -> None:
        """Changed from a negative score: the complaint is over, and the staff see why.
        ``alert`` is read beforehand (SqlRatings.press_view), before the score's write: a
        rating that never had one then needs no transaction after the customer's answer."""
        if alert is not None:
            await self.refresh(await self.escalation.score_raised(alert), rating)

    async def refresh_for(self, rating: RatingRecord) -> None:
        """The rating's alert, if it has one, shows what changed (a comment, or none coming)."""
        alert = await self._ratings.alert_for_rating(rating_id=rating.id)
        if alert is not None:
            await self.refresh(alert, rating)

    async def post(self, alert: AlertRecord, rating: RatingRecord, *, staff_chat_id: int) -> None:
        """Queue the alert for the staff chat: transactional, so it goes at once, paced by the
        group limit (20 a minute); a burst waits in the queue, nothing is dropped."""
        shown = self.text(alert, rating, waiting=True)
        await enqueue(
            self._outbox,
            Outgoing(
                dedupe_key=alert_key(alert.id),
                chat_id=staff_chat_id,
                category=Category.TRANSACTIONAL,
                kind=STAFF_ALERT_KIND,
                content={"text": shown.text, "buttons": self.buttons(alert), "locale": self.locale},
            ),
            clock=self._clock,
        )
        await self._comment_apart(shown, alert, rating, chat_id=staff_chat_id)

    async def refresh(self, alert: AlertRecord, rating: RatingRecord) -> None:
        """Show a late comment, a changed score or a closed complaint in the alert, wherever
        the alert is by now: still queued (its content is replaced), or sent or on its way (an
        edit is queued behind it, paced by the group limit like any message to the staff chat;
        should the alert never have arrived, the edit goes as a message of its own, so nothing
        is lost)."""
        key = alert_key(alert.id)
        queued = await self._outbox.by_key(dedupe_key=key)
        if queued is None:
            return
        shown = self.text(alert, rating, waiting=False)
        await self._comment_apart(shown, alert, rating, chat_id=queued.chat_id)
        payload: MessageContent = {
            "text": shown.text,
            "buttons": self.buttons(alert),
            "locale": self.locale,
        }
        now = self._clock.now()
        if await self._outbox.replace_waiting_payload(dedupe_key=key, payload=payload, now=now):
            return
        await self._queue_edit(alert, chat_id=queued.chat_id, payload=payload)

    async def _queue_edit(
        self, alert: AlertRecord, *, chat_id: int, payload: MessageContent
    ) -> None:
        key = alert_key(alert.id)
        now = self._clock.now()
        # Only the newest content matters: an edit still waiting is replaced by this one.
        edits = f"{key}:edit:"
        await self._outbox.supersede(key_prefix=edits, reason="superseded by a newer edit", now=now)
        digest = hashlib.sha256(f"{now.isoformat()}\n{payload['text']}".encode()).hexdigest()[:16]
        await enqueue(
            self._outbox,
            Outgoing(
                dedupe_key=f"{edits}{digest}",
                chat_id=chat_id,
                category=Category.TRANSACTIONAL,
                kind=STAFF_ALERT_EDIT_KIND,
                content={**payload, "edit_of": key},
            ),
            clock=self._clock,
        )

    async def _comment_apart(
        self, shown: AlertText, alert: AlertRecord, rating: RatingRecord, *, chat_id: int
    ) -> None:
        """Queue the comment as a reply to the alert, once, when the alert has no room for it."""
        if not shown.comment_apart or not rating.comment:
            return
        key = alert_key(alert.id)
        await enqueue(
            self._outbox,
            Outgoing(
                dedupe_key=f"{key}:comment",
                chat_id=chat_id,
                category=Category.TRANSACTIONAL,
                kind=STAFF_ALERT_COMMENT_KIND,
                content={
                    "text": comment_text(self._renderer, self.locale, rating),
                    "reply_to": key,
                    "locale": self.locale,
                },
            ),
            clock=self._clock,
        )

    # -- the staff's side: presses on the alert ------------------------------------------------

    async def show(
        self,
        message: Message,
        alert: AlertRecord,
        rows: ButtonRows | None = None,
    ) -> None:
        """The pressed alert as it is now (or with ``rows``, the compensation presets): edited
        at once while the staff chat's group window has room, else queued behind it."""
        rating = await self._ratings.by_id(rating_id=alert.rating_id)
        if rating is None:
            return
        shown = self.text(alert, rating, waiting=False)
        # This edit shows the alert as it is now: a queued edit with older content must not
        # land after it and undo it.
        await self._outbox.supersede(
            key_prefix=f"{alert_key(alert.id)}:edit:",
            reason="superseded by a staff press",
            now=self._clock.now(),
        )
        chat_id = message.chat.id
        # A longer staff name may have pushed the comment out: it must not be lost then either.
        await self._comment_apart(shown, alert, rating, chat_id=chat_id)
        buttons = rows if rows is not None else self.buttons(alert)
        if not self._pace.group_has_room(chat_id):
            payload: MessageContent = {
                "text": shown.text,
                "buttons": buttons,
                "locale": self.locale,
            }
            await self._queue_edit(alert, chat_id=chat_id, payload=payload)
            return
        self._pace.count_group_send(chat_id)
        with unless_unchanged():
            await message.edit_text(shown.text, reply_markup=keyboard(buttons))

    async def take(self, alert: AlertRecord, *, by: int, name: str) -> bool:
        return await self.escalation.take(alert_id=alert.id, by=by, name=name)

    async def resolve(self, alert: AlertRecord, *, by: int, name: str) -> bool:
        return await self.escalation.resolve(alert_id=alert.id, by=by, name=name)

    async def compensate(self, *, alert_id: int, points: int, by: int, name: str) -> Compensation:
        """Points to the customer once per alert, from the configured presets only."""
        return await self.escalation.compensate(
            alert_id=alert_id,
            points=points,
            by=by,
            name=name,
            presets=self._rules.ratings.compensation_points,
            ledger=self._points,
            audit=self._audit,
        )

    async def reply(self, *, alert_id: int, message_id: int, text: str, name: str) -> bool:
        """The staff member's reply to the customer, signed as the shop; False: unreachable."""
        return await self.escalation.relay_reply(
            alert_id=alert_id,
            message_id=message_id,
            text=text,
            name=name,
            shop=self._rules.shop.name,
        )

    async def refresh_by_id(self, alert_id: int) -> None:
        alert = await self._ratings.alert(alert_id=alert_id)
        rating = await self._ratings.by_id(rating_id=alert.rating_id) if alert is not None else None
        if alert is not None and rating is not None:
            await self.refresh(alert, rating)


# ---- staff presses -----------------------------------------------------------------------


class StaffMembership:
    """Who may press the alert buttons: admins, and members of the staff chat as Telegram says.

    getChatMember answers are kept for ``ttl`` seconds per person (``staff.membership_cache_
    seconds``), so a burst of presses costs one round trip, not one per press; someone removed
    from the chat keeps the buttons at most that long. A failed look-up is not kept. The
    look-up is a Bot API call, so it never runs inside a write transaction (the unit of work
    commits before any request leaves).
    """

    def __init__(
        self,
        *,
        staff_chat_id: int | None,
        admin_ids: tuple[int, ...],
        ttl: float,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.staff_chat_id = staff_chat_id
        self.admin_ids = admin_ids
        self.ttl = ttl
        self._now = now
        self._known: dict[int, tuple[float, bool]] = {}  # user id -> (checked at, is staff)

    async def is_staff(self, bot: Bot, user: User) -> bool:
        if user.id in self.admin_ids:
            return True
        if self.staff_chat_id is None:
            return False
        now = self._now()
        known = self._known.get(user.id)
        if known is not None and now - known[0] < self.ttl:
            return known[1]
        try:
            member = await bot.get_chat_member(chat_id=self.staff_chat_id, user_id=user.id)
        except TelegramAPIError:
            return False
        if member.status == "restricted":
            verdict = bool(getattr(member, "is_member", False))
        else:
            verdict = member.status in STAFF_STATUSES
        if self.ttl > 0:
            if len(self._known) > _MEMBERSHIP_CACHE_LIMIT:  # only staff press these buttons
                self._known.clear()
            self._known[user.id] = (now, verdict)
        return verdict


_MEMBERSHIP_CACHE_LIMIT = 10_000


def staff_name(user: User) -> str:
    return f"{user.full_name} (@{user.username})" if user.username else user.full_name


async def _refused_unless_staff(
    callback: CallbackQuery, bot: Bot, staff_membership: StaffMembership
) -> bool:
    """Answers someone who is not staff (the buttons sit in a group anyone may join)."""
    if await staff_membership.is_staff(bot, callback.from_user):
        return False
    await callback.answer(_("Sorry, only the shop's staff may do this."), show_alert=True)
    return True


async def press_alert(
    callback: CallbackQuery,
    callback_data: AlertPress,
    bot: Bot,
    ratings: SqlRatings,
    staff_alerts: StaffAlerts,
    state: FSMContext,
    staff_membership: StaffMembership,
) -> None:
    if await _refused_unless_staff(callback, bot, staff_membership):
        return
    alert = await ratings.alert(alert_id=callback_data.alert, lock=True)
    if alert is None:
        await callback.answer(_("This button is out of date."), show_alert=True)
        return
    name = staff_name(callback.from_user)
    action = callback_data.action
    if action == "take":
        if not await staff_alerts.take(alert, by=callback.from_user.id, name=name):
            await callback.answer(_("This alert is already resolved."))
        else:
            await callback.answer(_("It is yours now."))
    elif action == "resolve":
        if not await staff_alerts.resolve(alert, by=callback.from_user.id, name=name):
            await callback.answer(_("This alert is already resolved."))
        else:
            await callback.answer(_("Marked as resolved."))
    elif action == "comp":
        if alert.compensation_points is not None:
            await callback.answer(_("This alert was already compensated."), show_alert=True)
        else:
            await callback.answer(_("How many points?"))
            if isinstance(callback.message, Message):
                await staff_alerts.show(
                    callback.message, alert, staff_alerts.compensation_buttons(alert)
                )
            return
    elif action == "reply":
        await go_on_to(state, StaffReply.waiting, alert_id=alert.id)
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
    if changed is not None and isinstance(callback.message, Message):
        await staff_alerts.show(callback.message, changed)


async def press_compensate(
    callback: CallbackQuery,
    callback_data: CompensatePress,
    bot: Bot,
    ratings: SqlRatings,
    staff_alerts: StaffAlerts,
    i18n: I18n,
    staff_membership: StaffMembership,
) -> None:
    if await _refused_unless_staff(callback, bot, staff_membership):
        return
    outcome = await staff_alerts.compensate(
        alert_id=callback_data.alert,
        points=callback_data.points,
        by=callback.from_user.id,
        name=staff_name(callback.from_user),
    )
    shown = format_points(outcome.points, i18n, staff_alerts.locale)
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
    alert = await ratings.alert(alert_id=callback_data.alert)
    if alert is not None and isinstance(callback.message, Message):
        await staff_alerts.show(callback.message, alert)


async def relay_reply(message: Message, state: FSMContext, staff_alerts: StaffAlerts) -> None:
    """The staff member's next message after Reply goes to the customer, signed as the shop."""
    data = await state.get_data()
    await state.clear()
    alert_id = data.get("alert_id")
    if message.from_user is None or not isinstance(alert_id, int) or message.text is None:
        return
    relayed = await staff_alerts.reply(
        alert_id=alert_id,
        message_id=message.message_id,
        text=message.text,
        name=staff_name(message.from_user),
    )
    if not relayed:
        await message.reply(_("This customer cannot be reached from here."))
        return
    await message.reply(_("Sent to the customer."))
    await staff_alerts.refresh_by_id(alert_id)
