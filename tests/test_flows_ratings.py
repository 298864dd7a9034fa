"""Ratings through the real Dispatcher: stars, comments, alerts and what staff do with them."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage
from aiogram.types import ChatMemberLeft, ChatMemberMember, Message, User
from sqlalchemy import select

from bot.delivery.sender import OutboxSender
from handlers.rating import rating_buttons
from locales import CatalogI18n, create_i18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.ledger import balance
from scenarios.orders import OrderEvent
from scenarios.ratings import RatingRequests
from scenarios.rules import Delivery, Ratings, Rules, Staff
from storage.audit import SqlAuditLog
from storage.database import Database
from storage.ledger import SqlLedger
from storage.messages import ButtonRows
from storage.outbox import SqlOutbox
from storage.ratings import SqlRatings
from storage.schema import ledger_entries, orders, outbox
from tests.support.flow import Flow, build_flow
from tests.support.seed import NOW, member, order
from tests.support.updates import TgUser

STAFF_CHAT = -1001234
ANNA = TgUser(1001, first_name="Anna", language_code="en")
BORIS = TgUser(1002, first_name="Boris", language_code="ru")
OLGA = TgUser(7001, first_name="Olga", language_code="en", username="olga")
EVE = TgUser(7002, first_name="Eve", language_code="en")
ADMIN = TgUser(9001, first_name="Max", language_code="en")
# Every staff press asks Telegram (no membership cache), as the prepared answers expect.
RULES = Rules(
    ratings=Ratings(review_url="https://example.com/reviews"),
    staff=Staff(membership_cache_seconds=0),
)
# The day's service cap leaves room for a reminder after the rating request.
FAST = Delivery(private_interval_seconds=0.0, rate_per_second=1000.0, service_per_day=3)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def flow(sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer) -> Flow:
    return build_flow(
        db=sqlite_db,
        clock=clock,
        i18n=i18n,
        renderer=renderer,
        admin_ids=(ADMIN.id,),
        rules=RULES,
        staff_chat_id=STAFF_CHAT,
    )


def follower(db: Database, clock: FixedClock, rules: Rules = RULES) -> RatingRequests:
    return RatingRequests(
        store=SqlRatings(db),
        outbox=SqlOutbox(db),
        rules=rules.ratings,
        clock=clock,
        buttons=rating_buttons,
    )


def event(order_id: str, customer_id: int | None, status: str, **extra: Any) -> OrderEvent:
    return OrderEvent(
        order_id=order_id,
        customer_id=customer_id,
        status=status,
        previous_status=extra.pop("previous_status", "paid"),
        ordered_at=NOW,
        recent=extra.pop("recent", True),
    )


async def rows(db: Database) -> list[Any]:
    async with db.read() as conn:
        return list(
            await conn.execute(
                select(
                    outbox.c.dedupe_key,
                    outbox.c.chat_id,
                    outbox.c.category,
                    outbox.c.kind,
                    outbox.c.payload,
                    outbox.c.state,
                    outbox.c.not_before,
                    outbox.c.last_error,
                ).order_by(outbox.c.id)
            )
        )


async def row(db: Database, key: str) -> Any:
    return next(r for r in await rows(db) if r.dedupe_key == key)


def as_message(chat_id: int, text: str, buttons: ButtonRows | None) -> Message:
    return Message.model_validate(
        {
            "message_id": 500,
            "date": int(datetime.now(UTC).timestamp()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
            "text": text,
            "reply_markup": {"inline_keyboard": buttons} if buttons else None,
        }
    )


def sent(calls: Sequence[object]) -> list[SendMessage]:
    return [call for call in calls if isinstance(call, SendMessage)]


def edits(calls: Sequence[object]) -> list[EditMessageText]:
    return [call for call in calls if isinstance(call, EditMessageText)]


def answer_of(calls: Sequence[object]) -> AnswerCallbackQuery:
    return next(call for call in calls if isinstance(call, AnswerCallbackQuery))


def labels(method: SendMessage | EditMessageText) -> list[str]:
    markup = method.reply_markup
    if markup is None:
        return []
    return [button.text for line in markup.inline_keyboard for button in line]  # type: ignore[union-attr]


def data_of(method: SendMessage | EditMessageText, text: str) -> str:
    for line in method.reply_markup.inline_keyboard:  # type: ignore[union-attr]
        for button in line:
            if button.text == text:
                return str(button.callback_data)
    raise AssertionError(f"no button {text!r} in {labels(method)}")


@functools.cache
def _texts() -> tuple[CatalogI18n, Renderer]:
    texts = create_i18n("en")
    return texts, Renderer(texts, currency="RUB", zone=ZoneInfo("UTC"))


async def deliver(flow: Flow, clock: FixedClock, rules: Rules = RULES) -> list[Any]:
    """Run the outbox sender over the flow's recording session; the calls it made."""
    start = len(flow.session.requests)
    texts, renderer = _texts()
    sender = OutboxSender(
        db=flow.db,
        bot=flow.bot,
        renderer=renderer,
        i18n=texts,
        rules=rules.model_copy(update={"delivery": FAST}),
        clock=clock,
        shop_zone=ZoneInfo("UTC"),
        worker_id="flow",
    )
    await sender.drain_until_empty()
    return flow.session.requests[start:]


