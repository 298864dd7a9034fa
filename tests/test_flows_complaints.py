"""Issue 16: a complaint the customer withdraws by raising the score, and what its end releases
(on SQLite and PostgreSQL)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest

from handlers.rating import rating_buttons
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.delivery import MAX_TEXT, Category, Outgoing, enqueue, visible_length
from scenarios.rules import Staff
from storage.customers import SqlCustomers
from storage.database import Database
from storage.orders import NewOrder, OrderLine, SqlOrders
from storage.outbox import SqlOutbox
from storage.ratings import CustomerRating, SqlRatings
from storage.schema import customers
from tests.support.account_samples import ACCOUNT_SAMPLES
from tests.support.flow import Flow, build_flow
from tests.support.seed import NOW
from tests.support.updates import TgUser
from tests.test_flows_ratings import (
    ADMIN,
    ANNA,
    BORIS,
    OLGA,
    RULES,
    STAFF_CHAT,
    Shop,
    answer_of,
    as_message,
    deliver,
    edits,
    event,
    follower,
    labels,
    row,
    rows,
    sent,
)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def flow(db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer) -> Flow:
    return build_flow(
        db=db,
        clock=clock,
        i18n=i18n,
        renderer=renderer,
        admin_ids=(ADMIN.id,),
        rules=RULES,
        staff_chat_id=STAFF_CHAT,
    )


@pytest.fixture
def shop(flow: Flow, clock: FixedClock, renderer: Renderer) -> Shop:
    return Shop(flow, clock, renderer)


async def queue_for(flow: Flow, clock: FixedClock, customer_id: int, kind: str) -> str:
    """A reminder (service) or an offer (marketing) for the customer, due now."""
    category = Category.MARKETING if kind == "broadcast" else Category.SERVICE
    key = f"{kind}:{clock.now().isoformat()}"
    await enqueue(
        SqlOutbox(flow.db),
        Outgoing(
            dedupe_key=key,
            chat_id=ANNA.id,
            category=category,
            kind=kind,
            content={"text": f"{kind} for Anna"},
            customer_id=customer_id,
        ),
        clock=clock,
    )
    return key


async def complaint_posted(shop: Shop, flow: Flow, clock: FixedClock) -> tuple[int, int, str]:
    """Anna rates ★1, skips the comment; the alert reaches the staff chat and a reminder is
    held back by the complaint. (customer id, the alert's message id, the reminder's key)."""
    customer_id = await shop.ordered(ANNA, "A-1001")
    clock.advance(timedelta(minutes=60))
    [request] = sent(await deliver(flow, clock))
    assert request.text.startswith("How was your order <b>A-1001</b>?")
    [ask] = sent(await shop.press_star(ANNA, "A-1001", 1))
    skip = ask.reply_markup.inline_keyboard[0][0].callback_data  # type: ignore[union-attr]
    await flow.press(ANNA, str(skip), message=as_message(ANNA.id, ask.text, None))
    reminder = await queue_for(flow, clock, customer_id, "reminder")
    [alert] = [m for m in sent(await deliver(flow, clock)) if m.chat_id == STAFF_CHAT]
    assert "Open: nobody has taken it yet" in alert.text
    held = await row(flow.db, reminder)
    assert (held.state, held.last_error) == (
        "pending",
        "open complaint: reminder waits until resolved",
    )
    assert held.not_before == clock.now() + timedelta(hours=6)
    message_id = (await SqlOutbox(flow.db).by_key(dedupe_key="staff-alert:1")).telegram_message_id  # type: ignore[union-attr]
    assert message_id is not None
    return customer_id, message_id, reminder


async def test_i16_4_raising_the_score_closes_the_complaint_as_resolved_by_the_customer(
    shop: Shop, flow: Flow, clock: FixedClock
) -> None:
    customer_id, message_id, reminder = await complaint_posted(shop, flow, clock)
    clock.advance(timedelta(hours=2))

    calls = await shop.press_star(ANNA, "A-1001", 5)

    assert answer_of(calls).text == "Thank you for your rating!"
    ratings = SqlRatings(flow.db)
    alert = await ratings.alert(alert_id=1)
    assert alert is not None
    assert (alert.state, alert.resolved_by, alert.resolved_at) == ("resolved", None, clock.now())
    assert not await ratings.has_open_alert(customer_id=customer_id)
    # The staff chat's alert is edited through the outbox; the held reminder and new offers go.
    offer = await queue_for(flow, clock, customer_id, "broadcast")
    delivered = await deliver(flow, clock)
    [edit] = [e for e in edits(delivered) if e.chat_id == STAFF_CHAT]
    assert edit.message_id == message_id
    assert "Score: ★★★★★ (5/5)" in str(edit.text)
    assert "✅ Resolved by the customer: they raised the score" in str(edit.text)
    assert labels(edit) == ["Compensate", "Reply"]
    to_anna = [m.text for m in sent(delivered) if m.chat_id == ANNA.id]
    assert to_anna == ["reminder for Anna", "broadcast for Anna"]
    assert (await row(flow.db, reminder)).state == "sent"
    assert (await row(flow.db, offer)).state == "sent"

    # Lowered again within the 24 hours: the complaint is open again, and staff see it.
    clock.advance(timedelta(hours=1))
    await shop.press_star(ANNA, "A-1001", 2)
    reopened = await ratings.alert(alert_id=1)
    assert reopened is not None and reopened.state == "open"
    [edit] = [e for e in edits(await deliver(flow, clock)) if e.chat_id == STAFF_CHAT]
    assert "Score: ★★☆☆☆ (2/5)" in str(edit.text)
    assert "Open: nobody has taken it yet" in str(edit.text)
    assert labels(edit) == ["Take", "Resolved", "Compensate", "Reply"]


async def test_i16_4_a_complaint_staff_resolved_stays_theirs_when_the_score_changes(
    shop: Shop, flow: Flow, clock: FixedClock
) -> None:
    await complaint_posted(shop, flow, clock)
    alert = await shop.alert()
    await shop.staff_press(OLGA, "alert:1:resolve", message=alert)

    await shop.press_star(ANNA, "A-1001", 5)
    await shop.press_star(ANNA, "A-1001", 1)

    stored = await SqlRatings(flow.db).alert(alert_id=1)
    assert stored is not None
    assert (stored.state, stored.resolved_by, stored.resolved_by_name) == (
        "resolved",
        OLGA.id,
        "Olga (@olga)",
    )


async def test_i16_5_resolving_a_complaint_releases_held_messages_at_once(
    shop: Shop, flow: Flow, clock: FixedClock
) -> None:
    _, _, reminder = await complaint_posted(shop, flow, clock)
    clock.advance(timedelta(minutes=30))
    alert = await shop.alert()

    calls = await shop.staff_press(OLGA, "alert:1:resolve", message=alert)

    assert answer_of(calls).text == "Marked as resolved."
    assert (await row(flow.db, reminder)).not_before == clock.now()
    delivered = await deliver(flow, clock)
    assert [m.text for m in sent(delivered) if m.chat_id == ANNA.id] == ["reminder for Anna"]
    assert (await row(flow.db, reminder)).state == "sent"


async def test_i16_5_a_released_message_still_waits_out_quiet_hours(
    shop: Shop, flow: Flow, clock: FixedClock
) -> None:
    _, _, reminder = await complaint_posted(shop, flow, clock)
    clock.set(datetime(2026, 11, 20, 22, 0, tzinfo=UTC))  # 22:00 in the shop's zone (UTC)
    await shop.staff_press(OLGA, "alert:1:resolve", message=await shop.alert())

    delivered = await deliver(flow, clock)

    assert [m for m in sent(delivered) if m.chat_id == ANNA.id] == []
    held = await row(flow.db, reminder)
    assert (held.state, held.last_error) == ("pending", "quiet hours")
    assert held.not_before == datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


async def test_i16_13_the_staff_chat_reads_alerts_in_its_own_language(
    db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer
) -> None:
    rules = RULES.model_copy(update={"staff": Staff(locale="uk")})
    flow = build_flow(
        db=db,
        clock=clock,
        i18n=i18n,  # DEFAULT_LOCALE is en
        renderer=renderer,
        admin_ids=(ADMIN.id,),
        rules=rules,
        staff_chat_id=STAFF_CHAT,
    )
    shop = Shop(flow, clock, renderer)
    await shop.ordered(BORIS, "B-1")

    [ask] = sent(await shop.press_star(BORIS, "B-1", 1))

    assert ask.text.startswith("Нам очень жаль."), "the customer is served in Russian"
    queued = await row(flow.db, "staff-alert:1")
    assert queued.payload["locale"] == "uk"
    assert "Негативна оцінка замовлення B-1" in queued.payload["text"]
    assert "Відкрито: ніхто ще не взяв" in queued.payload["text"]
    assert [b["text"] for line in queued.payload["buttons"] for b in line] == [
        "Взяти",
        "Вирішено",
        "Компенсувати",
        "Відповісти",
    ]
    # An English-speaking staff member's press is answered in the staff chat's language too.
    calls = await shop.staff_press(OLGA, "alert:1:take", message=await shop.alert())
    assert answer_of(calls).text == "Тепер це ваше звернення."
    [taken] = edits(calls)
    assert "🛠 Взяв(ла) Olga (@olga)" in str(taken.text)
    assert "Негативна оцінка замовлення B-1" in str(taken.text)
    assert labels(taken) == ["Взяти", "Вирішено", "Компенсувати", "Відповісти"]
    calls = await shop.staff_press(OLGA, "comp:1:300", message=await shop.alert())
    assert answer_of(calls).text == "Нараховано 300 балів; клієнт отримає повідомлення."
    # What the customer gets is still in theirs.
    told = await row(flow.db, "compensation:1")
    assert told.payload["template"] == "rating_compensation.html"
    assert "locale" not in told.payload


LONG_NAMED = TgUser(
    1003,
    first_name="Анна-Мария " + "Константинопольская-" * 3,
    language_code="ru",
    username="a" * 32,
)
LONG_NAMES = [
    f"{n:02d} " + "Корм для кошек беззерновой с индейкой и уткой, " * 5 for n in range(24)
]


async def big_order(flow: Flow, clock: FixedClock, user: TgUser, ref: str) -> None:
    """A member whose order has 24 lines of ~240 characters (over 5 000 between them)."""
    await flow.send(user, "/start")  # a customer record with the user's long name
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=user.id)
    assert record is not None
    async with flow.db.transaction() as conn:
        await conn.execute(
            customers.update().where(customers.c.id == record.id).values(joined_at=NOW)
        )
    await SqlOrders(flow.db).add(
        NewOrder(
            order_ref=ref,
            total=2_400_000,
            currency="RUB",
            status="delivered",
            ordered_at=NOW,
            customer_id=record.id,
            lines=[
                OrderLine(sku=f"SKU-{n}", name=name, quantity=1, price=100_000)
                for n, name in enumerate(LONG_NAMES)
            ],
        ),
        now=NOW,
    )
    await follower(flow.db, clock).after_order(event(ref, record.id, "delivered"))


async def test_i16_14_a_long_alert_keeps_its_comment_and_fits_one_message(
    shop: Shop, flow: Flow, clock: FixedClock
) -> None:
    await big_order(flow, clock, LONG_NAMED, "BIG-1")
    clock.advance(timedelta(minutes=60))
    [request] = sent(await deliver(flow, clock))
    # The customer's own request fits too: ten lines, then how many more.
    assert visible_length(request.text) <= MAX_TEXT
    assert LONG_NAMES[9].strip() in request.text and LONG_NAMES[10].strip() not in request.text
    assert "…и ещё 14 товаров" in request.text
    rating = await SqlRatings(flow.db).by_order(order_ref="BIG-1")
    assert rating is not None
    message = as_message(LONG_NAMED.id, request.text, rating_buttons(rating.id))
    await flow.press(LONG_NAMED, rating_buttons(rating.id)[0][0]["callback_data"], message=message)
    [alert] = [m for m in sent(await deliver(flow, clock)) if m.chat_id == STAFF_CHAT]
    assert visible_length(alert.text) <= MAX_TEXT

    comment = ("Половина пакетов порвана, корм рассыпан по всей коробке & мокрый. " * 15)[:990]
    calls = await flow.send(LONG_NAMED, comment)

    assert [m.text for m in sent(calls)] == [
        "Спасибо. Ваше сообщение у нашей команды, мы с вами свяжемся."
    ], "thanks, and nothing went wrong"
    assert (await SqlRatings(flow.db).by_id(rating_id=rating.id)).comment == comment.strip()  # type: ignore[union-attr]
    [edit] = [e for e in edits(await deliver(flow, clock)) if e.chat_id == STAFF_CHAT]
    text = str(edit.text)
    assert visible_length(text) <= MAX_TEXT
    assert html.escape(comment.strip(), quote=False) in text.replace("&#39;", "'")
    assert "Customer: Анна-Мария" in text and LONG_NAMES[0].strip() in text
    assert re.search(r"…and \d+ more items", text), "the staff chat's default language is en"


async def test_i16_14_a_comment_too_long_for_its_alert_goes_as_a_reply_to_it(
    shop: Shop, flow: Flow, clock: FixedClock
) -> None:
    await big_order(flow, clock, LONG_NAMED, "BIG-2")
    rating = await SqlRatings(flow.db).by_order(order_ref="BIG-2")
    assert rating is not None
    message = as_message(LONG_NAMED.id, "How was your order BIG-2?", rating_buttons(rating.id))
    await flow.press(LONG_NAMED, rating_buttons(rating.id)[0][0]["callback_data"], message=message)
    assert [m.chat_id for m in sent(await deliver(flow, clock))] == [STAFF_CHAT]
    alert_id = (await SqlOutbox(flow.db).by_key(dedupe_key="staff-alert:1")).telegram_message_id  # type: ignore[union-attr]
    comment = ("Всё пришло не то и не так, & поддержка не отвечает третий день. " * 70)[:4000]

    await flow.send(LONG_NAMED, comment)

    delivered = await deliver(flow, clock)
    [edit] = [e for e in edits(delivered) if e.chat_id == STAFF_CHAT]
    assert "Comment: in the reply below" in str(edit.text)
    # Without the comment, as many lines as fit.
    assert "…and 9 more items" in str(edit.text)
    assert visible_length(str(edit.text)) <= MAX_TEXT
    [reply] = [m for m in sent(delivered) if m.chat_id == STAFF_CHAT]
    assert reply.reply_parameters is not None
    assert reply.reply_parameters.message_id == alert_id
    assert visible_length(reply.text) <= MAX_TEXT
    assert html.escape(comment.strip(), quote=False) in reply.text
    assert reply.text.startswith("<b>Comment on the negative rating of order BIG-2:</b>")


def test_i16_14_the_customer_profile_shortens_long_comments(renderer: Renderer) -> None:
    context = dict(ACCOUNT_SAMPLES["customer_profile.html"])
    long = "Пакет порван & корм мокрый. " * 150  # a whole message's worth, 4 000+ characters
    context["ratings"] = [
        CustomerRating(f"A-{n}", 1, long, NOW, "open")
        for n in range(5)  # what /customer shows
    ]

    text = renderer.render("customer_profile.html", locale="ru", **context)

    assert visible_length(text) <= MAX_TEXT
    assert "«Пакет порван &amp; корм мокрый. Пакет порван" in text
    assert text.count("…»") == 5


async def test_i16_4_a_staff_press_is_not_undone_by_an_older_queued_edit(
    shop: Shop, flow: Flow, clock: FixedClock
) -> None:
    await shop.ordered(ANNA, "A-1001")
    await shop.press_star(ANNA, "A-1001", 1)
    assert [m.chat_id for m in sent(await deliver(flow, clock))] == [STAFF_CHAT]
    await flow.send(ANNA, "Cold food")  # an edit with the comment is queued
    [queued] = [r for r in await rows(flow.db) if r.kind == "staff_alert_edit"]

    calls = await shop.staff_press(OLGA, "alert:1:take", message=await shop.alert())

    [taken] = edits(calls)
    assert "Comment: <i>Cold food</i>" in str(taken.text)
    assert "🛠 Taken by Olga (@olga)" in str(taken.text)
    stale = await row(flow.db, queued.dedupe_key)
    assert (stale.state, stale.last_error) == ("cancelled", "superseded by a staff press")
    assert [e for e in edits(await deliver(flow, clock)) if e.chat_id == STAFF_CHAT] == []
