"""Joining through the real Dispatcher: consent, phone, birthday, card; /stop, /delete_me."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageReplyMarkup,
    EditMessageText,
    SendMessage,
)
from aiogram.types import ReplyKeyboardMarkup, ReplyKeyboardRemove
from sqlalchemy import select

from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.cards import card_number, display_card_number, valid_card
from scenarios.clock import FixedClock
from scenarios.delivery import Category, Outgoing, enqueue
from scenarios.orders import OrderProblem, RawCustomer, RawItem, RawOrder
from scenarios.rules import Rules, Shop, Signup
from storage.audit import SqlAuditLog
from storage.customers import SqlCustomers
from storage.database import Database
from storage.orders import NewOrder, OrderLine, SqlOrders
from storage.outbox import SqlOutbox
from storage.referrals import SqlReferrals
from storage.schema import customers, ledger_entries, ledger_lots, orders, outbox
from tests.support.flow import Flow, build_flow
from tests.support.services import services_for
from tests.support.signup import contact, customer_count, entries, inline_labels, photos, texts
from tests.support.updates import TgUser

ANNA = TgUser(2001, first_name="Anna", language_code="en")
OLHA = TgUser(2002, first_name="Ольга", language_code="uk")
IVAN = TgUser(2003, first_name="Иван", language_code="ru")
ANNA_PHONE = "79991234567"
RULES = Rules(shop=Shop(name="Lapki", terms_url="https://lapki.example/terms"))


@pytest.fixture
def flow(db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer) -> Flow:
    return build_flow(db=db, clock=clock, i18n=i18n, renderer=renderer, rules=RULES)


async def start_and_accept(flow: Flow, user: TgUser, *, offers: bool = False) -> SendMessage:
    [welcome] = [c for c in await flow.send(user, "/start") if isinstance(c, SendMessage)]
    if offers:
        await flow.press(user, "join:offers", message=flow.message_from(welcome))
    calls = await flow.press(user, "join:accept", message=flow.message_from(welcome))
    [ask] = [c for c in calls if isinstance(c, SendMessage)]
    return ask


async def join(flow: Flow, user: TgUser, phone: str, *, birthday: str | None = None) -> None:
    await start_and_accept(flow, user)
    calls = await flow.feed(contact(flow.updates, user, phone))
    question = [c for c in calls if isinstance(c, SendMessage)][-1]
    if birthday is None:
        await flow.press(user, "bday:skip", message=flow.message_from(question))
    else:
        await flow.send(user, birthday)


async def test_a_new_customer_joins_with_consent_phone_birthday_and_gets_a_card(
    flow: Flow, clock: FixedClock
) -> None:
    [welcome] = [c for c in await flow.send(ANNA, "/start") if isinstance(c, SendMessage)]
    assert welcome.text.startswith(
        "Hello, Anna!\nThis is the bonus program of <b>Lapki</b>.\nEvery purchase earns points"
    )
    assert 'To join, accept the <a href="https://lapki.example/terms">program terms</a>.' in (
        welcome.text
    )
    assert inline_labels(welcome) == [
        "📄 Program terms",
        "⬜ Offers and news",
        "✅ Accept the terms and join",
        "No, thanks",
    ]
    ticked = await flow.press(ANNA, "join:offers", message=flow.message_from(welcome))
    [edit] = [c for c in ticked if isinstance(c, EditMessageReplyMarkup)]
    assert inline_labels(edit)[1] == "☑️ Offers and news"

    calls = await flow.press(ANNA, "join:accept", message=flow.message_from(welcome))
    [ask] = [c for c in calls if isinstance(c, SendMessage)]
    assert ask.text.startswith("Thank you! Now share your phone number")
    assert isinstance(ask.reply_markup, ReplyKeyboardMarkup)
    [[button]] = ask.reply_markup.keyboard
    assert (button.text, button.request_contact) == ("📱 Share my phone number", True)

    calls = await flow.feed(contact(flow.updates, ANNA, ANNA_PHONE))
    [saved, question] = [c for c in calls if isinstance(c, SendMessage)]
    assert saved.text == "You are in! Your phone number is saved."
    assert isinstance(saved.reply_markup, ReplyKeyboardRemove)
    assert question.text.startswith("One more, optional: when is your birthday?")
    assert inline_labels(question) == ["Skip"]

    calls = await flow.send(ANNA, "31.12.1990")
    assert texts(calls) == ["Thank you, your birthday is saved."]
    [card] = photos(calls)
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert record is not None and record.card_number is not None
    # A random card number (#18.7): not "29" + the customer id, which anyone could work out.
    assert record.card_number != card_number(record.id)
    assert valid_card(record.card_number) == record.card_number
    assert card.caption == (
        "Welcome to the program! 100 points are already yours.\n"
        f"Your member card: <b>{display_card_number(record.card_number)}</b>\n"
        "Show this QR code at the till, or give your phone number, to earn points.\n"
        "To spend points, tap “Code to spend points” (or send /code) and tell the cashier the "
        "one-time code.\n"
        "/invite brings a friend: you both get points."
    )
    assert inline_labels(card) == ["Code to spend points"]
    assert card.photo.filename == f"card-{record.card_number}.png"  # type: ignore[union-attr]
    assert (record.id, record.phone, record.joined_at) == (1, "+79991234567", clock.now())
    assert record.terms_accepted_at == clock.now()
    assert (record.marketing_opt_in, record.marketing_changed_at) == (True, clock.now())
    assert (record.birthday_day, record.birthday_month, record.birthday_year) == (31, 12, 1990)
    assert record.birthday_set_at == clock.now()
    assert await entries(flow.db, record.id) == [("welcome", "customer:1", 100)]


async def test_offers_stay_off_unless_ticked_and_the_birthday_can_be_skipped(flow: Flow) -> None:
    await start_and_accept(flow, ANNA)
    calls = await flow.feed(contact(flow.updates, ANNA, ANNA_PHONE))
    question = [c for c in calls if isinstance(c, SendMessage)][-1]
    calls = await flow.press(ANNA, "bday:skip", message=flow.message_from(question))
    assert len(photos(calls)) == 1
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert record is not None and record.joined_at is not None
    assert record.marketing_opt_in is False
    assert record.birthday_month is None


async def test_declining_the_terms_joins_nothing(flow: Flow) -> None:
    [welcome] = [c for c in await flow.send(OLHA, "/start") if isinstance(c, SendMessage)]
    calls = await flow.press(OLHA, "join:decline", message=flow.message_from(welcome))
    [edit] = [c for c in calls if isinstance(c, EditMessageText)]
    assert edit.text is not None
    assert edit.text.startswith("Гаразд: ви не приєдналися до програми")
    # A contact sent afterwards is not a sign-up either.
    await flow.feed(contact(flow.updates, OLHA, "380501234567"))
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=OLHA.id)
    assert record is not None
    assert (record.joined_at, record.phone, record.terms_accepted_at) == (None, None, None)
    assert await entries(flow.db, record.id) == []


async def test_someone_elses_contact_is_refused_and_nothing_is_stored(flow: Flow) -> None:
    await start_and_accept(flow, IVAN)
    calls = await flow.feed(contact(flow.updates, IVAN, ANNA_PHONE, owner=ANNA.id))
    [refusal] = texts(calls)
    assert refusal.startswith("Я могу принять только ваш собственный номер.")
    calls = await flow.feed(contact(flow.updates, IVAN, "12345"))
    assert texts(calls)[0].startswith("Этот номер телефона не похож на настоящий.")
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=IVAN.id)
    assert record is not None
    assert (record.joined_at, record.phone) == (None, None)
    assert await entries(flow.db, record.id) == []


async def test_a_phone_of_another_member_is_refused(flow: Flow) -> None:
    await join(flow, ANNA, ANNA_PHONE)
    await start_and_accept(flow, OLHA)
    calls = await flow.feed(contact(flow.updates, OLHA, "+7 999 123-45-67"))
    assert texts(calls)[0].startswith("Цей номер телефону вже належить іншому учаснику")
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=OLHA.id)
    assert record is not None
    assert (record.joined_at, record.phone) == (None, None)
    assert await entries(flow.db, record.id) == []


async def test_earlier_orders_of_the_phone_become_the_members_once(
    flow: Flow, clock: FixedClock
) -> None:
    for ref, total, status in (
        ("A-1", 200000, "delivered"),
        ("A-2", 100000, "paid"),
        ("A-3", 500000, "cancelled"),
    ):
        await SqlOrders(flow.db).add(
            NewOrder(
                order_ref=ref,
                total=total,
                currency="RUB",
                status=status,
                ordered_at=clock.now(),
                phone="+79991234567",
                lines=[OrderLine(sku="CAT", name="Cat food", quantity=1, price=total)],
            ),
            now=clock.now(),
        )
    await start_and_accept(flow, ANNA)
    calls = await flow.feed(contact(flow.updates, ANNA, ANNA_PHONE))
    assert (
        texts(calls)[0] == "You are in! I found 3 earlier orders of yours; they earned 150 points."
    )
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert record is not None
    assert await entries(flow.db, record.id) == [
        ("accrual", "order:A-1", 100),
        ("accrual", "order:A-2", 50),
        ("welcome", f"customer:{record.id}", 100),
    ]
    async with flow.db.read() as conn:
        owners = set((await conn.execute(select(orders.c.customer_id))).scalars())
    assert owners == {record.id}
    # /start again: a member, not a second sign-up; the points are not credited twice.
    await flow.send(ANNA, "/start")
    assert len(await entries(flow.db, record.id)) == 3


async def test_an_unreadable_birthday_is_asked_again_and_not_stored(flow: Flow) -> None:
    await start_and_accept(flow, ANNA)
    await flow.feed(contact(flow.updates, ANNA, ANNA_PHONE))
    for wrong in ("31.02", "12/13", "1.1.2099", "tomorrow"):
        calls = await flow.send(ANNA, wrong)
        assert texts(calls)[0].startswith("I could not read that date."), wrong
        assert photos(calls) == []
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert record is not None and record.birthday_month is None
    calls = await flow.send(ANNA, "29.02")
    assert len(photos(calls)) == 1


async def test_a_member_is_welcomed_back_and_stop_and_start_switch_offers(
    flow: Flow, clock: FixedClock
) -> None:
    await join(flow, ANNA, ANNA_PHONE)
    members = await customer_count(flow.db)
    [back] = texts(await flow.send(ANNA, "/start"))
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert record is not None and record.card_number is not None
    shown = display_card_number(record.card_number)
    assert back.startswith(f"Welcome back, Anna!\nYour member card: <b>{shown}</b>.")
    assert "Offers and news are off." in back
    assert await customer_count(flow.db) == members

    [stopped] = [c for c in await flow.send(ANNA, "/stop") if isinstance(c, SendMessage)]
    assert stopped.text.startswith("Done: no more offers and news. You stay in the bonus program")
    assert inline_labels(stopped) == ["🔔 Turn offers back on"]
    calls = await flow.press(ANNA, "offers", message=flow.message_from(stopped))
    [edit] = [c for c in calls if isinstance(c, EditMessageText)]
    assert edit.text == "Offers and news are on again. /stop turns them off."
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert record is not None and record.marketing_opt_in is True and record.joined_at
    [back] = texts(await flow.send(ANNA, "/start"))
    assert "Offers and news are off." not in back

    await flow.send(ANNA, "/stop")
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert record is not None and record.marketing_opt_in is False
    assert record.joined_at is not None


async def test_card_is_for_members_and_a_stale_join_button_changes_nothing(flow: Flow) -> None:
    [refusal] = texts(await flow.send(OLHA, "/card"))
    assert refusal.startswith("Ви ще не в бонусній програмі.")
    calls = await flow.press(OLHA, "join:accept")
    [answer] = [c for c in calls if isinstance(c, AnswerCallbackQuery)]
    assert answer.text == "Ця кнопка застаріла. Надішліть /start, щоб почати знову."
    await join(flow, OLHA, "380501234567")
    calls = await flow.send(OLHA, "/card")
    [card] = photos(calls)
    assert card.caption is not None
    olha = await SqlCustomers(flow.db).by_telegram_id(telegram_id=OLHA.id)
    assert olha is not None and olha.card_number is not None
    shown = display_card_number(olha.card_number)
    assert card.caption.startswith(f"Ваша картка учасника: <b>{shown}</b>")
    calls = await flow.press(OLHA, "join:accept")
    [answer] = [c for c in calls if isinstance(c, AnswerCallbackQuery)]
    assert answer.text == "Ви вже учасник програми. /card покаже вашу картку."


async def test_delete_me_erases_the_person_and_keeps_the_anonymous_ledger(
    flow: Flow, clock: FixedClock
) -> None:
    await join(flow, ANNA, ANNA_PHONE, birthday="31.12")
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert record is not None
    await SqlOrders(flow.db).add(
        NewOrder(
            order_ref="B-1",
            total=1000,
            currency="RUB",
            status="paid",
            ordered_at=clock.now(),
            customer_id=record.id,
            phone=record.phone,
            telegram_id=ANNA.id,
            lines=[],
        ),
        now=clock.now(),
    )
    await enqueue(
        SqlOutbox(flow.db),
        Outgoing(
            dedupe_key="reminder:1",
            chat_id=ANNA.id,
            customer_id=record.id,
            category=Category.SERVICE,
            kind="reminder",
            content={"text": "Time to reorder"},
        ),
        clock=clock,
    )
    [ask] = [c for c in await flow.send(ANNA, "/delete_me") if isinstance(c, SendMessage)]
    assert inline_labels(ask) == ["Yes, delete my data", "No, keep it"]
    calls = await flow.press(ANNA, "erase:0", message=flow.message_from(ask))
    assert [c.text for c in calls if isinstance(c, EditMessageText)] == ["Nothing was deleted."]
    assert await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id) == record

    calls = await flow.press(ANNA, "erase:1", message=flow.message_from(ask))
    [goodbye] = [c for c in calls if isinstance(c, EditMessageText)]
    assert goodbye.text is not None
    assert goodbye.text.startswith("Your personal data is deleted. Goodbye")
    assert await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id) is None
    async with flow.db.read() as conn:
        row = (await conn.execute(select(customers).where(customers.c.id == record.id))).one()
        order = (
            await conn.execute(select(orders.c.phone, orders.c.telegram_id, orders.c.customer_id))
        ).one()
        queued, payload = (await conn.execute(select(outbox.c.state, outbox.c.payload))).one()
    assert (row.telegram_id, row.phone, row.first_name, row.username) == (None, None, None, None)
    assert (row.birthday_day, row.birthday_month, row.erased_at) == (None, None, clock.now())
    assert (row.joined_at, row.terms_accepted_at) == (None, clock.now())
    # The order stays the (anonymous) customer's, for the accounts; the message keeps no text.
    assert tuple(order) == (None, None, record.id)
    assert (queued, payload) == ("dropped", {"erased": True})
    assert await entries(flow.db, record.id) == [
        ("welcome", f"customer:{record.id}", 100),
        ("forfeiture", f"forfeit:{record.id}", -100),
    ]
    [audit] = await SqlAuditLog(flow.db).for_customer(customer_id=record.id)
    assert (audit.action, audit.actor_id) == ("erasure", None)
    assert audit.details["orders_anonymised"] == 1
    assert audit.details["messages_dropped"] == 1
    assert audit.details["messages_scrubbed"] == 1

    # Coming back is a brand-new customer with a new card.
    [welcome] = texts(await flow.send(ANNA, "/start"))
    assert welcome.startswith("Hello, Anna!")
    fresh = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert fresh is not None and fresh.id != record.id and fresh.joined_at is None


async def test_invite_gives_a_deep_link_that_records_the_referrer(flow: Flow) -> None:
    [refusal] = texts(await flow.send(ANNA, "/invite"))
    assert refusal.startswith("You are not in the bonus program yet.")
    await join(flow, ANNA, ANNA_PHONE)
    [text] = texts(await flow.send(ANNA, "/invite"))
    link = text.split("\n")[1]
    assert link.startswith("https://t.me/shop_test_bot?start=")
    code = link.rsplit("=", 1)[1]
    assert 0 < len(code) <= 64 and code.replace("-", "").replace("_", "").isalnum()
    assert "your friend gets 200 points and you get 200 points" in text
    [again] = texts(await flow.send(ANNA, "/invite"))
    assert again == text, "the link is personal and stable"

    [welcome] = [c for c in await flow.send(IVAN, f"/start {code}") if isinstance(c, SendMessage)]
    await flow.press(IVAN, "join:accept", message=flow.message_from(welcome))
    await flow.feed(contact(flow.updates, IVAN, "79997654321"))
    ivan = await SqlCustomers(flow.db).by_telegram_id(telegram_id=IVAN.id)
    anna = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert ivan is not None and anna is not None
    referral = await SqlReferrals(flow.db).of_referee(referee_id=ivan.id)
    assert referral is not None
    assert (referral.referrer_id, referral.state) == (anna.id, "joined")


async def test_the_phone_step_explains_itself_and_lets_commands_through(flow: Flow) -> None:
    await flow.send(ANNA, "/start")
    # The consent message may be too old to edit: the phone request still comes.
    calls = await flow.press(ANNA, "join:accept")
    [ask] = [c for c in calls if isinstance(c, SendMessage)]
    assert ask.chat_id == ANNA.id
    assert isinstance(ask.reply_markup, ReplyKeyboardMarkup)
    [hint] = [c for c in await flow.send(ANNA, "+79991234567") if isinstance(c, SendMessage)]
    assert hint.text == "Please tap “Share my phone number” below to join."
    assert isinstance(hint.reply_markup, ReplyKeyboardMarkup)
    [stopped] = texts(await flow.send(ANNA, "/stop"))
    assert stopped == "Done: I will not send you offers."
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert record is not None and record.phone is None


async def test_a_member_opening_a_link_gains_no_referrer(flow: Flow) -> None:
    await join(flow, ANNA, ANNA_PHONE)
    [text] = texts(await flow.send(ANNA, "/invite"))
    code = text.split("\n")[1].rsplit("=", 1)[1]
    [back] = texts(await flow.send(ANNA, f"/start {code}"))
    assert back.startswith("Welcome back, Anna!")
    await join(flow, IVAN, "79997654321")
    [back] = texts(await flow.send(IVAN, f"/start {code}"))
    assert back.startswith("С возвращением, Иван!")
    # A malformed payload is not a referral attempt at all.
    await flow.send(OLHA, "/start not a code!")
    anna = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    ivan = await SqlCustomers(flow.db).by_telegram_id(telegram_id=IVAN.id)
    assert anna is not None and ivan is not None
    refusals = await SqlReferrals(flow.db).refusals()
    assert [(r.reason, r.referrer_id, r.referee_id) for r in reversed(refusals)] == [
        ("self_referral", anna.id, anna.id),
        ("already_member", anna.id, ivan.id),
    ]
    assert await SqlReferrals(flow.db).of_referee(referee_id=ivan.id) is None


async def add_earlier_order(flow: Flow, ref: str, total: int, ordered_at: datetime) -> None:
    await SqlOrders(flow.db).add(
        NewOrder(
            order_ref=ref,
            total=total,
            currency="RUB",
            status="delivered",
            ordered_at=ordered_at,
            phone="+79991234567",
            lines=[OrderLine(sku="CAT", name="Cat food", quantity=1, price=total)],
        ),
        now=ordered_at,
    )


async def test_i15_2_claimed_orders_limited_to_claim_window_and_dated_by_the_order(
    flow: Flow, clock: FixedClock
) -> None:
    """Only orders of the last signup.claim_orders_days (30) earn points at sign-up; their
    points count from the order's own date: the return window and the expiry."""
    now = clock.now()
    await add_earlier_order(flow, "OLD-23M", 900000, now - timedelta(days=700))
    await add_earlier_order(flow, "OLD-40D", 400000, now - timedelta(days=40))
    await add_earlier_order(flow, "R-20D", 100000, now - timedelta(days=20))
    await add_earlier_order(flow, "R-5D", 200000, now - timedelta(days=5))
    await start_and_accept(flow, ANNA)
    calls = await flow.feed(contact(flow.updates, ANNA, ANNA_PHONE))
    assert texts(calls)[0] == (
        "You are in! I found 4 earlier orders of yours. Orders from the last 30 days before "
        "joining earn points: yours earned 150 points."
    )
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert record is not None
    assert await entries(flow.db, record.id) == [
        ("accrual", "order:R-20D", 50),
        ("accrual", "order:R-5D", 100),
        ("welcome", f"customer:{record.id}", 100),
    ]
    async with flow.db.read() as conn:
        owners = set((await conn.execute(select(orders.c.customer_id))).scalars())
        lots = (
            await conn.execute(
                select(
                    ledger_entries.c.source,
                    ledger_lots.c.earned_at,
                    ledger_lots.c.available_at,
                    ledger_lots.c.expires_at,
                )
                .join(ledger_entries, ledger_entries.c.id == ledger_lots.c.entry_id)
                .where(ledger_entries.c.kind == "accrual")
                .order_by(ledger_lots.c.id)
            )
        ).all()
    assert owners == {record.id}  # every earlier order is the member's, for history
    day20, day5 = now - timedelta(days=20), now - timedelta(days=5)
    assert [tuple(row) for row in lots] == [
        ("order:R-20D", day20, day20 + timedelta(days=14), day20 + timedelta(days=365)),
        ("order:R-5D", day5, day5 + timedelta(days=14), day5 + timedelta(days=365)),
    ]
    # What the member sees: the 20-day-old order's points are spendable already.
    balance_text = texts(await flow.send(ANNA, "/balance"))[0]
    assert "Available: 150 points" in balance_text
    assert "Pending: 100 points (can be spent from November 10, 2026)" in balance_text
    assert "50 points expire on October 12, 2027" in balance_text