def staff_member(user: TgUser) -> ChatMemberMember:
    return ChatMemberMember(user=User(id=user.id, is_bot=False, first_name=user.first_name))


def outsider(user: TgUser) -> ChatMemberLeft:
    return ChatMemberLeft(user=User(id=user.id, is_bot=False, first_name=user.first_name))


class Shop:
    """A member with a delivered order whose rating request is queued."""

    def __init__(self, flow: Flow, clock: FixedClock, renderer: Renderer) -> None:
        self.flow = flow
        self.clock = clock
        self.renderer = renderer

    async def ordered(self, user: TgUser, ref: str) -> int:
        customer_id = await member(self.flow.db, user.id)
        await order(self.flow.db, ref, customer_id, days=0, total=258_000, sku="Cat food 2 kg")
        await follower(self.flow.db, self.clock).after_order(event(ref, customer_id, "delivered"))
        return customer_id

    async def request(self, user: TgUser, ref: str) -> Message:
        queued = await row(self.flow.db, f"rating-request:{ref}")
        payload = queued.payload
        text = self.renderer.render(payload["template"], locale="en", **payload["context"])
        return as_message(user.id, text, payload["buttons"])

    async def press_star(self, user: TgUser, ref: str, score: int) -> list[Any]:
        message = await self.request(user, ref)
        data = next(
            b["callback_data"]
            for b in message.reply_markup.inline_keyboard[0]  # type: ignore[union-attr]
            for b in [b.model_dump()]
            if b["text"] == f"★{score}"
        )
        return await self.flow.press(user, data, message=message)

    async def alert(self, alert_id: int = 1) -> Message:
        queued = await row(self.flow.db, f"staff-alert:{alert_id}")
        return as_message(STAFF_CHAT, queued.payload["text"], queued.payload["buttons"])

    async def staff_press(
        self, user: TgUser, data: str, *, message: Message, allowed: bool = True
    ) -> list[Any]:
        if user.id != ADMIN.id:
            self.flow.session.prepare(staff_member(user) if allowed else outsider(user))
        return await self.flow.feed(self.flow.updates.callback(user, data, message=message))


@pytest.fixture
def shop(flow: Flow, clock: FixedClock, renderer: Renderer) -> Shop:
    return Shop(flow, clock, renderer)


