"""Issue 15, item 8: every balance change an order causes reaches the customer, once per event."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from bot.api import create_api_app
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.rules import Bonus, Rules
from storage.database import Database
from storage.ledger import EntryKind
from storage.schema import customers, outbox
from tests.support.seed import member
from tests.support.services import services_for
from tests.test_account_jobs import ledger_for

MOSCOW = ZoneInfo("Europe/Moscow")
HEADERS = {"Authorization": "Bearer t"}


def plain(text: str) -> str:
    return text.replace("\xa0", " ").replace("\u202f", " ")


async def points_messages(db: Database) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(outbox).where(outbox.c.kind == "order_points").order_by(outbox.c.id)
        )
        return [dict(row._mapping) for row in rows]


def shown(renderer: Renderer, row: dict[str, Any], locale: str) -> str:
    payload = row["payload"]
    return plain(renderer.render(payload["template"], locale=locale, **payload["context"]))


def body(order_id: str, total: str, *, redeemed: int = 0) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer": {"phone": "+7 999 123-45-67"},
        "items": [{"sku": "CAT", "name": "Cat food", "quantity": 1, "price": total}],
        "total": total,
        "currency": "RUB",
        "bonus_redeemed": redeemed,
    }


async def anna(db: Database, locale: str = "ru") -> int:
    customer_id = await member(db, 1001)
    async with db.transaction() as conn:
        await conn.execute(
            update(customers)
            .where(customers.c.id == customer_id)
            .values(phone="+79991234567", locale=locale)
        )
    return customer_id


async def test_i15_8_points_earned_spent_and_refunded_are_told_once_per_order_event(
    db: Database, clock: FixedClock, renderer: Renderer
) -> None:
    # Spending without a one-time code: the shop's own system signs the customer in.
    rules = Rules(bonus=Bonus(hold_days=14, redeem_requires_code=False))
    customer_id = await anna(db)
    await ledger_for(db, clock, rules).grant(
        customer_id=customer_id, kind=EntryKind.WELCOME, source="w", points=1000, reason="w"
    )
    app = create_api_app(services_for(db, rules=rules, clock=clock, zone=MOSCOW), api_token="t")
    async with TestClient(TestServer(app)) as api:
        first = await api.post("/api/v1/orders", json=body("R-1", "2580.00"), headers=HEADERS)
        assert first.status == 201
        again = await api.post("/api/v1/orders", json=body("R-1", "2580.00"), headers=HEADERS)
        assert again.status == 200
        delivered = await api.post(
            "/api/v1/orders/R-1/status", json={"status": "delivered"}, headers=HEADERS
        )
        assert delivered.status == 200
        spent = await api.post(
            "/api/v1/orders", json=body("R-2", "1000.00", redeemed=100), headers=HEADERS
        )
        assert spent.status == 201
        refund = await api.post(
            "/api/v1/orders/R-2/status", json={"status": "refunded"}, headers=HEADERS
        )
        assert refund.status == 200

    rows = await points_messages(db)
    assert [row["dedupe_key"] for row in rows] == [
        "order-points:R-1:new",
        "order-points:R-2:new",
        "order-points:R-2:refunded",
    ]
    assert {row["category"] for row in rows} == {"transactional"}
    assert {row["chat_id"] for row in rows} == {1001}
    # 5 % of 2 580,00 ₽ = 129 points, spendable after the 14-day hold (15 November, Moscow).
    en = shown(renderer, rows[0], "en")
    assert "+129 points for order R-1, available on November 15, 2026." in en
    assert "Available now: 1,000 points" in en
    assert shown(renderer, rows[0], "ru").startswith(
        "+129 бонусов за заказ R-1, можно потратить с 15 ноября 2026 г."
    )
    assert "Доступно сейчас: 1 000 бонусов" in shown(renderer, rows[0], "ru")
    assert shown(renderer, rows[0], "uk").startswith(
        "+129 балів за замовлення R-1, можна витратити з 15 листопада 2026 р."
    )
    new_two = shown(renderer, rows[1], "en")
    assert new_two.startswith("100 points paid for order R-2.\n+45 points for order R-2")
    assert "Available now: 900 points" in new_two
    refunded = shown(renderer, rows[2], "en")
    assert refunded.startswith("Order R-2 was refunded.\nThe 45 points it earned were taken back.")
    assert "The 100 points that paid for it were returned to you." in refunded
    assert refunded.endswith("Available now: 1,000 points")
    ru = shown(renderer, rows[2], "ru")
    assert ru.startswith("Заказ R-2 возвращён.\nКешбэк за него списан: 45 бонусов.")


async def test_i15_8_a_new_debt_and_its_repayment_are_told(
    db: Database, clock: FixedClock, renderer: Renderer
) -> None:
    rules = Rules(bonus=Bonus(hold_days=0, redeem_requires_code=False))
    await anna(db, locale="en")
    app = create_api_app(services_for(db, rules=rules, clock=clock, zone=MOSCOW), api_token="t")
    async with TestClient(TestServer(app)) as api:
        # 129 points earned and spent at once, then the first order is refunded: a debt.
        assert (
            await api.post("/api/v1/orders", json=body("D-1", "2580.00"), headers=HEADERS)
        ).status == 201
        assert (
            await api.post(
                "/api/v1/orders", json=body("D-2", "2580.00", redeemed=129), headers=HEADERS
            )
        ).status == 201
        clock.advance(timedelta(minutes=5))
        assert (
            await api.post(
                "/api/v1/orders/D-1/status", json={"status": "refunded"}, headers=HEADERS
            )
        ).status == 200
        assert (
            await api.post("/api/v1/orders", json=body("D-3", "1000.00"), headers=HEADERS)
        ).status == 201
    rows = {row["dedupe_key"]: row for row in await points_messages(db)}
    debt = shown(renderer, rows["order-points:D-1:refunded"], "en")
    assert "129 points of its cashback had already been spent: they are charged to your" in debt
    assert "You owe " in debt and "they are paid off from the points you earn next." in debt
    owed = int(rows["order-points:D-1:refunded"]["payload"]["context"]["debt"])
    assert owed > 0
    repaid = shown(renderer, rows["order-points:D-3:new"], "en")
    assert "+50 points for order D-3, available now." in repaid
    assert f"Of them, {min(owed, 50)} points paid off your debt for a refunded order." in repaid


async def test_i15_8_imported_history_and_non_members_are_told_nothing(
    db: Database, clock: FixedClock
) -> None:
    rules = Rules()
    app = create_api_app(services_for(db, rules=rules, clock=clock, zone=MOSCOW), api_token="t")
    async with TestClient(TestServer(app)) as api:
        stranger = await api.post("/api/v1/orders", json=body("N-1", "2580.00"), headers=HEADERS)
        assert stranger.status == 201
        await anna(db)
        old = body("N-2", "2580.00")
        old["created_at"] = (clock.now() - timedelta(days=200)).isoformat()
        assert (await api.post("/api/v1/orders", json=old, headers=HEADERS)).status == 201
    assert await points_messages(db) == []