async def test_i15_2_claim_orders_days_0_credits_no_earlier_order(
    db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer
) -> None:
    rules = RULES.model_copy(update={"signup": Signup(claim_orders_days=0)})
    flow = build_flow(db=db, clock=clock, i18n=i18n, renderer=renderer, rules=rules)
    await add_earlier_order(flow, "R-1D", 200000, clock.now() - timedelta(days=1))
    await start_and_accept(flow, ANNA)
    calls = await flow.feed(contact(flow.updates, ANNA, ANNA_PHONE))
    assert texts(calls)[0] == (
        "You are in! I found 1 earlier order of yours. Orders placed before joining earn no points."
    )
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=ANNA.id)
    assert record is not None
    assert await entries(flow.db, record.id) == [("welcome", f"customer:{record.id}", 100)]


async def test_i15_3_the_card_gives_a_one_time_code_that_spends_points_once(
    flow: Flow, clock: FixedClock
) -> None:
    """The card promises earning by phone only; spending takes the code from the card's
    button or /code, which the shop's system passes as redeem_code (once, this member's)."""
    await join(flow, ANNA, ANNA_PHONE)
    [card] = photos(await flow.send(ANNA, "/card"))
    assert card.caption is not None and "earn and spend" not in card.caption
    [shown] = texts(await flow.press(ANNA, "rcode:new"))
    first = re.search(r"<b>(\d{3}) (\d{3})</b>", shown)
    assert first is not None
    assert shown == (
        f"Your code to spend points: <b>{first[1]} {first[2]}</b>\n"
        "Tell it to the cashier when you pay with points. It works once, for 10 minutes.\n"
        "Never give it to anyone else: it spends your points. A new code replaces this one."
    )
    [again] = texts(await flow.send(ANNA, "/code"))
    second = re.search(r"<b>(\d{3}) (\d{3})</b>", again)
    assert second is not None
    code = second[1] + second[2]

    desk = services_for(flow.db, rules=RULES, clock=clock, followers=()).order_desk

    def order(ref: str, redeem_code: str | None) -> RawOrder:
        return RawOrder(
            order_id=ref,
            customer=RawCustomer(phone="+79991234567"),
            items=[RawItem(sku="CAT", name="Cat food", quantity=1, price="1000.00")],
            total="1000.00",
            currency="RUB",
            bonus_redeemed=50,
            redeem_code=redeem_code,
        )

    with pytest.raises(OrderProblem) as phone_alone:
        await desk.report(order("B-1", None))
    assert (phone_alone.value.code, phone_alone.value.field) == (
        "redeem_code_required",
        "redeem_code",
    )
    if first[1] + first[2] != code:  # the first code was replaced by /code
        with pytest.raises(OrderProblem) as replaced:
            await desk.report(order("B-1", first[1] + first[2]))
        assert replaced.value.code == "redeem_code_invalid"
    reported = await desk.report(order("B-1", code))
    assert reported.receipt.balance.available == 50
    with pytest.raises(OrderProblem) as reused:
        await desk.report(order("B-2", code))
    assert reused.value.code == "redeem_code_used"


async def test_i15_3_code_is_for_members_only(flow: Flow) -> None:
    assert texts(await flow.send(ANNA, "/code")) == [
        "You are not in the bonus program yet. Send /start to join: it takes a minute."
    ]
