"""A group of orders followed at once comes to what each order followed alone comes to."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select, update

from locales import CatalogI18n
from scenarios.clock import FixedClock
from scenarios.orders import OrderDesk, RawCustomer, RawItem, RawOrder, Reported
from scenarios.rules import Rules
from storage.database import Database
from storage.referrals import SqlReferrals
from storage.schema import customers, outbox, referrals, reminders, tier_standings
from tests.support.reminders import Shop, add_member, add_product, open_shop
from tests.support.services import services_for

DAY = timedelta(days=1)
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)  # the fixed clock's start
LATER = T0 + 20 * DAY
# Each member's story before their new order, and the new order: (sku, quantity, price).
NEW_ORDERS: dict[str, tuple[str, int, str]] = {
    "plain": ("TREE", 1, "800.00"),  # points and their notice only
    "converts": ("LITTER", 2, "250.00"),  # a reminder of LITTER went out 3 days ago
    "replaces": ("CAT-BIG", 1, "900.00"),  # CAT's reminder waits; CAT-BIG is its substitute
    "referred": ("TREE", 1, "1500.00"),  # a friend's first order, enough to qualify
    "too_small": ("TREE", 1, "100.00"),  # a friend's first order, below the minimum
    "climbs": ("TREE", 1, "12000.00"),  # bronze -> silver: announced
    "plans": ("CAT", 2, "300.00"),  # a consumable: a reminder planned
}
MEMBERS = list(NEW_ORDERS)


@pytest.fixture
async def shop(db: Database, clock: FixedClock) -> AsyncIterator[Shop]:
    await add_product(db, "CAT", name="Cat food 2 kg", at=T0, days=30, related=("CAT-BIG",))
    await add_product(db, "CAT-BIG", name="Cat food 10 kg", at=T0, days=150)
    await add_product(db, "LITTER", name="Litter", at=T0, days=20)
    await add_product(db, "TREE", name="Cat tree", at=T0)
    async with open_shop(db, clock=clock) as opened:
        yield opened


async def prepare(
    shop: Shop, db: Database, clock: FixedClock, i18n: CatalogI18n, base: int
) -> dict[str, int]:
    """One group of members, ``base`` + 0.. their Telegram ids, each with their story."""
    ids = {name: await add_member(db, base + n, at=T0) for n, name in enumerate(MEMBERS)}
    tg = {name: base + n for n, name in enumerate(MEMBERS)}
    clock.set(T0)
    await shop.order(tg["converts"], [("LITTER", 1)], at=T0, ref=f"{base}-old-litter")
    await shop.order(tg["replaces"], [("CAT", 1)], at=T0, ref=f"{base}-old-cat")
    store = SqlReferrals(db)
    for friend in ("referred", "too_small"):
        assert await store.add(referee_id=ids[friend], referrer_id=ids["plain"], now=T0)
    async with db.transaction() as conn:  # the LITTER reminder went out 3 days before LATER
        key = f"reminder:{ids['converts']}:sent"
        await conn.execute(
            update(reminders)
            .where(reminders.c.customer_id == ids["converts"])
            .values(state="sent", sent_at=LATER - 3 * DAY, due_at=None, message_key=key)
        )
        await conn.execute(
            outbox.insert().values(
                dedupe_key=key,
                chat_id=tg["converts"],
                customer_id=ids["converts"],
                category="marketing",
                kind="reminder",
                priority=5,
                payload={"text": "time for litter"},
                not_before=T0,
                state="sent",
                attempts=1,
                created_at=T0,
                updated_at=T0,
            )
        )
    return ids


def new_order(base: int, name: str) -> RawOrder:
    sku, quantity, price = NEW_ORDERS[name]
    total = f"{int(float(price) * quantity)}.00"
    return RawOrder(
        order_id=f"{base}-{name}",
        customer=RawCustomer(telegram_id=base + MEMBERS.index(name)),
        items=[RawItem(sku=sku, name=sku, quantity=quantity, price=price)],
        total=total,
        currency="RUB",
        created_at=LATER - timedelta(minutes=5),
    )


def guest_order(base: int) -> RawOrder:
    return RawOrder(
        order_id=f"{base}-guest",
        customer=RawCustomer(telegram_id=base + 99),
        items=[RawItem(sku="CAT", name="CAT", quantity=1, price="300.00")],
        total="300.00",
        currency="RUB",
        created_at=LATER - timedelta(minutes=5),
    )


async def outcome(db: Database, ids: dict[str, int], base: int) -> dict[str, Any]:
    """What each member of a group came to, their own ids and order refs taken out."""

    def plain(value: Any) -> Any:
        text = json.dumps(value, sort_keys=True, default=str)
        for name, customer_id in ids.items():
            text = text.replace(f"{base}-{name}", name).replace(f":{customer_id}:", ":#:")
        return json.loads(text.replace(f"{base}-", ""))

    found: dict[str, Any] = {}
    async with db.read() as conn:
        for name, customer_id in ids.items():
            messages = await conn.execute(
                select(outbox.c.dedupe_key, outbox.c.kind, outbox.c.payload, outbox.c.state)
                .where(outbox.c.customer_id == customer_id, outbox.c.created_at >= LATER)
                .order_by(outbox.c.dedupe_key)
            )
            waiting = await conn.execute(
                select(
                    reminders.c.sku,
                    reminders.c.order_ref,
                    reminders.c.state,
                    reminders.c.reason,
                    reminders.c.converted_order_ref,
                    reminders.c.revenue,
                    reminders.c.remind_at,
                )
                .where(reminders.c.customer_id == customer_id)
                .order_by(reminders.c.sku, reminders.c.order_ref)
            )
            referral = await conn.execute(
                select(referrals.c.state, referrals.c.order_ref, referrals.c.mature_at).where(
                    referrals.c.referee_id == customer_id
                )
            )
            standing = await conn.execute(
                select(tier_standings.c.tier, tier_standings.c.changes).where(
                    tier_standings.c.customer_id == customer_id
                )
            )
            found[name] = plain(
                {
                    "messages": [dict(row._mapping) for row in messages],
                    "reminders": [dict(row._mapping) for row in waiting],
                    "referral": [dict(row._mapping) for row in referral],
                    "standing": [dict(row._mapping) for row in standing],
                }
            )
    return found


def desk_of(db: Database, clock: FixedClock, i18n: CatalogI18n) -> OrderDesk:
    """The desk with every follower the bot runs."""
    return services_for(db, rules=Rules(), clock=clock, i18n=i18n, zone=ZoneInfo("UTC")).order_desk


async def test_a_group_followed_at_once_comes_to_what_each_order_alone_comes_to(
    shop: Shop, db: Database, clock: FixedClock, i18n: CatalogI18n
) -> None:
    alone, together = 600, 700
    alone_ids = await prepare(shop, db, clock, i18n, alone)
    together_ids = await prepare(shop, db, clock, i18n, together)
    clock.set(LATER)
    desk = desk_of(db, clock, i18n)

    for raw in [*(new_order(alone, name) for name in MEMBERS), guest_order(alone)]:
        await desk.report(raw)
    answers = await desk.report_many(
        [*(new_order(together, name) for name in MEMBERS), guest_order(together)]
    )
    assert all(isinstance(answer, Reported) and answer.created for answer in answers), answers

    one_by_one = await outcome(db, alone_ids, alone)
    at_once = await outcome(db, together_ids, together)
    assert at_once == one_by_one
    # And each story did what it is about, so the comparison is not of two empty worlds.
    kinds = {name: [m["kind"] for m in at_once[name]["messages"]] for name in MEMBERS}
    assert all("order_points" in listed for listed in kinds.values()), kinds
    assert "tier_change" in kinds["climbs"]
    assert at_once["climbs"]["standing"] == [{"tier": "silver", "changes": 1}]
    states = {name: at_once[name]["reminders"] for name in ("converts", "replaces", "plans")}
    assert {(r["order_ref"], r["state"]) for r in states["converts"]} == {
        ("old-litter", "converted"),
        ("converts", "scheduled"),
    }
    assert ("CAT", "cancelled", "reordered") in [
        (r["sku"], r["state"], r["reason"]) for r in states["replaces"]
    ]
    assert [(r["sku"], r["state"]) for r in states["plans"]] == [("CAT", "scheduled")]
    assert at_once["referred"]["referral"][0]["state"] == "qualified"
    assert at_once["too_small"]["referral"][0]["state"] == "refused"


async def test_a_group_of_orders_is_followed_in_a_few_statements_for_all_of_them(
    db: Database, clock: FixedClock, i18n: CatalogI18n
) -> None:
    """Before, every order's followers read on their own: about 12 statements an order."""
    group = 40
    for n in range(group):
        await add_member(db, 800 + n, at=T0)
    clock.set(LATER)
    desk = desk_of(db, clock, i18n)
    raws = [
        RawOrder(
            order_id=f"G-{n}",
            customer=RawCustomer(telegram_id=800 + n),
            items=[RawItem(sku="TREE", name="Cat tree", quantity=1, price="1000.00")],
            total="1000.00",
            currency="RUB",
        )
        for n in range(group)
    ]
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        answers = await desk.report_many(raws)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)

    assert [
        answer.receipt.points_accrued for answer in answers if isinstance(answer, Reported)
    ] == [50] * group
    # The ledger's three writes and the notice's outbox row are each order's own; the
    # followers' reads are one statement each for the whole group.
    assert len(statements) <= 4 * group + 30, len(statements)
    async with db.read() as conn:
        told = await conn.execute(
            select(customers.c.telegram_id, outbox.c.payload)
            .join(outbox, outbox.c.customer_id == customers.c.id)
            .where(outbox.c.kind == "order_points")
            .order_by(customers.c.telegram_id)
        )
        contexts = [(chat, payload["context"]) for chat, payload in told]
    assert [chat for chat, _ in contexts] == [800 + n for n in range(group)]
    assert {(context["earned"], context["available"]) for _, context in contexts} == {(50, 0)}