async def test_one_request_per_order_and_a_five_invites_a_public_review(
    shop: Shop, flow: Flow, clock: FixedClock
) -> None:
    customer_id = await shop.ordered(ANNA, "A-1001")
    # The same event again (a replay) and a later "paid" report queue nothing more.
    await follower(flow.db, clock).after_order(event("A-1001", customer_id, "delivered"))
    [queued] = await rows(flow.db)
    assert (queued.dedupe_key, queued.chat_id, queued.category, queued.kind) == (
        "rating-request:A-1001",
        ANNA.id,
        "service",
        "rating_request",
    )
    assert queued.not_before == NOW + timedelta(minutes=60)
    request = await shop.request(ANNA, "A-1001")
    assert request.text == (
        "How was your order <b>A-1001</b>?\n• Cat food 2 kg × 1\n\n"
        "Tap a star: 1 is bad, 5 is excellent."
    )
    assert [b.text for b in request.reply_markup.inline_keyboard[0]] == [  # type: ignore[union-attr]
        "★1",
        "★2",
        "★3",
        "★4",
        "★5",
    ]

    calls = await shop.press_star(ANNA, "A-1001", 5)

    assert answer_of(calls).text == "Thank you for your rating!"
    [edited] = edits(calls)
    assert "Your rating: ★★★★★\nYou can change it within 24 hours." in str(edited.text)
    assert labels(edited) == ["★1", "★2", "★3", "★4", "★5"]
    [invite] = sent(calls)
    assert invite.text == "Thank you! We would be happy if you shared it in a public review."
    assert invite.reply_markup.inline_keyboard[0][0].url == "https://example.com/reviews"  # type: ignore[union-attr]
    rating = await SqlRatings(flow.db).by_order(order_ref="A-1001")
    assert rating is not None
    assert rating.score == 5
    assert await SqlRatings(flow.db).alert_for_rating(rating_id=rating.id) is None


async def test_requests_follow_the_rules_for_who_when_and_which_status(
    flow: Flow, clock: FixedClock
) -> None:
    anna = await member(flow.db, ANNA.id)
    for ref in ("OLD", "PAID", "NONMEMBER", "NOW", "GONE"):
        await order(flow.db, ref, anna, days=0)
    requests = follower(flow.db, clock)
    await requests.after_order(event("OLD", anna, "delivered", recent=False))
    await requests.after_order(event("PAID", anna, "paid", previous_status=None))
    await requests.after_order(event("NONMEMBER", None, "delivered"))
    assert await rows(flow.db) == []

    on_paid = Rules(ratings=Ratings(rate_on="paid", rating_delay_minutes=0))
    await follower(flow.db, clock, on_paid).after_order(
        event("NOW", anna, "paid", previous_status=None)
    )
    [now] = await rows(flow.db)
    assert (now.dedupe_key, now.not_before) == ("rating-request:NOW", NOW)

    await requests.after_order(event("GONE", anna, "delivered"))
    await requests.after_order(event("GONE", anna, "cancelled", previous_status="delivered"))
    gone = await row(flow.db, "rating-request:GONE")
    assert (gone.state, gone.last_error) == ("cancelled", "order GONE was cancelled")
    rating = await SqlRatings(flow.db).by_order(order_ref="GONE")
    assert rating is not None
    assert rating.withdrawn_at == NOW
    # A press on the withdrawn request (had it gone out) changes nothing.
    message = as_message(ANNA.id, "How was your order GONE?", rating_buttons(rating.id))
    calls = await flow.press(
        ANNA, rating_buttons(rating.id)[0][0]["callback_data"], message=message
    )
    assert answer_of(calls).text == "This order was cancelled, so there is nothing to rate."
    [shown] = edits(calls)
    assert str(shown.text).endswith("This order was cancelled, so there is nothing to rate.")
    assert shown.reply_markup is None
    assert (await SqlRatings(flow.db).by_order(order_ref="GONE")).score is None  # type: ignore[union-attr]


async def test_forged_and_foreign_rating_buttons_change_nothing(shop: Shop, flow: Flow) -> None:
    await shop.ordered(ANNA, "A-1001")
    await member(flow.db, BORIS.id)
    message = await shop.request(ANNA, "A-1001")

    for user, data in ((BORIS, "rate:1:1"), (ANNA, "rate:1:9"), (ANNA, "rate:999:5")):
        calls = await flow.press(user, data, message=message)
        answer = answer_of(calls)
        assert answer.show_alert
        assert answer.text in {
            "This button is not valid for you, so nothing was changed.",
            "Эта кнопка не для вас или устарела, поэтому ничего не изменилось.",
        }
        assert edits(calls) == []
    rating = await SqlRatings(flow.db).by_order(order_ref="A-1001")
    assert rating is not None
    assert rating.score is None
    assert [r.dedupe_key for r in await rows(flow.db)] == ["rating-request:A-1001"]


