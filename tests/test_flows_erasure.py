"""Erasure through the real Dispatcher: what a returning customer gets, the points forfeited,
and what the database holds afterwards (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from aiogram.methods import SendMessage

from bot.order_desk import create_order_desk, order_followers
from bot.signup import signup_services
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.ledger import PointsLedger
from scenarios.orders import OrderDesk, RawCustomer, RawItem, RawOrder
from scenarios.referrals import Referrals
from scenarios.rules import Rules, Shop
from scenarios.tiers import TierLadder
from storage.customers import CustomerRecord, SqlCustomers
from storage.database import Database
from storage.ledger import SqlLedger
from storage.referrals import SqlReferrals
from tests.support.flow import Flow, build_flow
from tests.support.signup import contact, entries, inline_labels, photos, texts
from tests.support.updates import TgUser

ANNA = TgUser(918273645, first_name="Annabel", username="annabel_k", language_code="en")
OLHA = TgUser(918273646, first_name="Ольга", language_code="uk")
IVAN = TgUser(918273647, first_name="Иван", language_code="ru")
ANNA_PHONE = "79991234567"
IVAN_PHONE = "79997654321"
RULES = Rules(shop=Shop(name="Lapki"))
ZONE = ZoneInfo("Europe/Moscow")


@pytest.fixture
def flow(db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer) -> Flow:
    return build_flow(db=db, clock=clock, i18n=i18n, renderer=renderer, rules=RULES)


def order_desk(flow: Flow, clock: FixedClock) -> OrderDesk:
    """The shop's API side over the same database, with every follower (referrals too)."""
    followers = order_followers(db=flow.db, rules=RULES, clock=clock, zone=ZONE)
    return create_order_desk(db=flow.db, rules=RULES, clock=clock, followers=followers)


def referrals(flow: Flow, clock: FixedClock) -> Referrals:
    return signup_services(db=flow.db, rules=RULES, clock=clock, zone=ZONE).referrals


async def report(desk: OrderDesk, ref: str, user: TgUser, total: str = "1500.00") -> None:
    await desk.report(
        RawOrder(
            order_id=ref,
            customer=RawCustomer(telegram_id=user.id),
            items=[RawItem(sku="CAT", name="Cat food", quantity=1, price=total)],
            total=total,
            currency="RUB",
            status="paid",
        )
    )


async def join(flow: Flow, user: TgUser, phone: str, *, start: str = "/start") -> list[str]:
    """/start (with a payload), accept, share the phone, skip the birthday: what was said."""
    [welcome] = [c for c in await flow.send(user, start) if isinstance(c, SendMessage)]
    await flow.press(user, "join:accept", message=flow.message_from(welcome))
    calls = await flow.feed(contact(flow.updates, user, phone))
    said = texts(calls)
    question = [c for c in calls if isinstance(c, SendMessage)][-1]
    calls = await flow.press(user, "bday:skip", message=flow.message_from(question))
    return said + [photo.caption or "" for photo in photos(calls)]


async def erase(flow: Flow, user: TgUser) -> str:
    [ask] = [c for c in await flow.send(user, "/delete_me") if isinstance(c, SendMessage)]
    await flow.press(user, "erase:1", message=flow.message_from(ask))
    return ask.text


async def member(flow: Flow, user: TgUser) -> CustomerRecord:
    record = await SqlCustomers(flow.db).by_telegram_id(telegram_id=user.id)
    assert record is not None
    return record


async def invite_code(flow: Flow, user: TgUser) -> str:
    [text] = texts(await flow.send(user, "/invite"))
    return text.split("\n")[1].rsplit("=", 1)[1]


