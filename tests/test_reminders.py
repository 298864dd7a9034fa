"""Reminders on both databases: planned by orders over the API, swept into the outbox once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select, update

from bot.reminders import ReminderSweeper
from locales import CatalogI18n
from scenarios.clock import FixedClock
from scenarios.reminders import refresh_learned_intervals, reminder_stats
from scenarios.rules import Reminders, Rules
from storage.database import Database
from storage.reminders import SqlReminders
from storage.schema import customers, outbox, product_intervals, reminders
from tests.support.databases import postgres_database
from tests.support.reminders import Shop, add_member, add_product, open_shop, reminder_rows
from tests.support.services import services_for

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)  # the fixed clock's start


@pytest.fixture
async def shop(db: Database, clock: FixedClock) -> AsyncIterator[Shop]:
    await add_product(db, "CAT", name="Cat food 2 kg", at=T0, days=30, related=("CAT-BIG",))
    await add_product(db, "CAT-BIG", name="Cat food 10 kg", at=T0, days=150, lead=7)
    await add_product(db, "LITTER", name="Litter", at=T0, days=20)
    await add_product(db, "SAND", name="Sand", at=T0)  # no figure in the catalog
    await add_product(db, "TREE", name="Cat tree", at=T0)
    async with open_shop(db, clock=clock) as opened:
        yield opened


async def outbox_rows(db: Database) -> list[dict[str, object]]:
    async with db.read() as conn:
        rows = await conn.execute(select(outbox).order_by(outbox.c.id))
        return [dict(row) for row in rows.mappings()]


def sweeper(db: Database, i18n: CatalogI18n, clock: FixedClock, **rules: object) -> ReminderSweeper:
    return services_for(
        db,
        i18n=i18n,
        rules=Rules(reminders=Reminders.model_validate(rules)),
        clock=clock,
        zone=ZoneInfo("UTC"),
    ).reminder_sweeper


async def test_an_order_plans_one_reminder_per_consumable_line(shop: Shop, db: Database) -> None:
    anna = await add_member(db, 501, at=T0)
    await add_member(db, 502, at=T0, joined=False)  # not a member: no reminders
    await shop.order(501, [("CAT", 2), ("TREE", 1), ("UNKNOWN", 1)], at=T0, ref="A-1")
    await shop.order(502, [("CAT", 1)], at=T0, ref="A-2")

    [row] = await reminder_rows(db)
    assert (row["customer_id"], row["sku"], row["order_ref"]) == (anna, "CAT", "A-1")
    assert row["state"] == "scheduled"
    assert row["basis"] == "catalog"
    assert row["runs_out_at"] == T0 + 60 * DAY  # 30 days a bag, two bags
    assert row["remind_at"] == row["due_at"] == T0 + 57 * DAY  # lead_days 3


async def test_old_history_plans_nothing_but_a_replayed_order_changes_nothing(
    shop: Shop, db: Database
) -> None:
    await add_member(db, 501, at=T0 - 400 * DAY)
    await shop.order(501, [("CAT", 1)], at=T0 - 40 * DAY, ref="OLD")  # past the 30-day horizon
    assert await reminder_rows(db) == []
    await shop.order(501, [("CAT", 1)], at=T0, ref="NEW")
    before = await reminder_rows(db)
    response = await shop.api.post(
        "/api/v1/orders",
        json={
            "order_id": "NEW",
            "customer": {"telegram_id": 501},
            "items": [{"sku": "CAT", "name": "CAT", "quantity": 1, "price": "100.00"}],
            "total": "100.00",
            "currency": "RUB",
            "status": "paid",
            "created_at": T0.isoformat(),
        },
        headers={"Authorization": "Bearer shop-token"},
    )
    assert response.status == 200
    assert await reminder_rows(db) == before


async def test_a_customers_own_rhythm_replaces_the_catalog_figure(shop: Shop, db: Database) -> None:
    await add_member(db, 501, at=T0 - 400 * DAY)
    # Imported history: a bag every 20 days, then two bags that lasted 44 days (22 per bag).
    await shop.order(501, [("CAT", 1)], at=T0 - 84 * DAY)
    await shop.order(501, [("CAT", 1)], at=T0 - 64 * DAY)
    await shop.order(501, [("CAT", 2)], at=T0 - 44 * DAY)
    assert await reminder_rows(db) == []
    await shop.order(501, [("CAT", 1)], at=T0, ref="NOW")
    [row] = await reminder_rows(db)
    assert row["basis"] == "customer"
    assert row["runs_out_at"] == T0 + 20 * DAY  # median of 20, 20, 22 days per bag
    assert row["remind_at"] == T0 + 17 * DAY


async def test_i16_1_a_second_bag_minutes_later_is_one_purchase_not_a_reminder_now(
    shop: Shop, db: Database, clock: FixedClock, i18n: CatalogI18n
) -> None:
    await add_product(db, "FOOD-5", name="Cat food 5 kg", at=T0, days=75)
    await add_member(db, 501, at=T0)
    await shop.order(501, [("FOOD-5", 1)], at=T0, ref="A-1")
    await shop.order(501, [("FOOD-5", 1)], at=T0 + 10 * MINUTE, ref="A-2")  # a split basket
    rows = {r["order_ref"]: r for r in await reminder_rows(db)}
    assert (rows["A-1"]["state"], rows["A-1"]["reason"]) == ("cancelled", "reordered")
    second = rows["A-2"]
    assert (second["state"], second["basis"], second["quantity"]) == ("scheduled", "catalog", 2)
    # Two bags of 75 days from the first order, the reminder 3 days before.
    assert second["runs_out_at"] == T0 + 150 * DAY
    assert second["remind_at"] == T0 + 147 * DAY
    clock.set(T0 + HOUR)
    assert await sweeper(db, i18n, clock).tick() == 0
    assert await outbox_rows(db) == []


async def test_i16_1_an_own_rhythm_needs_two_plausible_intervals(shop: Shop, db: Database) -> None:
    await add_product(db, "FOOD-5", name="Cat food 5 kg", at=T0, days=75)
    await add_member(db, 501, at=T0 - 400 * DAY)
    # One real interval (60 days) teaches nothing yet: the catalog's 75 days hold.
    await shop.order(501, [("FOOD-5", 1)], at=T0 - 60 * DAY, ref="H-1")
    await shop.order(501, [("FOOD-5", 1)], at=T0, ref="N-1")
    [row] = [r for r in await reminder_rows(db) if r["state"] == "scheduled"]
    assert (row["order_ref"], row["basis"]) == ("N-1", "catalog")
    assert row["runs_out_at"] == T0 + 75 * DAY
    # A second one (58 days, then a bag added an hour later: one purchase of two) does.
    await shop.order(501, [("FOOD-5", 1)], at=T0 + 58 * DAY, ref="N-2")
    await shop.order(501, [("FOOD-5", 1)], at=T0 + 58 * DAY + HOUR, ref="N-3")
    [row] = [r for r in await reminder_rows(db) if r["state"] == "scheduled"]
    assert (row["order_ref"], row["basis"], row["quantity"]) == ("N-3", "customer", 2)
    # Gaps of 60 and 58 days a bag: 59 days each, two bags from the first of the two orders.
    assert row["runs_out_at"] == T0 + 58 * DAY + 2 * 59 * DAY


async def test_a_product_without_a_figure_learns_one_from_frequent_buyers(
    shop: Shop, db: Database, clock: FixedClock
) -> None:
    for telegram_id, every in ((601, 10), (602, 12), (603, 14), (604, 50)):
        await add_member(db, telegram_id, at=T0 - 400 * DAY)
        purchases = 3 if telegram_id != 604 else 2  # 604 bought too rarely to count
        for n in range(purchases):
            await shop.order(telegram_id, [("SAND", 1)], at=T0 - 200 * DAY + n * every * DAY)
    learned = await refresh_learned_intervals(SqlReminders(db), min_purchases=3, clock=clock)
    assert learned == 1
    async with db.read() as conn:
        [row] = (await conn.execute(select(product_intervals))).mappings().all()
    assert (row["sku"], row["seconds_per_unit"], row["customers"]) == ("SAND", 12 * 86400, 3)

    await add_member(db, 605, at=T0)
    await shop.order(605, [("SAND", 2)], at=T0)
    [reminder] = await reminder_rows(db)
    assert reminder["basis"] == "product"
    assert reminder["runs_out_at"] == T0 + 24 * DAY


async def test_a_reorder_of_the_sku_or_a_substitute_replaces_the_waiting_reminder(
    shop: Shop, db: Database
) -> None:
    await add_member(db, 501, at=T0)
    await shop.order(501, [("CAT", 1), ("LITTER", 1)], at=T0, ref="A-1")
    await shop.order(501, [("CAT-BIG", 1)], at=T0 + 5 * DAY, ref="A-2")  # CAT's substitute
    rows = {(r["order_ref"], r["sku"]): r for r in await reminder_rows(db)}
    assert rows["A-1", "CAT"]["state"] == "cancelled"
    assert rows["A-1", "CAT"]["reason"] == "reordered"
    assert rows["A-1", "CAT"]["due_at"] is None
    assert rows["A-1", "LITTER"]["state"] == "scheduled"
    big = rows["A-2", "CAT-BIG"]
    assert big["state"] == "scheduled"
    assert big["remind_at"] == T0 + 5 * DAY + 143 * DAY  # 150 days, its own lead of 7

    # The substitute order is refunded: its reminder goes, the one it replaced waits again.
    await shop.set_status("A-2", "refunded")
    rows = {(r["order_ref"], r["sku"]): r for r in await reminder_rows(db)}
    assert rows["A-2", "CAT-BIG"]["state"] == "cancelled"
    assert rows["A-2", "CAT-BIG"]["reason"] == "order_cancelled"
    assert rows["A-1", "CAT"]["state"] == "scheduled"
    assert rows["A-1", "CAT"]["due_at"] == T0 + 27 * DAY


async def test_a_stopped_product_gets_no_more_reminders(shop: Shop, db: Database) -> None:
    anna = await add_member(db, 501, at=T0)
    await shop.order(501, [("CAT", 1)], at=T0, ref="A-1")
    cancelled = await SqlReminders(db).stop(customer_id=anna, sku="CAT", now=T0)
    assert cancelled == 1
    await shop.order(501, [("CAT", 1), ("LITTER", 1)], at=T0 + DAY, ref="A-2")
    waiting = [(r["order_ref"], r["sku"]) for r in await reminder_rows(db) if r["due_at"]]
    assert waiting == [("A-2", "LITTER")]


async def test_the_sweep_groups_a_customers_products_into_one_message_a_day(
    shop: Shop, db: Database, clock: FixedClock, i18n: CatalogI18n
) -> None:
    await add_member(db, 501, at=T0, timezone="Asia/Vladivostok")
    await add_member(db, 502, at=T0, language_code="ru")
    await shop.order(501, [("LITTER", 1)], at=T0, ref="A-1")  # due day 17
    await shop.order(501, [("CAT", 1)], at=T0 + DAY, ref="A-2")  # due day 28
    await shop.order(501, [("CAT-BIG", 1)], at=T0 + 2 * DAY, ref="A-3")  # not: a substitute
    await shop.order(502, [("LITTER", 2)], at=T0, ref="B-1")  # due day 37
    sweep = sweeper(db, i18n, clock, group_window_days=12)

    clock.set(T0 + 16 * DAY)
    assert await sweep.tick() == 0
    assert await outbox_rows(db) == []

    clock.set(T0 + 17 * DAY)
    assert await sweep.tick() == 1
    [message] = await outbox_rows(db)
    assert message["dedupe_key"] == "reminder:1:2026-11-18"  # the customer's local date
    assert (message["chat_id"], message["category"], message["kind"]) == (
        501,
        "service",
        "reminder",
    )
    payload = message["payload"]
    assert payload["template"] == "reminder.html"  # type: ignore[index]
    assert payload["context"] == {"names": ["Litter"]}  # type: ignore[index]
    rows = {r["order_ref"]: r for r in await reminder_rows(db)}
    assert rows["A-1"]["state"] == "sent"
    assert rows["A-1"]["message_key"] == "reminder:1:2026-11-18"
    # CAT was replaced by the CAT-BIG order; CAT-BIG and B-1 are not due yet.
    assert rows["A-2"]["state"] == "cancelled"
    assert rows["A-3"]["state"] == "scheduled"
    assert rows["B-1"]["state"] == "scheduled"

    # Nothing is sent twice however often the sweep runs.
    assert await sweep.tick() == 0
    assert len(await outbox_rows(db)) == 1


async def test_products_due_close_together_share_a_message_and_a_later_one_waits_a_day(
    shop: Shop, db: Database, clock: FixedClock, i18n: CatalogI18n
) -> None:
    await add_product(db, "TREATS", name="Treats", at=T0, days=10)
    await add_member(db, 501, at=T0)
    await shop.order(501, [("LITTER", 1)], at=T0, ref="A-1")  # due day 17, 10:00
    await shop.order(501, [("CAT", 1)], at=T0 - 10 * DAY, ref="A-2")  # due then too
    await shop.order(501, [("TREATS", 1)], at=T0 + 10 * DAY + 2 * HOUR, ref="A-3")  # 12:00
    sweep = sweeper(db, i18n, clock, group_window_days=0)
    clock.set(T0 + 17 * DAY)
    assert await sweep.tick() == 2
    [message] = await outbox_rows(db)
    assert message["payload"]["context"] == {"names": ["Litter", "Cat food 2 kg"]}  # type: ignore[index]
    buttons = message["payload"]["buttons"]  # type: ignore[index]
    assert [[button["text"] for button in row] for row in buttons] == [
        ["🛒 Reorder: Litter"],
        ["⏰ In 3 days", "⏰ In 7 days", "🚫 I don't need this"],
        ["🛒 Reorder: Cat food 2 kg"],
        ["⏰ In 3 days", "⏰ In 7 days", "🚫 I don't need this"],
    ]

    # Treats fall due later the same day: today's message went, so tomorrow morning.
    clock.set(T0 + 17 * DAY + 2 * HOUR)
    assert await sweep.tick() == 1
    assert len(await outbox_rows(db)) == 1
    [late] = [r for r in await reminder_rows(db) if r["order_ref"] == "A-3"]
    assert late["state"] == "scheduled"
    assert late["due_at"] == datetime(2026, 11, 19, 9, 0, tzinfo=UTC)
    clock.set(late["due_at"])
    assert await sweep.tick() == 1
    assert [m["dedupe_key"] for m in await outbox_rows(db)] == [
        "reminder:1:2026-11-18",
        "reminder:1:2026-11-19",
    ]


async def test_an_order_after_a_sent_reminder_converts_it_with_its_revenue(
    shop: Shop, db: Database, clock: FixedClock, i18n: CatalogI18n
) -> None:
    await add_member(db, 501, at=T0)
    await add_member(db, 502, at=T0)
    await shop.order(501, [("LITTER", 1)], at=T0, ref="A-1")
    await shop.order(502, [("LITTER", 1)], at=T0, ref="B-1")
    clock.set(T0 + 17 * DAY)
    await sweeper(db, i18n, clock).tick()
    async with db.transaction() as conn:  # the delivery engine delivered both
        await conn.execute(update(outbox).values(state="sent", sent_at=clock.now()))

    await shop.order(501, [("LITTER", 3)], at=T0 + 20 * DAY, ref="A-2", price="250.00")
    await shop.order(502, [("LITTER", 1)], at=T0 + 32 * DAY, ref="B-2")  # 15 days: too late
    rows = {r["order_ref"]: r for r in await reminder_rows(db)}
    assert rows["A-1"]["state"] == "converted"
    assert rows["A-1"]["converted_order_ref"] == "A-2"
    assert rows["A-1"]["revenue"] == 75000
    assert rows["B-1"]["state"] == "sent"
    stats = await reminder_stats(SqlReminders(db))
    assert (stats.sent, stats.converted, stats.revenue) == (2, 1, 75000)
    assert stats.conversion_rate == 0.5

    # A refunded order converts nothing after all.
    await shop.set_status("A-2", "refunded")
    stats = await reminder_stats(SqlReminders(db))
    assert (stats.sent, stats.converted, stats.revenue) == (2, 0, 0)


async def test_a_member_without_a_chat_gets_no_message(
    shop: Shop, db: Database, clock: FixedClock, i18n: CatalogI18n
) -> None:
    anna = await add_member(db, 501, at=T0)
    await shop.order(501, [("LITTER", 1)], at=T0, ref="A-1")
    async with db.transaction() as conn:
        await conn.execute(update(customers).where(customers.c.id == anna).values(telegram_id=None))
    clock.set(T0 + 30 * DAY)
    assert await sweeper(db, i18n, clock).tick() == 1
    assert await outbox_rows(db) == []
    [row] = await reminder_rows(db)
    assert (row["state"], row["reason"]) == ("cancelled", "no_chat")


# ---- two sweepers on one PostgreSQL database ------------------------------------------------


async def seed_due(db: Database, *, customers_count: int, per_customer: int, due: datetime) -> None:
    async with db.transaction() as conn:
        ids = (
            await conn.execute(
                insert(customers).returning(customers.c.id),
                [
                    {
                        "telegram_id": 10_000 + n,
                        "created_at": due,
                        "last_seen_at": due,
                        "joined_at": due,
                    }
                    for n in range(customers_count)
                ],
            )
        ).scalars()
        rows = [
            {
                "customer_id": customer_id,
                "sku": f"SKU-{k}",
                "order_ref": f"O-{customer_id}",
                "ordered_at": due - 30 * DAY,
                "quantity": 1,
                "basis": "catalog",
                "runs_out_at": due + 3 * DAY,
                "remind_at": due,
                "due_at": due,
                "state": "scheduled",
                "created_at": due,
                "updated_at": due,
            }
            for customer_id in list(ids)
            for k in range(per_customer)
        ]
        await conn.execute(insert(reminders), rows)


@pytest.mark.postgres
async def test_two_sweepers_on_postgresql_never_send_a_reminder_twice(
    i18n: CatalogI18n,
) -> None:
    async with postgres_database() as first:
        second = Database(first.url, connect_args=first.connect_args)
        try:
            now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
            await seed_due(first, customers_count=600, per_customer=2, due=now - DAY)
            clock = FixedClock(now)
            a = sweeper(first, i18n, clock, batch_size=50)
            b = sweeper(second, i18n, clock, batch_size=50)
            by_a = by_b = 0
            while True:
                got_a, got_b = await asyncio.gather(a.sweep_once(), b.sweep_once())
                by_a, by_b = by_a + got_a, by_b + got_b
                if not got_a and not got_b:
                    break
            rows = await reminder_rows(first)
            messages = await outbox_rows(first)
        finally:
            await second.close()
    assert len(rows) == 1200
    assert by_a > 0 and by_b > 0, "both sweepers worked at the same time"
    assert by_a + by_b == 1200
    assert {row["state"] for row in rows} == {"sent"}
    # One message per customer with both of their products, each reminder in exactly one.
    assert len(messages) == 600
    assert len({m["dedupe_key"] for m in messages}) == 600
    keys = [row["message_key"] for row in rows]
    assert all(keys.count(key) == 2 for key in set(keys))
    assert sorted(int(str(m["chat_id"])) for m in messages) == list(range(10_000, 10_600))
