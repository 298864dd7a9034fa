"""The customer's side of a rating: the stars, "what went wrong?", and the thanks."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from handlers.editing import unless_unchanged
from handlers.filters import ButtonNumber
from handlers.staff_alerts import StaffAlerts, markup
from locales.rendering import Renderer
from scenarios.ratings import SCORES, Answer, RatingDesk, Verdict, request_context
from scenarios.rules import Rules
from storage.customers import CustomerRecord
from storage.ratings import RatingRecord, SqlRatings

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
    router.callback_query.register(rate, RateOrder.filter())
    router.callback_query.register(skip_comment, SkipComment.filter())
    router.message.register(
        take_comment,
        RatingComment.waiting,
        F.chat.type == "private",
        F.text,
        ~F.text.startswith("/"),
    )
    return router


def rating_buttons(rating_id: int) -> list[list[dict[str, str]]]:
    """★1…★5 in one row; the same for every language."""
    return [
        [
            {"text": f"★{score}", "callback_data": RateOrder(rating=rating_id, score=score).pack()}
            for score in SCORES
        ]
    ]


async def _show(
    callback: CallbackQuery,
    renderer: Renderer,
    locale: str,
    ratings: SqlRatings,
    rating: RatingRecord,
    *,
    buttons: bool,
    **flags: bool,
) -> None:
    """Re-render the request message: the score (or that it expired), buttons while useful."""
    if not isinstance(callback.message, Message):
        return
    summary = await ratings.order_summary(order_ref=rating.order_ref)
    if summary is None:
        return
    text = renderer.render(
        "rating_request.html",
        locale=locale,
        **request_context(summary, rating.score),
        **flags,
    )
    with unless_unchanged():
        await callback.message.edit_text(
            text, reply_markup=markup(rating_buttons(rating.id) if buttons else [])
        )


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
    answer = await rating_desk.rate(
        rating_id=callback_data.rating, customer_id=customer.id, score=callback_data.score
    )
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
    await _show(callback, renderer, locale, ratings, rating, buttons=True)
    assert rating.score is not None
    if rating_desk.is_negative(rating.score):
        await callback.answer(_("Thank you for your honesty."))
        await _escalate(callback, answer, staff_alerts, state)
        return
    await callback.answer(_("Thank you for your rating!"))
    await state.clear()
    await staff_alerts.score_raised(rating)
    if answer.previous is not None or not isinstance(callback.message, Message):
        return
    review = rules.ratings.review_url
    if rating.score == 5 and review is not None:
        await callback.message.answer(
            _("Thank you! We would be happy if you shared it in a public review."),
            reply_markup=markup([[{"text": _("Leave a review"), "url": str(review)}]]),
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
    await state.set_state(RatingComment.waiting)
    await state.update_data(rating_id=rating.id)
    await callback.message.answer(
        _(
            "We are sorry. What went wrong? Write it in one message and our team will "
            "look into it, or tap Skip."
        ),
        reply_markup=markup(
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