async def test_an_unanswered_request_expires_and_a_given_score_locks_after_a_day(
    shop: Shop, flow: Flow, clock: FixedClock
) -> None:
    await shop.ordered(ANNA, "A-1001")
    await shop.ordered(BORIS, "B-1")
    clock.advance(timedelta(minutes=60, days=7))

    calls = await shop.press_star(ANNA, "A-1001", 4)

    assert answer_of(calls).text == "Sorry, this rating request has expired."
    [expired] = edits(calls)
    assert str(expired.text).endswith("This request has expired. Thank you anyway!")
    assert expired.reply_markup is None
    assert (await SqlRatings(flow.db).by_order(order_ref="A-1001")).score is None  # type: ignore[union-attr]

    clock.set(NOW + timedelta(hours=2))
    await shop.press_star(BORIS, "B-1", 4)
    clock.advance(timedelta(hours=23))
    await shop.press_star(BORIS, "B-1", 5)  # changed within 24 h of the first answer
    clock.advance(timedelta(hours=2))
    calls = await shop.press_star(BORIS, "B-1", 1)

    assert answer_of(calls).text == "Ваша оценка уже окончательная. Спасибо!"
    [final] = edits(calls)
    assert str(final.text).endswith("Ваша оценка: ★★★★★\nТеперь оценка окончательная.")
    assert final.reply_markup is None
    rating = await SqlRatings(flow.db).by_order(order_ref="B-1")
    assert rating is not None
    assert rating.score == 5
    assert await SqlRatings(flow.db).alert_for_rating(rating_id=rating.id) is None


async def test_a_negative_rating_asks_what_went_wrong_and_alerts_the_staff(
    shop: Shop, flow: Flow
) -> None:
    await shop.ordered(ANNA, "A-1001")

    calls = await shop.press_star(ANNA, "A-1001", 2)

    [ask] = sent(calls)
    assert ask.text.startswith("We are sorry. What went wrong?")
    assert labels(ask) == ["Skip"]
    alert = await row(flow.db, "staff-alert:1")
    assert (alert.chat_id, alert.category, alert.kind, alert.state) == (
        STAFF_CHAT,
        "transactional",
        "staff_alert",
        "pending",
    )
    text = alert.payload["text"]
    for fragment in (
        "Negative rating of order A-1001",
        "Score: ★★☆☆☆ (2/5)",
        "Customer: Anna",
        "Tier: Bronze",
        "Total: RUB",
        "• Cat food 2 kg × 1",
        "Comment: waiting for the customer…",
        "Open: nobody has taken it yet",
    ):
        assert fragment in text
    assert [b["text"] for line in alert.payload["buttons"] for b in line] == [
        "Take",
        "Resolved",
        "Compensate",
        "Reply",
    ]

    [thanks] = sent(await flow.send(ANNA, "The <b>bag</b> was torn & wet"))

    assert thanks.text == "Thank you. Our team has your message and will get back to you."
    rating = await SqlRatings(flow.db).by_order(order_ref="A-1001")
    assert rating is not None
    assert rating.comment == "The <b>bag</b> was torn & wet"
    # The alert has not gone out yet: it goes with the comment in it, escaped.
    updated = await row(flow.db, "staff-alert:1")
    assert (
        "Comment: <i>The &lt;b&gt;bag&lt;/b&gt; was torn &amp; wet</i>" in updated.payload["text"]
    )
    # The comment was taken once; the next message is just a message.
    [after] = sent(await flow.send(ANNA, "hello"))
    assert after.text == "I didn't understand that. /help shows what I can do."


