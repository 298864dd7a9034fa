"""The customer's side of a rating: the stars, "what went wrong?", and the thanks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from aiogram import F, Router
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from handlers.editing import unless_unchanged
from handlers.filters import ButtonNumber
from handlers.flags import READS_FIRST
from handlers.keyboards import keyboard
from handlers.staff_alerts import StaffAlerts
from handlers.wizard import go_on_to
from locales.rendering import Renderer
from scenarios.ratings import SCORES, Answer, Press, RatingDesk, Verdict, request_context
from scenarios.rules import Rules
from storage.customers import CustomerRecord
from storage.messages import ButtonRows
from storage.ratings import AlertRecord, OrderSummary, RatingRecord, SqlRatings

log = logging.getLogger(__name__)


class RateOrder(CallbackData, prefix="rate"):
    rating: ButtonNumber
    score: ButtonNumber


class SkipComment(CallbackData, prefix="rskip"):
    rating: ButtonNumber


class RatingComment(StatesGroup):
    waiting = State()


def create_router() -> Router:
    router = Router(name="rating")
    router.callback_query.register(rate, RateOrder.filter(), flags=READS_FIRST)
    router.callback_query.register(skip_comment, SkipComment.filter())
    router.message.register(
        take_comment,
        RatingComment.waiting,
        F.chat.type == "private",
        F.text,
        ~F.text.startswith("/"),
    )
    return router


def rating_buttons(rating_id: int) -> ButtonRows:
    """★1…★5 in one row; the same for every language."""
    return [
        [
            {"text": f"★{score}", "callback_data": RateOrder(rating=rating_id, score=score).pack()}
            for score in SCORES
        ]
    ]


def request_text(
    renderer: Renderer, locale: str, summary: OrderSummary, score: int | None, **flags: bool
) -> str:
    """The rating request as it reads now: the order, the score given, or that it is closed
    (``expired``, ``withdrawn``, ``final``); the expiry sweep shows it the same way."""
    return renderer.render(
        "rating_request.html", locale=locale, **request_context(summary, score), **flags
    )


async def _show(
    callback: CallbackQuery,
    renderer: Renderer,
    locale: str,
    ratings: SqlRatings,
    rating: RatingRecord,
    *,
    buttons: bool,
    toast: str | None = None,
    summary: OrderSummary | None = None,
    **flags: bool,
) -> None:
    """Re-render the request message: the score (or that it expired), buttons while useful;
    with ``toast``, the button's answer goes at the same time as the edit (one round trip to
    Telegram instead of two; both leave after what the press changed is committed)."""
    edit = await _request_edit(callback, renderer, locale, ratings, rating, buttons, flags, summary)
    requests = [edit] if edit is not None else []
    if toast is not None:
        requests.append(_answer(callback, toast))
    if not requests:
        return
    # Only Bot API calls here, no database work: the first commits what the press changed as
    # it leaves. It is awaited at once, not started as a task, so the commit goes before
    # another turn of the event loop: SQLite's writer is held for one turn less (under a
    # burst of presses a turn is milliseconds). The others wait for that commit, then go.
    others = [asyncio.ensure_future(request) for request in requests[1:]]
    try:
        await requests[0]
    finally:
        await asyncio.gather(*others)


async def _answer(callback: CallbackQuery, text: str) -> None:
    await callback.answer(text)


async def _request_edit(
    callback: CallbackQuery,
    renderer: Renderer,
    locale: str,
    ratings: SqlRatings,
    rating: RatingRecord,
    buttons: bool,
    flags: dict[str, bool],
    summary: OrderSummary | None = None,
) -> Coroutine[Any, Any, None] | None:
    """The edit to send, read (unless ``summary`` was) and rendered now."""
    if not isinstance(callback.message, Message):
        return None
    summary = summary or await ratings.order_summary(order_ref=rating.order_ref)
    if summary is None:
        return None
    text = request_text(renderer, locale, summary, rating.score, **flags)
    message = callback.message
    markup = keyboard(rating_buttons(rating.id) if buttons else [])

    async def edit() -> None:
        with unless_unchanged():
            await message.edit_text(text, reply_markup=markup)

    return edit()


async def rate(
    callback: CallbackQuery,
    callback_data: RateOrder,
    customer: CustomerRecord,
    ratings: SqlRatings,
    rating_desk: RatingDesk,
    staff_alerts: StaffAlerts,
    rules: Rules,
    renderer: Renderer,
    locale: str,
    state: FSMContext,
) -> None:
    decided = await rating_desk.decide(
        rating_id=callback_data.rating, customer_id=customer.id, score=callback_data.score
    )
    summary: OrderSummary | None = None
    alert: AlertRecord | None = None
    if isinstance(decided, Press):
        # What the answer shows is read before the score is saved: the save then holds
        # SQLite's single writer for one statement until it commits, not for five.
        summary, alert = await ratings.press_view(rating_id=decided.rating.id)
        answer = await rating_desk.save(decided)
    else:
        answer = decided
    rating = answer.rating
    if answer.verdict is Verdict.FORGED or rating is None:
        await callback.answer(
            _("This button is not valid for you, so nothing was changed."), show_alert=True
        )
        return
    if answer.verdict is Verdict.WITHDRAWN:
        await callback.answer(_("This order was cancelled, so there is nothing to rate."))
        await _show(callback, renderer, locale, ratings, rating, buttons=False, withdrawn=True)
        return
    if answer.verdict is Verdict.EXPIRED:
        await callback.answer(_("Sorry, this rating request has expired."), show_alert=True)
        await _show(callback, renderer, locale, ratings, rating, buttons=False, expired=True)
        return
    if answer.verdict is Verdict.LOCKED:
        await callback.answer(_("Your rating is final now. Thank you!"), show_alert=True)
        await _show(callback, renderer, locale, ratings, rating, buttons=False, final=True)
        return
    if answer.verdict is Verdict.UNCHANGED:
        await callback.answer(_("Your rating is saved."))
        return
    assert rating.score is not None
    if rating_desk.is_negative(rating.score):
        toast = _("Thank you for your honesty.")
        await _show(
            callback, renderer, locale, ratings, rating, buttons=True, toast=toast, summary=summary
        )
        await _escalate(callback, answer, staff_alerts, state)
        return
    toast = _("Thank you for your rating!")
    await _show(
        callback, renderer, locale, ratings, rating, buttons=True, toast=toast, summary=summary
    )
    await state.clear()
    await staff_alerts.score_raised(rating, alert)
    if answer.previous is not None or not isinstance(callback.message, Message):
        return
    review = rules.ratings.review_url
    if rating.score == 5 and review is not None:
        await callback.message.answer(
            _("Thank you! We would be happy if you shared it in a public review."),
            reply_markup=keyboard([[{"text": _("Leave a review"), "url": str(review)}]]),
        )
    else:
        await callback.message.answer(_("Thank you! We are glad you liked it."))


async def _escalate(
    callback: CallbackQuery, answer: Answer, staff_alerts: StaffAlerts, state: FSMContext
) -> None:
    rating = answer.rating
    assert rating is not None
    await staff_alerts.raise_for(rating)
    if rating.comment is not None or not isinstance(callback.message, Message):
        return
    await go_on_to(state, RatingComment.waiting, rating_id=rating.id)
    await callback.message.answer(
        _(
            "We are sorry. What went wrong? Write it in one message and our team will "
            "look into it, or tap Skip."
        ),
        reply_markup=keyboard(
            [[{"text": _("Skip"), "callback_data": SkipComment(rating=rating.id).pack()}]]
        ),
    )


async def take_comment(
    message: Message,
    customer: CustomerRecord,
    state: FSMContext,
    rating_desk: RatingDesk,
    staff_alerts: StaffAlerts,
) -> None:
    data = await state.get_data()
    await state.clear()
    rating_id = data.get("rating_id")
    if not isinstance(rating_id, int) or message.text is None:
        return
    rating = await rating_desk.comment(
        rating_id=rating_id, customer_id=customer.id, text=message.text
    )
    if rating is None:
        return
    await message.answer(_("Thank you. Our team has your message and will get back to you."))
    await staff_alerts.refresh_for(rating)


async def skip_comment(
    callback: CallbackQuery,
    callback_data: SkipComment,
    customer: CustomerRecord,
    state: FSMContext,
    ratings: SqlRatings,
    staff_alerts: StaffAlerts,
) -> None:
    rating = await ratings.by_id(rating_id=callback_data.rating)
    if rating is None or rating.customer_id != customer.id:
        await callback.answer(
            _("This button is not valid for you, so nothing was changed."), show_alert=True
        )
        return
    data = await state.get_data()
    if data.get("rating_id") == rating.id:
        await state.clear()
    await callback.answer(_("All right. Thank you for your rating."))
    if isinstance(callback.message, Message):
        await callback.message.edit_reply_markup(reply_markup=None)
    # No comment is coming: the alert stops waiting for one.
    await staff_alerts.refresh_for(rating)
