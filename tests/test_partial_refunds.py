"""Partial refunds (store webhooks, issue 12): the customer is told what each one did to their
points once per refund id (issue 15 item 8), the tier counts the order less what was refunded,
and the parts plus the final refund undo the order exactly. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.customers import SUPPORTED_LOCALES
from scenarios.ledger import PointsLedger, balance, tier_status, welcome_source
from scenarios.orders import RawCustomer, RawItem, RawOrder
from scenarios.rules import Bonus, Rules, TierRule
from scenarios.tiers import TierLadder
from storage.database import Database
from storage.ledger import EntryKind, SqlLedger
from storage.schema import outbox
from tests.support.services import services_for
from tests.support.webhooks import shopify_order, shopify_refund, woocommerce_order
from tests.test_i15_profile_and_texts import foreign_words
from tests.test_ledger_fake import MemoryLedger
from tests.test_webhooks import EARNED, PHONE, Shop, add_member, serving

MOSCOW = ZoneInfo("Europe/Moscow")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))


@pytest.fixture
async def shop(db: Database, clock: FixedClock) -> AsyncIterator[Shop]:
    async with serving(db, clock) as served:
        yield served


async def messages(db: Database, kind: str) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = await conn.execute(select(outbox).where(outbox.c.kind == kind).order_by(outbox.c.id))
        return [dict(row._mapping) for row in rows]


def shown(renderer: Renderer, row: dict[str, Any], locale: str) -> str:
    payload = row["payload"]
    text = renderer.render(payload["template"], locale=locale, **payload["context"])
    return text.replace("\xa0", " ").replace("\u202f", " ")


def order(order_id: str, total: str, *, redeemed: int = 0, at: datetime | None = None) -> RawOrder:
    return RawOrder(
        order_id=order_id,
        customer=RawCustomer(phone=PHONE),
        items=(RawItem(sku="CAT", name="Cat food", quantity=1, price=total),),
        total=total,
        currency="RUB",
        bonus_redeemed=redeemed,
        created_at=at,
    )


async def test_a_partial_shopify_refund_is_told_once_per_refund_id(
    shop: Shop, renderer: Renderer
) -> None:
    await add_member(shop.db)
    await shop.shopify(shopify_order(), topic="orders/paid", webhook_id="p")
    half = shopify_refund()  # 1390.00 of 2780.00
    await shop.shopify(half, topic="refunds/create", webhook_id="r-1")
    await shop.process()
    # Shopify retries a refund it thinks we missed: another webhook id, the same refund id.
    await shop.shopify(half, topic="refunds/create", webhook_id="r-1-retry")
    await shop.process()
    rows = await messages(shop.db, "order_points")
    assert [row["dedupe_key"] for row in rows] == [
        "order-points:#1001:new",
        "order-points:#1001:refund:509562969",
    ]
    assert {row["category"] for row in rows} == {"transactional"}
    # 139 points earned, half of them taken back: the figure the ledger wrote.
    taken = EARNED // 2
    assert shown(renderer, rows[1], "en") == (
        "Part of order #1001 was refunded.\n"
        f"Cashback for the refunded part taken back: {taken} points.\n"
        "Available now: 0 points"
    )
    assert shown(renderer, rows[1], "ru") == (
        "Часть заказа #1001 возвращена.\n"
        f"Кешбэк за возвращённую часть списан: {taken} бонусов.\n"
        "Доступно сейчас: 0 бонусов"
    )
    assert shown(renderer, rows[1], "uk") == (
        "Частину замовлення #1001 повернено.\n"
        f"Кешбек за повернену частину списано: {taken} балів.\n"
        "Доступно зараз: 0 балів"
    )

    # The rest refunded: the full refund's own message says what it did, and only that.
    await shop.shopify(shopify_refund(id=509562970), topic="refunds/create", webhook_id="r-2")
    await shop.process()
    rows = await messages(shop.db, "order_points")
    assert [row["dedupe_key"] for row in rows][2:] == ["order-points:#1001:refunded"]
    assert shown(renderer, rows[2], "en").startswith(
        f"Order #1001 was refunded.\nThe {EARNED - taken} points it earned were taken back."
    )


async def test_woocommerce_refunds_are_told_once_each_whatever_the_redeliveries(
    shop: Shop, renderer: Renderer
) -> None:
    await add_member(shop.db)
    await shop.woo(woocommerce_order(), topic="order.created", delivery_id="d1")
    partly = woocommerce_order(refunds=[{"id": 731, "reason": "", "total": "-695.00"}])
    await shop.woo(partly, topic="order.updated", delivery_id="d2")
    await shop.woo(partly, topic="order.updated", delivery_id="d3")  # the order saved again
    await shop.process()
    more = woocommerce_order(
        refunds=[
            {"id": 733, "reason": "", "total": "-695.00"},
            {"id": 731, "reason": "", "total": "-695.00"},
        ]
    )
    await shop.woo(more, topic="order.updated", delivery_id="d4")
    await shop.process()
    rows = await messages(shop.db, "order_points")
    assert [row["dedupe_key"] for row in rows] == [
        "order-points:#727:new",
        "order-points:#727:refund:731",
        "order-points:#727:refund:733",
    ]
    # A quarter, then another quarter of 139 points: 34, then 69 - 34 = 35.
    assert "Cashback for the refunded part taken back: 34 points." in shown(renderer, rows[1], "en")
    assert "Cashback for the refunded part taken back: 35 points." in shown(renderer, rows[2], "en")


async def test_partial_refunds_of_old_orders_follow_the_full_refunds_rule(
    db: Database, clock: FixedClock
) -> None:
    """An order older than orders.follow_up_horizon_days (imported history, a late report):
    its points change, but nobody is told, exactly as when it is refunded in full."""
    rules = Rules()
    member = await add_member(db)
    services = services_for(db, rules=rules, clock=clock, zone=MOSCOW)
    desk = services.order_desk
    await desk.report(order("OLD-1", "3000.00", at=clock.now() - timedelta(days=45)))
    await desk.report(order("OLD-2", "3000.00", at=clock.now() - timedelta(days=45)))
    part = await desk.refund_part(order_id="OLD-1", refund_key="R1", amount=100000)
    assert part.partial is not None and part.partial.reversed_points == 50
    full = await desk.change_status(order_id="OLD-2", status="refunded")
    assert full.cancellation is not None and full.cancellation.reversed_points == 150
    assert await messages(db, "order_points") == []
    ledger = await balance(services.ledger_reader, customer_id=member, clock=clock)
    assert ledger.pending == 150 - 50


def tiers(window: str) -> Rules:
    return Rules(
        bonus=Bonus(
            tier_window=window,
            tiers=(
                TierRule(name="bronze", from_spend=0, cashback_percent=Decimal(5)),
                TierRule(name="silver", from_spend=10_000, cashback_percent=Decimal(7)),
            ),
        )
    )


@pytest.mark.parametrize("window", ["12 months", "lifetime"])
async def test_a_partial_refund_lowers_the_tier_spend_and_a_drop_is_announced_once(
    db: Database, clock: FixedClock, renderer: Renderer, window: str
) -> None:
    rules = tiers(window)
    member = await add_member(db)
    services = services_for(db, rules=rules, clock=clock, zone=MOSCOW)
    desk, reader, ladder = services.order_desk, services.ledger_reader, services.tier_ladder
    await desk.report(order("T-1", "12000.00"))
    assert (
        await tier_status(reader, customer_id=member, ladder=ladder, clock=clock)
    ).tier.name == ("silver")
    # 1500.00 back: 10 500.00 still counts, still silver.
    await desk.refund_part(order_id="T-1", refund_key="R1", amount=150000)
    status = await tier_status(reader, customer_id=member, ladder=ladder, clock=clock)
    assert (status.tier.name, status.spend) == ("silver", 1_050_000)
    # 1000.00 more: 9 500.00 is below silver's 10 000.00.
    await desk.refund_part(order_id="T-1", refund_key="R2", amount=100000)
    await desk.refund_part(order_id="T-1", refund_key="R2", amount=100000)  # a retry
    status = await tier_status(reader, customer_id=member, ladder=ladder, clock=clock)
    assert (status.tier.name, status.spend) == ("bronze", 950_000)
    card = await desk.customer_card(ref=PHONE)
    assert card.tier == "bronze"
    announced = await messages(db, "tier_change")
    assert [row["dedupe_key"] for row in announced] == [
        f"tier-change:{member}:1",
        f"tier-change:{member}:2",
    ]
    down = shown(renderer, announced[1], "en")
    assert down.startswith("Your tier changed from Silver to <b>Bronze</b>")
    if window == "lifetime":  # only refunds move a lifetime tier down: the text says which
        assert "refunded parts of orders no longer count towards your tier" in down
    # The next orders earn at the tier the customer now has, one by one and in a batch.
    single = await desk.report(order("T-2", "100.00"))
    assert single.receipt.points_accrued == 5  # bronze's 5 %, not silver's 7
    [batch] = await desk.report_many([order("T-3", "100.00")])
    assert not isinstance(batch, Exception) and batch.receipt.points_accrued == 5
    # The gift planner counts members per tier from the same spend.
    per_tier = await services.gift_store.members_per_tier(
        thresholds=[(tier.name, tier.threshold) for tier in ladder.tiers],
        since=ladder.window_start(clock.now()),
    )
    assert per_tier == {"bronze": 1}


async def test_two_partial_refunds_and_the_rest_undo_the_order_exactly(
    db: Database, clock: FixedClock, renderer: Renderer
) -> None:
    """An order paid partly with points whose cashback was partly spent elsewhere: each step
    gives back and takes back its share, the last one the rest; the customer ends where they
    would be had the order never been placed, and was told each step once."""
    rules = Rules(bonus=Bonus(hold_days=0, redeem_requires_code=False))
    member = await add_member(db)
    services = services_for(db, rules=rules, clock=clock, zone=MOSCOW)
    ledger, desk, reader = services.points_ledger, services.order_desk, services.ledger_reader
    await ledger.grant(
        customer_id=member,
        kind=EntryKind.WELCOME,
        source=welcome_source(member),
        points=300,
        reason="welcome",
    )
    await desk.report(order("U-1", "2999.99", redeemed=300))  # 2699.99 paid in money
    earned = 134  # 5 % of 2699.99, rounded down
    await ledger.adjust(customer_id=member, key="till", points=-100, reason="till", admin_id=1)
    # Had U-1 never been placed: the 300 welcome points less the 100 spent at the till.
    expected_available, expected_earned, expected_spent = 200, 300, 0

    first = await desk.refund_part(order_id="U-1", refund_key="R1", amount=100000)
    again = await desk.refund_part(order_id="U-1", refund_key="R1", amount=100000)
    second = await desk.refund_part(order_id="U-1", refund_key="R2", amount=99999)
    rest = await desk.refund_part(order_id="U-1", refund_key="R3", amount=100000)
    assert again.replayed and rest.change is not None and rest.change.after == "refunded"
    assert first.partial is not None and second.partial is not None
    cancellation = rest.change.cancellation
    assert cancellation is not None

    # 300 points paid for it: 100 + 99 + the last 101 given back, never more.
    assert first.partial.restored_points == 300 * 100000 // 299999
    restored = (
        first.partial.restored_points
        + second.partial.restored_points
        + cancellation.restored_points
    )
    assert restored == 300
    # Its 134 points: 34 left of them when the first refund took back its third (44 wanted);
    # the 100 spent at the till are charged back by the full refund, from the points returned.
    assert (first.partial.reversed_points, second.partial.reversed_points) == (34, 0)
    assert cancellation.reversed_points == 0
    assert cancellation.corrected_points == 100 and cancellation.owed_points == 0
    taken = (
        first.partial.reversed_points
        + second.partial.reversed_points
        + cancellation.reversed_points
        + cancellation.corrected_points
    )
    assert taken == earned

    view = await balance(reader, customer_id=member, clock=clock)
    assert (view.available, view.pending, view.debt) == (expected_available, 0, 0)
    assert (view.lifetime_earned, view.lifetime_spent) == (expected_earned, expected_spent)
    check = await SqlLedger(db).reconcile(customer_id=member)
    assert check.consistent and check.entries_sum == expected_available
    status = await tier_status(reader, customer_id=member, ladder=services.tier_ladder, clock=clock)
    assert status.spend == 0

    rows = await messages(db, "order_points")
    assert [row["dedupe_key"] for row in rows] == [
        "order-points:U-1:new",
        "order-points:U-1:refund:R1",
        "order-points:U-1:refund:R2",
        "order-points:U-1:refunded",
    ]
    assert shown(renderer, rows[1], "en") == (
        "Part of order U-1 was refunded.\n"
        "Cashback for the refunded part taken back: 34 points.\n"
        "Points that paid for the refunded part returned to you: 100 points.\n"
        "Available now: 100 points"
    )
    assert shown(renderer, rows[2], "en") == (
        "Part of order U-1 was refunded.\n"
        "Points that paid for the refunded part returned to you: 99 points.\n"
        "Available now: 199 points"
    )
    assert shown(renderer, rows[2], "ru").startswith(
        "Часть заказа U-1 возвращена.\n"
        "Бонусы, которыми была оплачена возвращённая часть, возвращены: 99 бонусов."
    )
    assert shown(renderer, rows[2], "uk").startswith(
        "Частину замовлення U-1 повернено.\n"
        "Бали, якими було оплачено повернену частину, повернено: 99 балів."
    )
    last = shown(renderer, rows[3], "en")
    assert last == (
        "Order U-1 was refunded.\n"
        "100 points of its cashback had already been spent: they are charged to your points.\n"
        "The 101 points that paid for it were returned to you.\n"
        "Available now: 200 points"
    )


async def test_points_a_partial_refund_gives_back_pay_off_a_debt_first_and_it_says_so(
    db: Database, clock: FixedClock, renderer: Renderer
) -> None:
    rules = Rules(bonus=Bonus(hold_days=0, redeem_requires_code=False))
    member = await add_member(db)
    services = services_for(db, rules=rules, clock=clock, zone=MOSCOW)
    desk, reader = services.order_desk, services.ledger_reader
    await desk.report(order("D-1", "2580.00"))  # 129 points, spendable at once
    await desk.report(order("D-2", "2580.00", redeemed=129))  # spends them; earns 122
    refund = await desk.change_status(order_id="D-1", status="refunded")
    # D-1's 129 points paid for D-2: charged to D-2's 122, and 7 owed.
    assert refund.cancellation is not None and refund.cancellation.owed_points == 7
    half = await desk.refund_part(order_id="D-2", refund_key="R1", amount=129000)
    assert half.partial is not None
    # Half of the 129 points that paid for D-2 come back; its own 122 are gone already.
    assert (half.partial.restored_points, half.partial.reversed_points) == (64, 0)
    view = await balance(reader, customer_id=member, clock=clock)
    assert (view.available, view.debt) == (64 - 7, 0)
    rows = {row["dedupe_key"]: row for row in await messages(db, "order_points")}
    assert shown(renderer, rows["order-points:D-2:refund:R1"], "en") == (
        "Part of order D-2 was refunded.\n"
        "Points that paid for the refunded part returned to you: 64 points.\n"
        "Of them, 7 points paid off your debt for a refunded order.\n"
        "Available now: 57 points"
    )
    assert "Из них в счёт долга за возвращённый заказ: 7 бонусов." in shown(
        renderer, rows["order-points:D-2:refund:R1"], "ru"
    )


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_a_partial_refund_s_message_speaks_one_language(renderer: Renderer, locale: str) -> None:
    context = {
        "event": "partial",
        "order_id": "R-1",
        "available": 1129,
        "debt": 21,
        "reversed": 45,
        "restored": 101,
        "corrected": 0,
        "debt_paid": 2,
    }
    text = renderer.render("order_points.html", locale=locale, **context)
    assert foreign_words(text, locale, typed={"R-1"}) == []
    # Every figure is there, with its plural form.
    lines = text.split("\n")
    assert len(lines) == 6
    if locale == "ru":
        assert "45 бонусов" in lines[1] and "101 бонус." in lines[2] and "2 бонуса" in lines[3]
    if locale == "uk":
        assert "45 балів" in lines[1] and "101 бал." in lines[2] and "2 бали" in lines[3]
    if locale == "en":
        assert "45 points" in lines[1] and "101 points" in lines[2] and "2 points" in lines[3]


@settings(max_examples=300, deadline=None)
@given(
    welcome=st.integers(0, 3000),
    total=st.integers(1, 10**7),
    redeem=st.integers(0, 100),  # percent of what may pay for the order
    spend=st.integers(0, 100),  # percent of the order's cashback spent elsewhere first
    parts=st.lists(st.integers(1, 10**7), max_size=4),
)
async def test_any_partial_refunds_and_the_rest_undo_the_order_exactly(
    welcome: int, total: int, redeem: int, spend: int, parts: list[int]
) -> None:
    """On the in-memory ledger: whatever the order, the points that paid for it, the cashback
    spent elsewhere and the sizes of the parts, all the refunds together give back every point
    that paid for it and take back every point it earned, and the customer's balance ends
    where it would have been without the order."""
    bonus = Bonus(hold_days=0, max_redeem_share=Decimal(100))
    store = MemoryLedger([1])
    clock = FixedClock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    ladder = TierLadder.from_rules(bonus, currency="RUB")
    ledger = PointsLedger(store, bonus=bonus, ladder=ladder, clock=clock)
    if welcome:
        await ledger.grant(
            customer_id=1, kind=EntryKind.WELCOME, source="w", points=welcome, reason="welcome"
        )
    points = min(welcome, total // bonus.point_value) * redeem // 100
    if points:
        await ledger.redeem(customer_id=1, order_id="P-1", order_total=total, points=points)
    accrual = await ledger.accrue(customer_id=1, order_id="P-1", total=total)
    spent_elsewhere = accrual.points * spend // 100
    if spent_elsewhere:
        await ledger.adjust(
            customer_id=1, key="till", points=-spent_elsewhere, reason="till", admin_id=1
        )
    refunded, keys, restored, taken = 0, [], 0, 0
    for number, part in enumerate(parts):
        if refunded + part >= total:
            break
        key = f"R{number}"
        done = await ledger.refund_part(
            customer_id=1,
            order_id="P-1",
            refund_key=key,
            refunded_before=refunded,
            refunded_after=refunded + part,
            total=total,
        )
        again = await ledger.refund_part(
            customer_id=1,
            order_id="P-1",
            refund_key=key,
            refunded_before=refunded,
            refunded_after=refunded + part,
            total=total,
        )
        assert again.replayed and (again.restored_points, again.reversed_points) == (
            done.restored_points,
            done.reversed_points,
        )
        refunded += part
        keys.append(key)
        restored += done.restored_points
        taken += done.reversed_points
        assert restored <= points * refunded // total  # never ahead of the money returned
    rest = await ledger.cancel_order(
        customer_id=1, order_id="P-1", reason="refunded", earlier_refunds=keys
    )
    assert restored + rest.restored_points == points
    assert taken + rest.reversed_points + rest.corrected_points == accrual.points
    view = await balance(store, customer_id=1, clock=clock)
    # Without the order: the welcome points less what was spent at the till.
    assert view.available - view.debt == welcome - spent_elsewhere
    assert (view.lifetime_earned, view.lifetime_spent) == (welcome, 0)


async def test_the_tier_spend_of_the_largest_orders_a_shop_may_allow_stays_whole(
    db: Database, clock: FixedClock
) -> None:
    """orders.max_total allows 10 000 000 000.00: the product behind the refunded share of two
    such amounts leaves BIGINT, which must neither fail (PostgreSQL) nor leave a fraction
    (SQLite)."""
    rules = Rules.model_validate({"orders": {"max_total": 10_000_000_000}})
    member = await add_member(db)
    services = services_for(db, rules=rules, clock=clock, followers=())
    desk = services.order_desk
    await desk.report(order("BIG-1", "9999999999.99"))
    await desk.refund_part(order_id="BIG-1", refund_key="R1", amount=333_333_333_333)
    status = await tier_status(
        services.ledger_reader, customer_id=member, ladder=services.tier_ladder, clock=clock
    )
    assert status.spend == 999_999_999_999 - 333_333_333_333