async def test_a_comment_after_the_alert_went_out_edits_it_and_skip_ends_the_question(
    shop: Shop, flow: Flow, clock: FixedClock
) -> None:
    await shop.ordered(ANNA, "A-1001")
    await shop.press_star(ANNA, "A-1001", 1)
    outbox_store = SqlOutbox(flow.db)
    queued = await outbox_store.by_key(dedupe_key="staff-alert:1")
    assert queued is not None
    async with flow.db.transaction() as conn:
        await conn.execute(
            outbox.update()
            .where(outbox.c.dedupe_key == "staff-alert:1")
            .values(state="sent", telegram_message_id=777)
        )

    calls = await flow.send(ANNA, "Cold food")

    # The edit is queued, paced by the group limit like any message to the staff chat.
    assert edits(calls) == []
    [queued_edit] = [r for r in await rows(flow.db) if r.kind == "staff_alert_edit"]
    assert queued_edit.dedupe_key.startswith("staff-alert:1:edit:")
    assert (queued_edit.chat_id, queued_edit.category) == (STAFF_CHAT, "transactional")
    assert queued_edit.payload["edit_of"] == "staff-alert:1"
    delivered = await deliver(flow, clock)
    [edit] = [e for e in edits(delivered) if e.chat_id == STAFF_CHAT]
    assert edit.message_id == 777
    assert "Comment: <i>Cold food</i>" in str(edit.text)
    assert (await row(flow.db, queued_edit.dedupe_key)).state == "sent"

    # An alert caught in flight (a sender has it) cannot be edited yet: the edit waits for it,
    # and goes as a message of its own if the alert never arrived.
    await shop.ordered(OLGA, "C-1")
    await shop.press_star(OLGA, "C-1", 2)
    async with flow.db.transaction() as conn:
        await conn.execute(
            outbox.update().where(outbox.c.dedupe_key == "staff-alert:2").values(state="sending")
        )
    await flow.send(OLGA, "Late & cold")
    [copy] = [r for r in await rows(flow.db) if r.dedupe_key.startswith("staff-alert:2:edit:")]
    assert (copy.chat_id, copy.category, copy.kind) == (
        STAFF_CHAT,
        "transactional",
        "staff_alert_edit",
    )
    assert "Comment: <i>Late &amp; cold</i>" in copy.payload["text"]
    assert [c for c in await deliver(flow, clock) if getattr(c, "chat_id", 0) == STAFF_CHAT] == []
    assert (await row(flow.db, copy.dedupe_key)).last_error == (
        "waiting for the message it refers to"
    )
    async with flow.db.transaction() as conn:
        await conn.execute(
            outbox.update().where(outbox.c.dedupe_key == "staff-alert:2").values(state="unknown")
        )
    clock.advance(timedelta(minutes=1))
    [fallback] = [m for m in sent(await deliver(flow, clock)) if m.chat_id == STAFF_CHAT]
    assert "Comment: <i>Late &amp; cold</i>" in fallback.text

    await shop.ordered(BORIS, "B-1")
    calls = await shop.press_star(BORIS, "B-1", 3)
    [ask] = sent(calls)
    calls = await flow.press(
        BORIS, data_of(ask, "Пропустить"), message=as_message(BORIS.id, ask.text, None)
    )
    assert answer_of(calls).text == "Хорошо. Спасибо за оценку."
    second = await row(flow.db, "staff-alert:3")
    assert "Comment: none" in second.payload["text"]
    [reply] = sent(await flow.send(BORIS, "just chatting"))
    assert reply.text != "Спасибо. Ваше сообщение у нашей команды, мы с вами свяжемся."


async def test_only_staff_take_and_resolve_an_alert_and_the_alert_shows_who(
    shop: Shop, flow: Flow
) -> None:
    await shop.ordered(ANNA, "A-1001")
    await shop.press_star(ANNA, "A-1001", 2)
    alert = await shop.alert()

    calls = await shop.staff_press(EVE, "alert:1:take", message=alert, allowed=False)

    assert answer_of(calls).text == "Sorry, only the shop's staff may do this."
    assert edits(calls) == []
    stored = await SqlRatings(flow.db).alert(alert_id=1)
    assert stored is not None
    assert (stored.state, stored.taken_by) == ("open", None)

    calls = await shop.staff_press(OLGA, "alert:1:take", message=alert)
    assert answer_of(calls).text == "It is yours now."
    [taken] = edits(calls)
    assert "🛠 Taken by Olga (@olga)" in str(taken.text)
    assert labels(taken) == ["Take", "Resolved", "Compensate", "Reply"]

    calls = await shop.staff_press(ADMIN, "alert:1:resolve", message=alert)
    assert answer_of(calls).text == "Marked as resolved."
    [resolved] = edits(calls)
    assert "✅ Resolved by Max" in str(resolved.text)
    assert labels(resolved) == ["Compensate", "Reply"]
    stored = await SqlRatings(flow.db).alert(alert_id=1)
    assert stored is not None
    assert (stored.state, stored.taken_by, stored.resolved_by) == ("resolved", OLGA.id, ADMIN.id)


