"""Expiry warnings, tier announcements and gift batches on both databases, with a fixed clock."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from bot.account_jobs import AccountJobs
from bot.api import create_api_app
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.ledger import PointsLedger, balance
from scenarios.orders import OrderEvent
from scenarios.rules import Bonus, Gifts, Rules
from scenarios.tiers import TierLadder
from storage.account import SqlAccount
from storage.database import Database
from storage.gifts import NewGift, SqlGifts
from storage.ledger import EntryKind, SqlLedger
from storage.orders import SqlOrders
from storage.schema import customers, gifts, ledger_entries, outbox
from tests.support.seed import member, order
from tests.support.services import services_for

MOSCOW = ZoneInfo("Europe/Moscow")


def jobs_for(db: Database, clock: FixedClock, rules: Rules) -> AccountJobs:
    return services_for(db, rules=rules, clock=clock, zone=MOSCOW).account_jobs


def ledger_for(db: Database, clock: FixedClock, rules: Rules) -> PointsLedger:
    ladder = TierLadder.from_rules(rules.bonus, currency=rules.shop.currency)
    return PointsLedger(SqlLedger(db), bonus=rules.bonus, ladder=ladder, clock=clock)


async def queued(db: Database) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = await conn.execute(select(outbox).order_by(outbox.c.id))
        return [dict(row._mapping) for row in rows]


async def set_locale(db: Database, customer_id: int, locale: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            update(customers).where(customers.c.id == customer_id).values(locale=locale)
        )


def render(renderer: Renderer, row: dict[str, Any], locale: str) -> str:
    payload = row["payload"]
    text = renderer.render(payload["template"], locale=locale, **payload["context"])
    return text.replace("\xa0", " ").replace("\u202f", " ")


async def test_expiry_is_written_and_a_warning_goes_once_per_expiry_date(
    db: Database, clock: FixedClock, renderer: Renderer
) -> None:
    rules = Rules(bonus=Bonus(hold_days=0, points_ttl_days=30, expiry_warning_days=14))
    ledger = ledger_for(db, clock, rules)
    anna = await member(db, 1001)
    await set_locale(db, anna, "ru")
    boris = await member(db, 1002)
    await ledger.grant(
        customer_id=anna, kind=EntryKind.WELCOME, source="w:a", points=120, reason="w"
    )
    await ledger.grant(
        customer_id=boris, kind=EntryKind.WELCOME, source="w:b", points=1, reason="w"
    )
    clock.advance(timedelta(days=5))
    await ledger.grant(
        customer_id=anna, kind=EntryKind.COMPENSATION, source="c:a", points=30, reason="c"
    )
    jobs = jobs_for(db, clock, rules)

    clock.advance(timedelta(days=10))  # the first lots expire in 15 days: not yet
    assert (await jobs.expiry.tick()).warned == 0
    clock.advance(timedelta(days=2))  # 13 days left; a new pass starts after SWEEP_EVERY
    clock.advance(timedelta(hours=1))
    assert (await jobs.expiry.tick()).warned == 2
    rows = await queued(db)
    assert [(r["dedupe_key"], r["kind"], r["category"]) for r in rows] == [
        (f"expiry-warning:{anna}:2026-12-01", "expiry_warning", "service"),
        (f"expiry-warning:{boris}:2026-12-01", "expiry_warning", "service"),
    ]
    assert render(renderer, rows[0], "ru").startswith("⏳ 120 бонусов сгорят 1 декабря 2026 г.")
    assert render(renderer, rows[1], "en").startswith("⏳ 1 point expires on December 1, 2026")

    clock.advance(timedelta(days=5))  # a new pass: the compensation lot now, the first again
    assert (await jobs.expiry.tick()).warned == 1
    assert [r["dedupe_key"] for r in await queued(db)][-1] == f"expiry-warning:{anna}:2026-12-06"

    clock.advance(timedelta(days=20))
    tick = await jobs.expiry.tick()
    assert tick.expired == 3
    view = await balance(SqlLedger(db), customer_id=anna, clock=clock)
    assert (view.available, view.pending) == (0, 0)
    async with db.read() as conn:
        kinds = (
            await conn.execute(
                select(ledger_entries.c.kind).where(ledger_entries.c.customer_id == anna)
            )
        ).scalars()
        assert sorted(kinds) == ["compensation", "expiry", "expiry", "welcome"]


async def test_an_upgrade_and_a_refund_downgrade_are_announced_once_each(
    db: Database, clock: FixedClock, renderer: Renderer
) -> None:
    rules = Rules()
    ledger = ledger_for(db, clock, rules)
    jobs = jobs_for(db, clock, rules)
    anna = await member(db, 1001)

    def event(status: str, previous: str | None) -> OrderEvent:
        return OrderEvent(
            order_id="A-1",
            customer_id=anna,
            status=status,
            previous_status=previous,
            ordered_at=clock.now(),
            recent=True,
        )

    await ledger.accrue(customer_id=anna, order_id="A-1", total=1_200_000)  # 12 000 ₽: silver
    await jobs.tiers.after_order(event("paid", None))
    await jobs.tiers.after_order(event("delivered", "paid"))  # nothing new to tell
    [upgrade] = await queued(db)
    assert (upgrade["dedupe_key"], upgrade["category"]) == (
        f"tier-change:{anna}:1",
        "transactional",
    )
    assert render(renderer, upgrade, "ru") == (
        "🎉 Ваш новый уровень — <b>Серебро</b>: кешбэк 7 % с каждого заказа."
    )
    assert render(renderer, upgrade, "en") == (
        "🎉 Your tier is now <b>Silver</b>: you get 7% cashback on every order."
    )

    await ledger.cancel_order(customer_id=anna, order_id="A-1", reason="refunded")
    await jobs.tiers.after_order(event("refunded", "delivered"))
    downgrade = (await queued(db))[-1]
    assert downgrade["dedupe_key"] == f"tier-change:{anna}:2"
    assert render(renderer, downgrade, "uk").startswith(
        "Ваш рівень змінився з «Срібло» на <b>Бронза</b>: кешбек на наступні замовлення — 5%."
    )
    assert len(await queued(db)) == 2
    standing = await SqlAccount(db).standing(customer_id=anna)
    assert standing is not None
    assert (standing.tier, standing.changes) == ("bronze", 2)


async def test_imported_history_moves_the_tier_without_announcing_it(
    db: Database, clock: FixedClock
) -> None:
    rules = Rules()
    ledger = ledger_for(db, clock, rules)
    jobs = jobs_for(db, clock, rules)
    anna = await member(db, 1001)
    await ledger.accrue(customer_id=anna, order_id="OLD-1", total=1_200_000)
    await jobs.tiers.after_order(
        OrderEvent(
            order_id="OLD-1",
            customer_id=anna,
            status="delivered",
            previous_status=None,
            ordered_at=clock.now() - timedelta(days=300),
            recent=False,
        )
    )
    assert await queued(db) == []
    standing = await SqlAccount(db).standing(customer_id=anna)
    assert standing is not None
    assert (standing.tier, standing.changes) == ("silver", 1)


async def test_a_rolling_window_demotes_as_time_passes(db: Database, clock: FixedClock) -> None:
    rules = Rules(bonus=Bonus(tier_window="12 months"))
    ledger = ledger_for(db, clock, rules)
    jobs = jobs_for(db, clock, rules)
    anna = await member(db, 1001)
    await ledger.accrue(customer_id=anna, order_id="A-1", total=3_500_000)  # gold
    await jobs.tiers.check(customer_id=anna)
    assert await jobs.tiers.sweep_page() == 0, "still gold within the window"
    clock.advance(timedelta(days=370))
    assert await jobs.tiers.sweep_page() == 1
    clock.advance(timedelta(hours=2))
    assert await jobs.tiers.sweep_page() == 0, "told once"
    last = (await queued(db))[-1]
    assert last["dedupe_key"] == f"tier-change:{anna}:2"
    assert last["payload"]["context"] == {
        "direction": "down",
        "tier": "bronze",
        "previous": "gold",
        "cashback_bp": 500,
        "window": "12 months",
    }


async def test_a_gift_is_granted_in_batches_by_tier_once_and_announced_to_opted_in(
    db: Database, clock: FixedClock
) -> None:
    rules = Rules(
        bonus=Bonus(hold_days=0),
        gifts=Gifts(tier_multipliers={"silver": Decimal("1.5")}, batch_size=2),
    )
    ledger = ledger_for(db, clock, rules)
    ids = [await member(db, 2000 + n, opt_in=n != 1) for n in range(5)]
    await member(db, 2999, joined=False)
    await ledger.accrue(customer_id=ids[0], order_id="S-1", total=1_000_000)  # silver
    store = SqlGifts(db)
    assert await store.members_per_tier(
        thresholds=[("bronze", 0), ("silver", 1_000_000)], since=None
    ) == {"bronze": 4, "silver": 1}
    gift_id = await store.create(
        NewGift(
            request_key="9001:abc",
            created_by=9001,
            locale="uk",
            amount=101,
            reason="З Новим роком!",
            tier=None,
            multipliers={"bronze": "1", "silver": "1.5"},
        ),
        now=clock.now(),
    )
    assert gift_id is not None
    jobs = jobs_for(db, clock, rules)
    assert [await jobs.gifts.tick() for _ in range(4)] == [2, 2, 1, 0]

    record = await store.get(gift_id=gift_id)
    assert record is not None
    assert (record.state, record.granted, record.points) == ("done", 5, 151 + 4 * 101)
    async with db.read() as conn:
        grants = dict(
            (
                await conn.execute(
                    select(ledger_entries.c.customer_id, ledger_entries.c.amount).where(
                        ledger_entries.c.kind == "gift"
                    )
                )
            ).all()
        )
    assert grants == {ids[0]: 151, ids[1]: 101, ids[2]: 101, ids[3]: 101, ids[4]: 101}
    rows = await queued(db)
    announced = [r["customer_id"] for r in rows if r["kind"] == "gift"]
    assert announced == [ids[0], ids[2], ids[3], ids[4]], "marketing only to the opted-in"
    assert {r["category"] for r in rows if r["kind"] == "gift"} == {"marketing"}
    [report] = [r for r in rows if r["kind"] == "gift_report"]
    assert (report["chat_id"], report["payload"]["locale"]) == (9001, "uk")
    assert report["payload"]["context"] == {"gift_id": gift_id, "granted": 5, "points": 555}

    # A crash before the cursor moved: the batch runs again and grants nothing twice.
    async with db.transaction() as conn:
        await conn.execute(
            update(gifts).where(gifts.c.id == gift_id).values(state="running", cursor=0)
        )
    await jobs.gifts.tick()
    async with db.read() as conn:
        count = len(
            (
                await conn.execute(
                    select(ledger_entries.c.id).where(ledger_entries.c.kind == "gift")
                )
            ).all()
        )
    assert count == 5
    assert len([r for r in await queued(db) if r["kind"] == "gift"]) == 4


async def test_a_gift_to_one_tier_skips_the_others(db: Database, clock: FixedClock) -> None:
    rules = Rules(gifts=Gifts(batch_size=10))
    ledger = ledger_for(db, clock, rules)
    low = await member(db, 3001)
    high = await member(db, 3002)
    await ledger.accrue(customer_id=high, order_id="G-1", total=3_000_000)  # gold
    store = SqlGifts(db)
    await store.create(
        NewGift(
            request_key="k",
            created_by=9001,
            locale="en",
            amount=100,
            reason="for gold",
            tier="gold",
            multipliers={"gold": "2"},
        ),
        now=clock.now(),
    )
    assert await jobs_for(db, clock, rules).gifts.tick() == 1
    assert (await balance(SqlLedger(db), customer_id=high, clock=clock)).available == 200
    assert (await balance(SqlLedger(db), customer_id=low, clock=clock)).available == 0


async def test_history_pages_and_latest_orders_read_back(db: Database, clock: FixedClock) -> None:
    rules = Rules()
    ledger = ledger_for(db, clock, rules)
    anna = await member(db, 1001)
    for number in range(25):
        await ledger.adjust(customer_id=anna, key=f"h{number}", points=1, reason="r", admin_id=1)
    account = SqlAccount(db)
    async with db.read() as conn:
        ids = sorted(
            (
                await conn.execute(
                    select(ledger_entries.c.id).where(ledger_entries.c.customer_id == anna)
                )
            ).scalars()
        )
    # Showing ids[0..9] (older than ids[10]): the newer page starts below ids[20].
    assert await account.newer_page_start(customer_id=anna, after_id=ids[10] - 1, limit=10) == (
        ids[19] + 1
    )
    assert await account.newer_page_start(customer_id=anna, after_id=ids[15] - 1, limit=10) is None
    await order(db, "O-1", anna, 5, total=100_000)
    await order(db, "O-2", anna, 1, total=250_000, status="refunded", redeemed=10)
    latest = await SqlOrders(db).latest_for(customer_id=anna, limit=5)
    assert [(o.order_ref, o.total, o.status, o.bonus_redeemed) for o in latest] == [
        ("O-2", 250_000, "refunded", 10),
        ("O-1", 100_000, "delivered", 0),
    ]


async def test_the_shops_api_order_and_refund_announce_tier_changes_in_their_transaction(
    db: Database, clock: FixedClock
) -> None:
    rules = Rules()
    jobs = jobs_for(db, clock, rules)
    anna = await member(db, 1001)
    async with db.transaction() as conn:
        await conn.execute(
            update(customers).where(customers.c.id == anna).values(phone="+79991234567")
        )
    app = create_api_app(
        services_for(db, rules=rules, clock=clock, followers=[jobs.tiers]), api_token="t"
    )
    headers = {"Authorization": "Bearer t"}
    body = {
        "order_id": "A-1001",
        "customer": {"phone": "+7 999 123-45-67"},
        "items": [{"sku": "CAT", "name": "Cat food", "quantity": 1, "price": "30000.00"}],
        "total": "30000.00",
        "currency": "RUB",
    }
    async with TestClient(TestServer(app)) as api:
        assert (await api.post("/api/v1/orders", json=body, headers=headers)).status == 201
        assert (await api.post("/api/v1/orders", json=body, headers=headers)).status == 200
        refund = await api.post(
            "/api/v1/orders/A-1001/status", json={"status": "refunded"}, headers=headers
        )
        assert refund.status == 200
    rows = await queued(db)
    assert [(r["dedupe_key"], r["payload"]["context"]["tier"]) for r in rows] == [
        (f"tier-change:{anna}:1", "gold"),
        (f"tier-change:{anna}:2", "bronze"),
    ]