@pytest.mark.parametrize(
    ("again", "phone"),
    [(ANNA, ANNA_PHONE), (ANNA, "79990001122"), (OLHA, ANNA_PHONE)],
    ids=["same-phone-same-telegram", "new-phone-same-telegram", "same-phone-new-telegram"],
)
async def test_i15_1_an_erased_customer_who_rejoins_gets_no_second_welcome_and_no_referral(
    flow: Flow, clock: FixedClock, again: TgUser, phone: str
) -> None:
    desk = order_desk(flow, clock)
    await join(flow, IVAN, IVAN_PHONE)
    ivan = await member(flow, IVAN)
    code = await invite_code(flow, IVAN)
    said = await join(flow, ANNA, ANNA_PHONE)
    assert any("100 points are already yours" in text for text in said)
    await report(desk, "A-1", ANNA)
    await erase(flow, ANNA)

    said = await join(flow, again, phone, start=f"/start {code}")
    back = await member(flow, again)
    assert back.joined_at is not None
    assert not any("100" in text and "already" in text for text in said), said
    assert [e for e in await entries(flow.db, back.id) if e[0] == "welcome"] == []
    assert await SqlReferrals(flow.db).of_referee(referee_id=back.id) is None
    refusals = await SqlReferrals(flow.db).refusals()
    assert [(r.reason, r.referrer_id, r.referee_id) for r in refusals] == [
        ("returning_customer", ivan.id, back.id)
    ]
    # A qualifying order, well past the hold window: nobody is rewarded.
    await report(desk, "A-2", again, total="5000.00")
    clock.advance(timedelta(days=30))
    assert await referrals(flow, clock).reward_due() == 0
    for customer_id in (ivan.id, back.id):
        assert [e for e in await entries(flow.db, customer_id) if e[0] == "referral"] == []


async def test_i15_1_a_new_customer_still_gets_the_welcome_and_the_referral(
    flow: Flow, clock: FixedClock
) -> None:
    """The check tells returning customers from new ones: an unrelated newcomer is referred."""
    await join(flow, IVAN, IVAN_PHONE)
    code = await invite_code(flow, IVAN)
    await join(flow, ANNA, ANNA_PHONE)
    await erase(flow, ANNA)
    said = await join(flow, OLHA, "380501234567", start=f"/start {code}")
    assert any("100 балів" in text for text in said), said
    olha = await member(flow, OLHA)
    assert [e[0] for e in await entries(flow.db, olha.id)] == ["welcome"]
    referral = await SqlReferrals(flow.db).of_referee(referee_id=olha.id)
    assert referral is not None and referral.state == "joined"


@pytest.mark.parametrize(
    ("user", "lost"),
    [
        (ANNA, "your points are lost"),
        (OLHA, "бали згорять"),
        (IVAN, "бонусы сгорят"),
    ],
)
async def test_i15_4_erasure_forfeits_the_points_the_customer_was_told_are_lost(
    flow: Flow, clock: FixedClock, user: TgUser, lost: str
) -> None:
    desk = order_desk(flow, clock)
    await join(flow, user, ANNA_PHONE)
    await report(desk, "A-1", user, total="2000.00")  # 100 pending points on top of 100
    record = await member(flow, user)
    ledger = SqlLedger(flow.db)
    assert (await ledger.reconcile(customer_id=record.id)).lots_remaining == 200

    [ask] = [c for c in await flow.send(user, "/delete_me") if isinstance(c, SendMessage)]
    assert lost in ask.text
    assert len(inline_labels(ask)) == 2
    await flow.press(user, "erase:1", message=flow.message_from(ask))

    [forfeiture, *_] = await ledger.history(customer_id=record.id, limit=10)
    assert (forfeiture.kind, forfeiture.amount, forfeiture.reason) == (
        "forfeiture",
        -200,
        "account erased",
    )
    check = await ledger.reconcile(customer_id=record.id)
    assert check.consistent
    assert (check.entries_sum, check.cached_balance, check.lots_remaining) == (0, 0, 0)
    # Nothing is left to expire or to warn about later.
    clock.advance(timedelta(days=400))
    ladder = TierLadder.from_rules(RULES.bonus, currency="RUB")
    assert (
        await PointsLedger(ledger, bonus=RULES.bonus, ladder=ladder, clock=clock).expire_due() == 0
    )