async def test_a_staff_press_edit_counts_against_the_group_limit_and_waits_when_it_is_spent(
    shop: Shop, flow: Flow
) -> None:
    await shop.ordered(ANNA, "A-1001")
    await shop.press_star(ANNA, "A-1001", 2)
    alert = await shop.alert()
    limiter = flow.dispatcher["limiter"]

    [taken] = edits(await shop.staff_press(OLGA, "alert:1:take", message=alert))
    assert "🛠 Taken by Olga (@olga)" in str(taken.text)
    # The outbox sent the rest of the minute's 20 messages to the staff chat meanwhile.
    for _ in range(limiter.limits.group_per_minute - 1):
        limiter.count_group_send(STAFF_CHAT)

    calls = await shop.staff_press(ADMIN, "alert:1:resolve", message=alert)

    assert answer_of(calls).text == "Marked as resolved."
    assert edits(calls) == [], "the group limit is spent: no edit at once"
    [queued] = [r for r in await rows(flow.db) if r.kind == "staff_alert_edit"]
    assert (queued.chat_id, queued.category) == (STAFF_CHAT, "transactional")
    assert queued.payload["edit_of"] == "staff-alert:1"
    assert "✅ Resolved by Max" in queued.payload["text"]
    assert [b["text"] for row in queued.payload["buttons"] for b in row] == ["Compensate", "Reply"]


async def test_compensation_is_granted_once_per_alert_told_and_audited(
    shop: Shop, flow: Flow, clock: FixedClock
) -> None:
    customer_id = await shop.ordered(ANNA, "A-1001")
    await shop.press_star(ANNA, "A-1001", 2)
    alert = await shop.alert()

    calls = await shop.staff_press(OLGA, "alert:1:comp", message=alert)
    [choices] = edits(calls)
    assert labels(choices) == ["+100", "+300", "+500", "Back"]
    forged = await shop.staff_press(OLGA, "comp:1:250", message=alert)
    assert answer_of(forged).text == "This button is out of date."

    calls = await shop.staff_press(OLGA, data_of(choices, "+300"), message=alert)
    again = await shop.staff_press(OLGA, data_of(choices, "+500"), message=alert)

    assert answer_of(calls).text == "Granted 300 points; the customer is told."
    [shown] = edits(calls)
    assert "🎁 Compensated with 300 points by Olga (@olga)" in str(shown.text)
    assert "Compensate" not in labels(shown)
    assert answer_of(again).text == "Already compensated with 300 points; nothing more was granted."
    view = await balance(SqlLedger(flow.db), customer_id=customer_id, clock=clock)
    assert view.available == 300
    audit = await SqlAuditLog(flow.db).for_customer(customer_id=customer_id)
    assert [(a.action, a.actor_id, a.details["points"]) for a in audit] == [
        ("compensation", OLGA.id, 300)
    ]
    told = await row(flow.db, "compensation:1")
    assert (told.chat_id, told.category, told.payload["template"]) == (
        ANNA.id,
        "transactional",
        "rating_compensation.html",
    )
    assert told.payload["context"] == {"points": 300, "order_id": "A-1001"}


