"""The Mini App's JSON API over both databases: QR codes that work once, the till's purchases
through the order desk, staff rights, initData on every call, and its OpenAPI part."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from aiogram import Bot
from aiogram.types import User
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, update

from bot.api import create_api_app
from bot.webapp import (
    create_webapp,
    create_webapp_server,
    mount_webapp,
    staff_check,
    webapp_services,
)
from bot.webapp.auth import sign
from bot.webapp.services import FAILED_SIGN_INS_PER_MINUTE
from handlers.staff_alerts import StaffMembership
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.cards import card_number, display_card_number
from scenarios.clock import FixedClock
from scenarios.products import checked_product, save_product
from scenarios.rules import Bonus, Rules
from storage.customers import SqlCustomers
from storage.database import Database
from storage.products import SqlProducts
from storage.schema import audit_log, customers, ledger_entries, orders, outbox, qr_scans
from tests.support.services import services_for
from tests.test_api_orders import add_customer

Client = TestClient[web.Request, web.Application]
TOKEN = "123456:WEBAPP-TOKEN"
CASHIER = 9001
MEMBER = 5001
RULES = Rules(bonus=Bonus(hold_days=0))


def signed(user_id: int, clock: FixedClock, *, token: str = TOKEN, age: int = 0) -> str:
    fields = {
        "auth_date": str(int(clock.now().timestamp()) - age),
        "user": json.dumps({"id": user_id, "first_name": "Olga", "language_code": "en"}),
    }
    fields["hash"] = sign(fields, token)
    return urlencode(fields)


def auth(user_id: int, clock: FixedClock, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"tma {signed(user_id, clock, **kwargs)}"}


async def count(db: Database, table: Any, *where: Any) -> int:
    async with db.read() as conn:
        query = select(func.count()).select_from(table)
        for condition in where:
            query = query.where(condition)
        return int((await conn.execute(query)).scalar_one())


async def points(db: Database, customer_id: int) -> int:
    async with db.read() as conn:
        total = await conn.execute(
            select(func.coalesce(func.sum(ledger_entries.c.amount), 0)).where(
                ledger_entries.c.customer_id == customer_id
            )
        )
        return int(total.scalar_one())


@pytest.fixture
async def member(db: Database) -> int:
    customer_id = await add_customer(db, telegram_id=MEMBER)
    async with db.transaction() as conn:
        await conn.execute(
            update(customers)
            .where(customers.c.id == customer_id)
            .values(card_number=card_number(customer_id), first_name="Anna")
        )
    return customer_id


async def make_client(
    db: Database, clock: FixedClock, i18n: CatalogI18n, rules: Rules = RULES
) -> AsyncIterator[Client]:
    zone = ZoneInfo("Europe/Moscow")
    services = services_for(
        db,
        rules=rules,
        clock=clock,
        renderer=Renderer(i18n, currency="RUB", zone=zone),
        admin_ids=(CASHIER,),
    )
    bot = Bot(token=TOKEN)  # never called: no staff chat is set
    webapp = webapp_services(services, bot=bot, bot_token=TOKEN)
    server = create_webapp_server(create_webapp(webapp), webapp)
    async with TestClient(TestServer(server)) as client:
        yield client
    await bot.session.close()


@pytest.fixture
async def client(
    db: Database, clock: FixedClock, i18n: CatalogI18n, member: int
) -> AsyncIterator[Client]:
    async for each in make_client(db, clock, i18n):
        yield each


async def qr_of(client: Client, clock: FixedClock) -> str:
    answer = await client.get("/app/api/me/qr", headers=auth(MEMBER, clock))
    assert answer.status == 200
    body = await answer.json()
    assert body["expires_in"] == 60
    assert body["svg"].startswith("data:image/svg+xml")
    return str(body["text"])


async def test_a_scan_and_a_purchase_with_points_recorded_once_audited_and_told(
    client: Client, db: Database, clock: FixedClock, member: int
) -> None:
    # 1000.00 earns 50 points at Bronze's 5 % (hold_days 0: available at once).
    first = await client.post(
        "/app/api/till/lookup",
        json={"ref": display_card_number(card_number(member))},
        headers=auth(CASHIER, clock),
    )
    found = await first.json()
    assert (first.status, found["name"], found["can_redeem"]) == (200, "Anna", False)
    earn = await client.post(
        "/app/api/till/purchases",
        json={"id": "purchase-0001", "customer_id": member, "total": "1000.00"},
        headers=auth(CASHIER, clock),
    )
    assert earn.status == 201, await earn.text()
    assert (await earn.json())["available_text"] == "50 points"

    scan = await client.post(
        "/app/api/till/scan", json={"qr": await qr_of(client, clock)}, headers=auth(CASHIER, clock)
    )
    assert scan.status == 200, await scan.text()
    seen = await scan.json()
    assert (seen["available"], seen["can_redeem"], seen["tier_text"]) == (50, True, "Bronze")
    capped = await client.post(
        "/app/api/till/lookup",
        json={"customer_id": member, "visit": seen["visit"], "total": "100.00"},
        headers=auth(CASHIER, clock),
    )
    assert (await capped.json())["redeemable_text"] == "30 points"  # max_redeem_share 30 %

    body = {
        "id": "purchase-0002",
        "customer_id": member,
        "total": "100.00",
        "redeem": 20,
        "visit": seen["visit"],
    }
    paid = await client.post("/app/api/till/purchases", json=body, headers=auth(CASHIER, clock))
    assert paid.status == 201, await paid.text()
    receipt = await paid.json()
    assert (receipt["points_redeemed"], receipt["points_accrued"], receipt["available"]) == (
        20,
        4,
        34,
    )
    # A double tap: the same purchase id is the same order, recorded once.
    again = await client.post("/app/api/till/purchases", json=body, headers=auth(CASHIER, clock))
    assert again.status == 200
    assert (await again.json())["recorded"] is False
    assert await points(db, member) == 34
    assert await count(db, orders) == 2
    assert await count(db, audit_log, audit_log.c.actor_id == CASHIER) == 2
    # The member gets the usual "points for your order" message from the bot.
    assert await count(db, outbox, outbox.c.dedupe_key.like("order-points:till-purchase-0002%"))

    # The scan spent points once: another purchase cannot spend them with it.
    other = {**body, "id": "purchase-0003"}
    refused = await client.post("/app/api/till/purchases", json=other, headers=auth(CASHIER, clock))
    assert refused.status == 422
    assert (await refused.json())["error"]["code"] == "redeem_code_used"
    assert await points(db, member) == 34
    assert await count(db, orders) == 2


async def test_a_used_or_expired_qr_code_is_refused_and_changes_nothing(
    client: Client, db: Database, clock: FixedClock
) -> None:
    code = await qr_of(client, clock)
    headers = auth(CASHIER, clock)
    assert (
        await client.post("/app/api/till/scan", json={"qr": code}, headers=headers)
    ).status == 200
    reused = await client.post("/app/api/till/scan", json={"qr": code}, headers=headers)
    assert reused.status == 409
    assert (await reused.json())["error"]["code"] == "qr_used"
    late = await qr_of(client, clock)
    clock.advance(timedelta(seconds=60))
    expired = await client.post(
        "/app/api/till/scan", json={"qr": late}, headers=auth(CASHIER, clock)
    )
    assert expired.status == 409
    assert (await expired.json())["error"]["code"] == "qr_expired"
    forged = code.rsplit(".", 1)[0] + ".AAAA"
    bad = await client.post("/app/api/till/scan", json={"qr": forged}, headers=auth(CASHIER, clock))
    assert (bad.status, (await bad.json())["error"]["code"]) == (422, "qr_invalid")
    assert await count(db, qr_scans) == 1


async def test_spending_points_needs_the_scan_when_the_shop_asks_for_proof(
    client: Client, db: Database, clock: FixedClock, member: int
) -> None:
    await client.post(
        "/app/api/till/purchases",
        json={"id": "purchase-0001", "customer_id": member, "total": "1000.00"},
        headers=auth(CASHIER, clock),
    )
    typed = await client.post(
        "/app/api/till/purchases",
        json={"id": "purchase-0002", "customer_id": member, "total": "100.00", "redeem": 10},
        headers=auth(CASHIER, clock),
    )
    assert typed.status == 422
    assert (await typed.json())["error"]["code"] == "redeem_code_required"
    assert await points(db, member) == 50
    assert await count(db, orders) == 1


async def test_customers_get_403_at_the_till_and_bad_init_data_401(
    client: Client, db: Database, clock: FixedClock, member: int
) -> None:
    code = await qr_of(client, clock)
    mine = await client.post("/app/api/till/scan", json={"qr": code}, headers=auth(MEMBER, clock))
    assert mine.status == 403
    assert set((await mine.json())["error"]) == {"code", "message", "field"}
    for headers in (
        {},
        {"Authorization": "Bearer x"},
        auth(MEMBER, clock, token="999:OTHER"),
        auth(MEMBER, clock, age=3601),
    ):
        answer = await client.get("/app/api/me", headers=headers)
        assert answer.status == 401
        assert (await answer.json())["error"]["code"] == "unauthorized"
    assert await count(db, qr_scans) == 0
    session = await (await client.get("/app/api/session", headers=auth(MEMBER, clock))).json()
    assert (session["member"], session["cashier"]) == (True, False)
    assert session["texts"]["card_title"] == "My member card"


async def test_a_cashier_cannot_record_a_purchase_on_their_own_card(
    client: Client, db: Database, clock: FixedClock
) -> None:
    # The cashier is a member too; at the till their own card is for another cashier to use.
    own = await add_customer(db, telegram_id=CASHIER, phone="+79990001122")
    async with db.transaction() as conn:
        await conn.execute(
            update(customers).where(customers.c.id == own).values(card_number=card_number(own))
        )
    headers = auth(CASHIER, clock)
    qr = await (await client.get("/app/api/me/qr", headers=headers)).json()
    attempts = [
        ("/app/api/till/scan", {"qr": qr["text"]}),
        ("/app/api/till/lookup", {"ref": display_card_number(card_number(own))}),
        ("/app/api/till/lookup", {"customer_id": own, "total": "100.00"}),
        ("/app/api/till/purchases", {"id": "purchase-own1", "customer_id": own, "total": "5000"}),
    ]
    for path, body in attempts:
        answer = await client.post(path, json=body, headers=headers)
        assert answer.status == 403, (path, await answer.text())
        assert (await answer.json())["error"]["code"] == "own_card"
    session = await (await client.get("/app/api/session", headers=headers)).json()
    assert session["texts"]["own_card"] == (
        "This is your own card: ask another cashier to record your purchase."
    )
    assert await points(db, own) == 0
    assert (await count(db, orders), await count(db, qr_scans), await count(db, audit_log)) == (
        0,
        0,
        0,
    )


async def test_failed_sign_ins_make_the_address_wait(client: Client, clock: FixedClock) -> None:
    forged = auth(MEMBER, clock, token="999:OTHER")
    for _ in range(FAILED_SIGN_INS_PER_MINUTE):
        assert (await client.get("/app/api/me", headers=forged)).status == 401
    # Now even genuine initData from this address waits: the limit is per address.
    limited = await client.get("/app/api/me", headers=auth(MEMBER, clock))
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) > 0


async def test_the_card_shows_the_ledger_and_records_the_devices_zone(
    client: Client, db: Database, clock: FixedClock, member: int
) -> None:
    me = await (await client.get("/app/api/me", headers=auth(MEMBER, clock))).json()
    assert (me["card"], me["available"], me["tier"]) == (card_number(member), 0, "bronze")
    assert "Available: 0 points" in me["balance_html"]
    zone = await client.put(
        "/app/api/me/time-zone", json={"zone": "Asia/Yekaterinburg"}, headers=auth(MEMBER, clock)
    )
    assert (await zone.json()) == {"recorded": True, "zone": "Asia/Yekaterinburg"}
    record = await SqlCustomers(db).by_telegram_id(telegram_id=MEMBER)
    assert record is not None and record.timezone == "Asia/Yekaterinburg"
    abroad = await client.put(
        "/app/api/me/time-zone", json={"zone": "America/Lima"}, headers=auth(MEMBER, clock)
    )
    assert (await abroad.json())["recorded"] is False
    history = await (await client.get("/app/api/me/history", headers=auth(MEMBER, clock))).json()
    assert "No movements yet" in history["html"]
    assert history["next_before"] is None


async def test_only_app_and_healthz_are_served_without_the_shop_api(client: Client) -> None:
    assert (await client.get("/healthz")).status == 200
    page = await client.get("/app/")
    assert page.status == 200
    html = await page.text()
    assert "https://telegram.org/js/telegram-web-app.js" in html
    assert "__BOOT_TEXTS__" not in html
    assert "Не удалось войти" in html or "Could not sign you in" in html
    missing = await client.get("/api/v1/customers/tg:1")
    assert missing.status == 404
    assert "error" in await missing.json()
    script = await client.get("/app/static/app.js")
    assert script.status == 200


async def test_with_the_shop_api_the_document_has_the_mini_app_under_its_own_tag(
    sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n
) -> None:
    services = services_for(sqlite_db, rules=RULES, clock=clock, i18n=i18n, admin_ids=(CASHIER,))
    api = create_api_app(services, api_token="t0ken")
    bot = Bot(token=TOKEN)
    mount_webapp(api, create_webapp(webapp_services(services, bot=bot, bot_token=TOKEN)))
    async with TestClient(TestServer(api)) as client:
        document = await (await client.get("/api/v1/openapi.json")).json()
        served = {
            (route.method.lower(), route.resource.canonical)
            for route in client.app.router.routes()
            if route.method != "HEAD" and route.resource is not None
        }
        # The sub-application's routes, under /app, except the page and its static files.
        for resource in client.app.router.resources():
            inner = getattr(resource, "_app", None)
            if inner is None:
                continue
            for route in inner.router.routes():
                path = "/app" + route.resource.canonical
                if path.startswith("/app/api/") and route.method != "HEAD":
                    served.add((route.method.lower(), path))
        documented = {
            (method, path)
            for path, operations in document["paths"].items()
            for method in operations
        }
        assert {entry for entry in served if "/app" not in entry[1]} <= documented
        assert {entry for entry in served if entry[1].startswith("/app/api/")} == {
            entry for entry in documented if entry[1].startswith("/app/")
        }
        tagged = {
            path
            for path, operations in document["paths"].items()
            for operation in operations.values()
            if operation.get("tags") == ["Mini App"]
        }
        assert tagged == {path for path in document["paths"] if path.startswith("/app/")}
        assert document["components"]["schemas"]["ErrorAnswer"]
        # The Mini App signs in by initData, not the API token; the shop API still wants it.
        forged = await client.get("/app/api/me", headers={"Authorization": "tma x=1"})
        assert forged.status == 401
        assert (await client.get("/api/v1/customers/tg:1")).status == 401
    await bot.session.close()


async def test_items_plan_reminders_which_the_card_lists_and_cancels_and_history_pages(
    client: Client, db: Database, clock: FixedClock, member: int
) -> None:
    product = checked_product(
        sku="CAT-2KG",
        name="Cat food 2 kg",
        url=None,
        category="food",
        consumption_days=30,
        lead_days=3,
        related=[],
    )
    await save_product(SqlProducts(db), product, clock=clock)
    mismatch = await client.post(
        "/app/api/till/purchases",
        json={
            "id": "purchase-0001",
            "customer_id": member,
            "total": "500.00",
            "items": [{"sku": "CAT-2KG", "name": "Cat food 2 kg", "quantity": 2, "price": "1.00"}],
        },
        headers=auth(CASHIER, clock),
    )
    assert (mismatch.status, (await mismatch.json())["error"]["code"]) == (422, "total_mismatch")
    for number in range(1, 13):  # twelve purchases: twelve history entries, two pages
        answer = await client.post(
            "/app/api/till/purchases",
            json={
                "id": f"purchase-{number:04d}",
                "customer_id": member,
                "total": "1290.00",
                "items": [{"sku": "CAT-2KG", "name": "Cat food 2 kg", "price": "1290.00"}],
            },
            headers=auth(CASHIER, clock),
        )
        assert answer.status == 201, await answer.text()
    first = await (await client.get("/app/api/me/history", headers=auth(MEMBER, clock))).json()
    assert first["html"].count("cashback for order till-purchase-") == 10
    older = await client.get(
        f"/app/api/me/history?before={first['next_before']}", headers=auth(MEMBER, clock)
    )
    second = await older.json()
    assert second["html"].count("cashback for order till-purchase-") == 2
    assert second["next_before"] is None

    listed = await (await client.get("/app/api/me/reminders", headers=auth(MEMBER, clock))).json()
    assert [item["name"] for item in listed["items"]] == ["Cat food 2 kg"]
    assert "Cat food 2 kg" in listed["html"]
    reminder_id = listed["items"][0]["id"]
    cancelled = await client.post(
        f"/app/api/me/reminders/{reminder_id}/cancel", headers=auth(MEMBER, clock)
    )
    after = await cancelled.json()
    assert (cancelled.status, after["items"], after["notice"]) == (200, [], "reminder_cancelled")
    assert "No reminders are scheduled" in after["html"]
    # Another member's reminder, or a made-up id, is no one's to cancel here.
    other = await client.post("/app/api/me/reminders/999999/cancel", headers=auth(MEMBER, clock))
    assert other.status == 404


async def test_cashier_ids_and_the_staff_chats_members_open_the_till(
    db: Database, clock: FixedClock, i18n: CatalogI18n, member: int
) -> None:
    asked: list[int] = []

    class StaffChat(StaffMembership):
        async def is_staff(self, bot: Bot, user: User) -> bool:
            asked.append(user.id)
            return user.id == 7007  # what getChatMember would say of the staff chat

    bot = Bot(token=TOKEN)
    check = staff_check(
        bot=bot,
        admin_ids=(CASHIER,),
        cashier_ids=(8008,),
        staff=StaffChat(staff_chat_id=-100, admin_ids=(CASHIER,), ttl=60),
    )
    assert await check(CASHIER, None) and await check(8008, None) and await check(7007, "Ira")
    assert not await check(MEMBER, "Anna")
    assert asked == [7007, MEMBER]  # admins and CASHIER_IDS need no question to Telegram
    await bot.session.close()


async def test_a_history_page_named_by_a_superscript_digit_is_422(
    client: Client, clock: FixedClock
) -> None:
    for before in ("¹", "1²", "-1", "x"):
        answer = await client.get(
            "/app/api/me/history", params={"before": before}, headers=auth(MEMBER, clock)
        )
        assert answer.status == 422, (before, await answer.text())
        assert (await answer.json())["error"]["code"] == "invalid_before"