async def test_reply_relays_the_staff_members_next_message_to_the_customer(
    shop: Shop, flow: Flow
) -> None:
    await shop.ordered(ANNA, "A-1001")
    await shop.press_star(ANNA, "A-1001", 2)
    alert = await shop.alert()

    calls = await shop.staff_press(OLGA, "alert:1:reply", message=alert)
    assert answer_of(calls).show_alert
    calls = await flow.feed(
        flow.updates.message(OLGA, "We'll bring a new bag <3", chat_id=STAFF_CHAT)
    )

    assert [m.text for m in sent(calls)] == ["Sent to the customer."]
    relayed = await row(flow.db, "staff-reply:1:" + str(calls[0].reply_parameters.message_id))  # type: ignore[attr-defined]
    assert (relayed.chat_id, relayed.category, relayed.kind) == (
        ANNA.id,
        "transactional",
        "staff_reply",
    )
    assert relayed.payload["context"]["text"] == "We'll bring a new bag <3"
    updated = await row(flow.db, "staff-alert:1")
    assert "💬 Olga (@olga) replied to the customer" in updated.payload["text"]
    # Only the next message is relayed.
    assert sent(await flow.feed(flow.updates.message(OLGA, "thanks all", chat_id=STAFF_CHAT))) == []


async def test_stats_for_admins_only(shop: Shop, flow: Flow, clock: FixedClock) -> None:
    await shop.ordered(ANNA, "A-1001")
    await shop.ordered(BORIS, "B-1")
    await shop.press_star(ANNA, "A-1001", 5)
    await shop.press_star(BORIS, "B-1", 2)
    alert = await shop.alert()
    clock.advance(timedelta(hours=3))
    await shop.staff_press(OLGA, "alert:1:resolve", message=alert)

    [summary] = sent(await flow.send(ADMIN, "/stats"))
    satisfaction = next(
        str(button.callback_data)
        for line in summary.reply_markup.inline_keyboard  # type: ignore[union-attr]
        for button in line
        if button.text == "Satisfaction"
    )
    [stats] = edits(await flow.press(ADMIN, satisfaction, message=flow.message_from(summary)))
    assert stats.text is not None
    assert "Last 7 days: 2 ratings, average 3.5, CSAT 50%" in stats.text
    assert "Negative alerts: 0 open, 1 resolved" in stats.text
    assert "Median time to resolve: 3 hours" in stats.text
    [refused] = sent(await flow.send(ANNA, "/stats"))
    assert refused.text == "This command is for the shop's admins."


async def test_without_a_staff_chat_no_alert_is_raised_so_nobody_stays_muted(
    sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer
) -> None:
    lonely = build_flow(db=sqlite_db, clock=clock, i18n=i18n, renderer=renderer, rules=RULES)
    shop = Shop(lonely, clock, renderer)
    customer_id = await shop.ordered(ANNA, "A-1001")

    [ask] = sent(await shop.press_star(ANNA, "A-1001", 1))

    assert str(ask.text).startswith("We are sorry. What went wrong?")
    assert [r.dedupe_key for r in await rows(sqlite_db)] == ["rating-request:A-1001"]
    assert not await SqlRatings(sqlite_db).has_open_alert(customer_id=customer_id)


async def test_a_changed_score_updates_the_alert_and_back_restores_the_buttons(
    shop: Shop, flow: Flow
) -> None:
    await shop.ordered(ANNA, "A-1001")
    await shop.press_star(ANNA, "A-1001", 3)
    await flow.send(ANNA, "Late")

    calls = await shop.press_star(ANNA, "A-1001", 1)

    assert sent(calls) == [], "the comment is already there: no second question"
    alert = await row(flow.db, "staff-alert:1")
    assert "Score: ★☆☆☆☆ (1/5)" in alert.payload["text"]
    assert "Comment: <i>Late</i>" in alert.payload["text"]
    assert len([r for r in await rows(flow.db) if r.kind == "staff_alert"]) == 1

    message = await shop.alert()
    [choices] = edits(await shop.staff_press(OLGA, "alert:1:comp", message=message))
    [back] = edits(await shop.staff_press(OLGA, data_of(choices, "Back"), message=message))
    assert labels(back) == ["Take", "Resolved", "Compensate", "Reply"]


async def test_erasure_scrubs_the_comment_the_alert_and_sent_messages_but_keeps_the_score(
    shop: Shop, flow: Flow
) -> None:
    customer_id = await shop.ordered(ANNA, "A-1001")
    await shop.press_star(ANNA, "A-1001", 2)
    await flow.send(ANNA, "Torn bag, call Anna at +7 999 111-22-33")
    alert = await shop.alert()
    assert "Customer: Anna" in str(alert.text)
    await shop.staff_press(OLGA, "comp:1:100", message=alert)
    async with flow.db.transaction() as conn:  # everything went out
        await conn.execute(outbox.update().values(state="sent", telegram_message_id=777))

    [ask] = sent(await flow.send(ANNA, "/delete_me"))
    await flow.press(ANNA, "erase:1", message=as_message(ANNA.id, ask.text, None))

    ratings = SqlRatings(flow.db)
    rating = await ratings.by_order(order_ref="A-1001")
    assert rating is not None
    assert (rating.customer_id, rating.score, rating.comment) == (customer_id, 2, None)
    stored = await ratings.alert(alert_id=1)
    assert stored is not None and stored.snapshot == {}
    scrubbed = {r.dedupe_key: (r.chat_id, r.state, r.payload) for r in await rows(flow.db)}
    assert scrubbed["rating-request:A-1001"] == (0, "sent", {"erased": True})  # no chat id
    assert scrubbed["staff-alert:1"] == (STAFF_CHAT, "sent", {"erased": True})
    # The alert already posted is edited through the outbox (#18.3); the rest keeps nothing.
    edit = scrubbed.pop("staff-alert:1:erased")
    assert (edit[0], edit[1], edit[2]["edit_message_id"]) == (STAFF_CHAT, "pending", 777)
    assert "Anna" not in edit[2]["text"]
    assert all(payload == {"erased": True} for _, _, payload in scrubbed.values())
    async with flow.db.read() as conn:
        kept = (await conn.execute(select(orders.c.order_ref, orders.c.customer_id))).all()
        entries = (
            await conn.execute(select(ledger_entries.c.source, ledger_entries.c.customer_id))
        ).all()
    assert [tuple(r) for r in kept] == [("A-1001", customer_id)]
    # The compensation stays on the books; erasure forfeits it (#15.4).
    assert [tuple(e) for e in entries] == [
        ("rating-alert:1", customer_id),
        (f"forfeit:{customer_id}", customer_id),
    ]
    [audit] = [
        e
        for e in await SqlAuditLog(flow.db).for_customer(customer_id=customer_id)
        if e.action == "erasure"
    ]
    assert (audit.details["ratings_scrubbed"], audit.details["alerts_scrubbed"]) == (1, 1)
    assert audit.details["messages_scrubbed"] == len(scrubbed)

    # Staff still work the alert, without the person in it; a reply has nowhere to go.
    calls = await shop.staff_press(OLGA, "alert:1:take", message=alert)
    [taken] = edits(calls)
    text = str(taken.text)
    assert "Negative rating of order A-1001" in text
    assert "The customer has deleted their personal data." in text
    assert "Comment: none" in text
    assert "Anna" not in text and "Torn" not in text and "Phone" not in text
    await shop.staff_press(OLGA, "alert:1:reply", message=alert)
    calls = await flow.feed(flow.updates.message(OLGA, "Sorry!", chat_id=STAFF_CHAT))
    assert [m.text for m in sent(calls)] == ["This customer cannot be reached from here."]
    assert not [r for r in await rows(flow.db) if r.dedupe_key.startswith("staff-reply:")]


async def test_i15_13_a_russian_staff_member_reads_one_language_in_the_staff_chat(
    shop: Shop, flow: Flow
) -> None:
    """The staff chat has one language (staff.locale, here DEFAULT_LOCALE: en): the answer to a
    Russian-speaking staff member is English through and through, points included."""
    olga_ru = TgUser(7003, first_name="Ольга", language_code="ru", username="olga_ru")
    await shop.ordered(ANNA, "A-1001")
    await shop.press_star(ANNA, "A-1001", 2)
    alert = await shop.alert()
    [choices] = edits(await shop.staff_press(olga_ru, "alert:1:comp", message=alert))
    calls = await shop.staff_press(olga_ru, data_of(choices, "+300"), message=alert)
    answer = answer_of(calls).text or ""
    assert answer == "Granted 300 points; the customer is told."
