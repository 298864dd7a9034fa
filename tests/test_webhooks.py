"""Store platforms' webhooks over real HTTP into the real order desk, on SQLite and PostgreSQL.

Deliveries are written from the platforms' documented shapes (tests/webhook_payloads) and
signed as each platform signs; the worker is driven by hand (``drain``) so that every step
can be looked at.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, insert, select

from bot.api import create_api_app
from bot.api.access_log import MaskedAccessLogger
from bot.services import Services
from bot.settings import Settings
from bot.webhooks import Webhooks, create_webhooks
from bot.webhooks.cli import webhooks_command
from bot.webhooks.routes import WebhookSecrets
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.ledger import welcome_source
from scenarios.orders import RawCustomer, RawItem, RawOrder
from scenarios.rules import Rules
from scenarios.status import BotStatus, WebhookCounts
from storage.database import Database
from storage.inbox import InboxState, Settled, SqlInbox
from storage.inbox_file import inbox_database, prepare_inbox
from storage.ledger import EntryKind, SqlLedger
from storage.schema import customers, ledger_entries, orders, webhook_inbox
from tests.support.services import services_for
from tests.support.webhooks import (
    FORM,
    SHOPIFY_SECRET,
    TILDA_KEY,
    WOO_SECRET,
    body_of,
    form_of,
    shopify_headers,
    shopify_order,
    shopify_refund,
    tilda_fields,
    woocommerce_headers,
    woocommerce_order,
)
from tests.test_texts import plain

TOKEN = "api-token"
PHONE = "+79991234567"
SECRETS = WebhookSecrets(shopify=SHOPIFY_SECRET, woocommerce=WOO_SECRET, tilda=TILDA_KEY)
# 2780.00 RUB at bronze's 5 %, one point per rouble: 139 points.
EARNED = 139

Client = TestClient[web.Request, web.Application]


@dataclass
class Shop:
    client: Client
    hooks: Webhooks
    db: Database
    inbox_db: Database  # on SQLite a file of its own (storage/inbox_file.py)
    clock: FixedClock

    async def shopify(
        self, payload: dict[str, Any], *, topic: str, webhook_id: str, secret: str = SHOPIFY_SECRET
    ) -> tuple[int, dict[str, Any]]:
        body = body_of(payload)
        headers = shopify_headers(body, topic=topic, webhook_id=webhook_id, secret=secret)
        async with self.client.post("/webhooks/shopify", data=body, headers=headers) as answer:
            return answer.status, await answer.json()

    async def woo(
        self, payload: dict[str, Any], *, topic: str, delivery_id: str, secret: str = WOO_SECRET
    ) -> tuple[int, dict[str, Any]]:
        body = body_of(payload)
        headers = woocommerce_headers(body, topic=topic, delivery_id=delivery_id, secret=secret)
        async with self.client.post("/webhooks/woocommerce", data=body, headers=headers) as answer:
            return answer.status, await answer.json()

    async def tilda(self, body: bytes, *, key: str = TILDA_KEY) -> tuple[int, dict[str, Any]]:
        async with self.client.post(f"/webhooks/tilda/{key}", data=body, headers=FORM) as answer:
            return answer.status, await answer.json()

    async def process(self) -> int:
        return await self.hooks.worker.drain()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))


def make_hooks(
    db: Database,
    clock: FixedClock,
    rules: Rules | None = None,
    secrets: WebhookSecrets = SECRETS,
    inbox_db: Database | None = None,
) -> tuple[Services, Webhooks]:
    """The composition root's services (every order follower) with the platforms' secrets."""
    rules = rules or Rules()
    services = services_for(
        db, rules=rules, clock=clock, zone=ZoneInfo("Europe/Moscow"), inbox_db=inbox_db
    )
    hooks = create_webhooks(
        db=db,
        inbox=services.webhook_inbox,
        desk=services.order_desk,
        orders=services.order_store,
        rules=rules,
        clock=clock,
        secrets=secrets,
    )
    return services, hooks


@asynccontextmanager
async def serving(db: Database, clock: FixedClock) -> AsyncIterator[Shop]:
    """The shop's API with its webhooks, served over HTTP; the inbox where the bot keeps it."""
    inbox_db = inbox_database(db)
    try:
        await prepare_inbox(inbox_db, db)
        services, hooks = make_hooks(db, clock, inbox_db=inbox_db)
        app = create_api_app(services, api_token=TOKEN)
        hooks.mount(app, clock=clock)
        # The bot's own access log (start_api), which masks the Tilda key in the path.
        server = TestServer(app)
        await server.start_server(access_log_class=MaskedAccessLogger)
        async with TestClient(server) as client:
            yield Shop(client=client, hooks=hooks, db=db, inbox_db=inbox_db, clock=clock)
    finally:
        if inbox_db is not db:
            await inbox_db.close()


@pytest.fixture
async def shop(db: Database, clock: FixedClock) -> AsyncIterator[Shop]:
    async with serving(db, clock) as served:
        yield served


async def add_member(db: Database, phone: str = PHONE) -> int:
    at = datetime(2026, 10, 1, tzinfo=UTC)
    async with db.transaction() as conn:
        result = await conn.execute(
            insert(customers)
            .values(telegram_id=5001, phone=phone, created_at=at, last_seen_at=at, joined_at=at)
            .returning(customers.c.id)
        )
        return int(result.scalar_one())


async def count(db: Database, table: Any, *conditions: Any) -> int:
    async with db.read() as conn:
        query = select(func.count()).select_from(table)
        if conditions:
            query = query.where(*conditions)
        return int((await conn.execute(query)).scalar_one())


async def entries(db: Database, customer_id: int) -> list[tuple[str, str, int, str]]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(
                ledger_entries.c.kind,
                ledger_entries.c.source,
                ledger_entries.c.amount,
                ledger_entries.c.reason,
            )
            .where(ledger_entries.c.customer_id == customer_id)
            .order_by(ledger_entries.c.id)
        )
        return [tuple(row) for row in rows.all()]


async def order_row(db: Database, ref: str) -> Any:
    async with db.read() as conn:
        return (await conn.execute(select(orders).where(orders.c.order_ref == ref))).one_or_none()


async def inbox_states(db: Database) -> list[tuple[str, str, str | None]]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(
                webhook_inbox.c.platform, webhook_inbox.c.state, webhook_inbox.c.reason
            ).order_by(webhook_inbox.c.id)
        )
        return [tuple(row) for row in rows.all()]


async def balance(db: Database, customer_id: int) -> int:
    check = await SqlLedger(db).reconcile(customer_id=customer_id)
    assert check.consistent
    return check.entries_sum


async def test_a_signed_shopify_order_earns_its_points_once(shop: Shop) -> None:
    member = await add_member(shop.db)
    order = shopify_order()
    assert await shop.shopify(order, topic="orders/create", webhook_id="w-1") == (
        200,
        {"status": "accepted"},
    )
    # Kept at once; nothing is done until the worker takes it.
    assert await count(shop.db, orders) == 0
    assert await shop.process() == 1
    stored = await order_row(shop.db, "#1001")
    assert (stored.customer_id, stored.status, stored.total) == (member, "paid", 278000)
    # Shopify retries with the same webhook id; orders/paid is a second delivery of the order.
    assert await shop.shopify(order, topic="orders/create", webhook_id="w-1") == (
        200,
        {"status": "duplicate"},
    )
    assert (await shop.shopify(order, topic="orders/paid", webhook_id="w-2"))[0] == 200
    await shop.process()
    accruals = [entry for entry in await entries(shop.db, member) if entry[0] == "accrual"]
    assert [(source, amount) for _, source, amount, _ in accruals] == [("order:#1001", EARNED)]
    assert await inbox_states(shop.inbox_db) == [
        ("shopify", "done", "order #1001 recorded as paid"),
        ("shopify", "done", "order #1001: nothing new"),
    ]


async def test_wrong_signatures_and_keys_get_401_and_keep_nothing(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    await add_member(shop.db)
    caplog.set_level(logging.INFO)
    order = shopify_order()
    assert (await shop.shopify(order, topic="orders/paid", webhook_id="x", secret="wrong"))[
        0
    ] == 401
    body = body_of(order)
    async with shop.client.post(
        "/webhooks/shopify", data=body, headers={"X-Shopify-Topic": "orders/paid"}
    ) as unsigned:
        assert unsigned.status == 401
        assert (await unsigned.json())["error"]["code"] == "unauthorized"
    woo = woocommerce_order()
    assert (await shop.woo(woo, topic="order.created", delivery_id="d", secret="nope"))[0] == 401
    assert (await shop.tilda(form_of(tilda_fields()), key="guessed-key"))[0] == 401
    assert await count(shop.inbox_db, webhook_inbox) == 0
    await shop.process()
    assert await count(shop.db, orders) == 0
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "refused" in logged
    for private in ("Анна", "999", "CAT-2KG", TILDA_KEY, "guessed-key"):
        assert private not in logged


async def test_a_platform_without_its_secret_gets_404(db: Database, clock: FixedClock) -> None:
    _, hooks = make_hooks(db, clock, secrets=WebhookSecrets(shopify=SHOPIFY_SECRET))
    app = web.Application()
    hooks.mount(app, clock=clock)
    async with TestClient(TestServer(app)) as client:
        async with client.post("/webhooks/woocommerce", data=b"{}") as woo:
            assert woo.status == 404
            assert "WOOCOMMERCE_WEBHOOK_SECRET" in (await woo.json())["error"]["message"]
        async with client.post(f"/webhooks/tilda/{TILDA_KEY}", data=b"test=test") as tilda:
            assert tilda.status == 404


async def test_fulfilled_before_paid_is_one_delivered_order(shop: Shop) -> None:
    member = await add_member(shop.db)
    fulfilled = shopify_order(fulfillment_status="fulfilled")
    await shop.shopify(fulfilled, topic="orders/fulfilled", webhook_id="f")
    await shop.shopify(shopify_order(), topic="orders/paid", webhook_id="p")
    await shop.process()
    assert (await order_row(shop.db, "#1001")).status == "delivered"
    assert await balance(shop.db, member) == EARNED
    # A late orders/create (still unpaid back then) changes nothing either.
    await shop.shopify(
        shopify_order(financial_status="pending"), topic="orders/create", webhook_id="c"
    )
    await shop.process()
    assert (await order_row(shop.db, "#1001")).status == "delivered"
    assert await balance(shop.db, member) == EARNED


async def test_a_partial_then_a_full_shopify_refund(shop: Shop) -> None:
    member = await add_member(shop.db)
    await shop.shopify(shopify_order(), topic="orders/paid", webhook_id="p")
    half = shopify_refund()  # 1390.00 of 2780.00
    await shop.shopify(half, topic="refunds/create", webhook_id="r-1")
    await shop.shopify(half, topic="refunds/create", webhook_id="r-1-again")  # another delivery
    await shop.process()
    assert await balance(shop.db, member) == EARNED - EARNED // 2
    assert (await order_row(shop.db, "#1001")).status == "paid"
    rest = shopify_refund(id=509562970)
    await shop.shopify(rest, topic="refunds/create", webhook_id="r-2")
    await shop.process()
    assert (await order_row(shop.db, "#1001")).status == "refunded"
    assert await balance(shop.db, member) == 0
    ledger = await entries(shop.db, member)
    assert [(kind, source, amount) for kind, source, amount, _ in ledger] == [
        ("accrual", "order:#1001", EARNED),
        ("reversal", "order:#1001:refund:509562969", -(EARNED // 2)),
        ("reversal", "order:#1001", -(EARNED - EARNED // 2)),
    ]
    assert all(reason for *_, reason in ledger)
    assert "partly refunded" in ledger[1][3]


async def test_woocommerce_refunds_then_a_refunded_order(shop: Shop) -> None:
    member = await add_member(shop.db)
    assert (await shop.woo(woocommerce_order(), topic="order.created", delivery_id="d1"))[0] == 200
    partly = woocommerce_order(refunds=[{"id": 731, "reason": "", "total": "-695.00"}])
    await shop.woo(partly, topic="order.updated", delivery_id="d2")
    await shop.process()
    assert await balance(shop.db, member) == EARNED - EARNED // 4
    done = woocommerce_order(
        status="refunded",
        refunds=[
            {"id": 732, "reason": "", "total": "-2085.00"},
            {"id": 731, "reason": "", "total": "-695.00"},
        ],
    )
    await shop.woo(done, topic="order.updated", delivery_id="d3")
    await shop.process()
    assert (await order_row(shop.db, "#727")).status == "refunded"
    assert await balance(shop.db, member) == 0
    completed_late = woocommerce_order(status="completed")
    await shop.woo(completed_late, topic="order.updated", delivery_id="d4")
    await shop.process()
    assert (await order_row(shop.db, "#727")).status == "refunded"
    assert [state for _, state, _ in await inbox_states(shop.inbox_db)] == ["done"] * 4


async def test_an_order_without_a_phone_is_answered_200_and_kept_as_skipped(shop: Shop) -> None:
    nobody = woocommerce_order(billing={"first_name": "Анна", "phone": ""}, shipping={})
    assert await shop.woo(nobody, topic="order.created", delivery_id="d") == (
        200,
        {"status": "accepted"},
    )
    await shop.process()
    assert await count(shop.db, orders) == 0
    assert await inbox_states(shop.inbox_db) == [
        ("woocommerce", "skipped", "order #727 has no usable phone (customer, billing, shipping)")
    ]


async def test_an_order_of_someone_not_yet_a_member_is_kept_for_their_sign_up(shop: Shop) -> None:
    assert (await shop.tilda(form_of(tilda_fields())))[0] == 200
    await shop.process()
    stored = await order_row(shop.db, "#1706021234")
    assert (stored.customer_id, stored.phone, stored.status) == (None, PHONE, "paid")
    assert "no member has this phone yet" in str((await inbox_states(shop.inbox_db))[0][2])


async def test_a_tilda_order_counts_as_paid(shop: Shop) -> None:
    member = await add_member(shop.db)
    assert await shop.tilda(form_of(tilda_fields())) == (200, {"status": "accepted"})
    assert await shop.tilda(form_of(tilda_fields())) == (200, {"status": "duplicate"})
    await shop.process()
    assert (await order_row(shop.db, "#1706021234")).status == "paid"
    assert await balance(shop.db, member) == 129  # 2580.00 at 5 %


async def test_pings_get_200_and_write_nothing(shop: Shop) -> None:
    # WooCommerce's ping when a webhook is saved (form-encoded, unsigned).
    async with shop.client.post("/webhooks/woocommerce", data=b"webhook_id=3", headers=FORM) as woo:
        assert woo.status == 200
    async with shop.client.post(
        f"/webhooks/tilda/{TILDA_KEY}", data=b"test=test", headers=FORM
    ) as tilda:
        assert tilda.status == 200
    assert await count(shop.inbox_db, webhook_inbox) == 0


async def test_malformed_bodies_are_refused_or_dropped_and_nothing_is_written(shop: Shop) -> None:
    for body in (b"{not json", b"[1, 2]", b'{"name": "#1"}', b'{"id": 1, "x": "\x00"}'):
        headers = shopify_headers(body, topic="orders/paid", webhook_id="m")
        async with shop.client.post("/webhooks/shopify", data=body, headers=headers) as answer:
            assert answer.status == 400, body
            assert (await answer.json())["error"]["code"] == "malformed"
    broken = form_of({**tilda_fields(), "payment": "{oops"})
    assert (await shop.tilda(broken))[0] == 400
    # WooCommerce disables a webhook after five failures in a row: 200, dropped.
    body = b"<html>not an order</html>"
    headers = woocommerce_headers(body, topic="order.created", delivery_id="m")
    async with shop.client.post("/webhooks/woocommerce", data=body, headers=headers) as answer:
        assert answer.status == 200
        assert (await answer.json())["status"] == "ignored"
    # Topics the bot does not use.
    assert await shop.shopify(shopify_order(), topic="products/update", webhook_id="t") == (
        200,
        {"status": "ignored", "reason": "topic products/update is not used"},
    )
    assert await count(shop.inbox_db, webhook_inbox) == 0
    assert await count(shop.db, orders) == 0


async def test_a_failed_delivery_is_kept_with_its_reason(shop: Shop) -> None:
    await add_member(shop.db)
    await shop.shopify(shopify_order(currency="USD"), topic="orders/paid", webhook_id="usd")
    await shop.process()
    [(platform, state, reason)] = await inbox_states(shop.inbox_db)
    assert (platform, state) == ("shopify", "failed")
    assert reason == "currency_mismatch: the shop keeps its points in RUB"
    assert await SqlInbox(shop.inbox_db).counts() == {"failed": 1}
    assert await count(shop.db, orders) == 0


async def test_the_webhooks_command_lists_and_retries_failed_deliveries(
    sqlite_db: Database, clock: FixedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox = SqlInbox(sqlite_db)  # where the inbox was kept before it had a file of its own
    await inbox.add(
        platform="shopify", delivery_id="a", topic="orders/paid", body="{}", now=clock.now()
    )
    [row] = await inbox.listed(state=InboxState.PENDING)
    await inbox.settle(
        [Settled(row.id, InboxState.FAILED, "currency_mismatch: RUB")], now=clock.now()
    )
    settings = Settings(database_url=sqlite_db.url)
    assert await webhooks_command(settings, retry=None) == 1
    listed = capsys.readouterr().out
    assert "webhook deliveries: 1 failed" in listed
    assert f"#{row.id}  shopify orders/paid" in listed and "currency_mismatch: RUB" in listed
    assert await webhooks_command(settings, retry=[]) == 0
    assert "1 failed deliveries queued again" in capsys.readouterr().out
    # The command moved the kept deliveries to the inbox's own file, with their ids.
    assert await inbox.counts() == {}
    moved = inbox_database(sqlite_db)
    try:
        main_file = sqlite_db.sqlite_path
        assert main_file is not None
        assert moved.sqlite_path == main_file.with_name("bot.inbox.sqlite3")
        assert await SqlInbox(moved).counts() == {"pending": 1}
        assert [kept.id for kept in await SqlInbox(moved).listed(state=InboxState.PENDING)] == [
            row.id
        ]
    finally:
        await moved.close()
    assert await webhooks_command(settings, retry=None) == 0


def test_status_shows_the_webhook_counts_in_each_language(renderer: Renderer) -> None:
    status = BotStatus(
        version="1.0",
        backend="sqlite",
        schema_revision="0018",
        customers=3,
        uptime=datetime(2026, 1, 1, 5, tzinfo=UTC) - datetime(2026, 1, 1, tzinfo=UTC),
        webhooks=WebhookCounts(waiting=2, failed=1, skipped=4, done=1200),
    )
    shown = {
        locale: plain(renderer.render("status.html", locale=locale, status=status))
        for locale in ("ru", "uk", "en")
    }
    assert "обработано 1 200, ждут 2, ошибки 1, пропущено 4" in shown["ru"]
    assert "оброблено 1 200, чекають 2, помилки 1, пропущено 4" in shown["uk"]
    assert "Shop webhooks: 1,200 processed, 2 waiting, 1 failed, 4 skipped" in shown["en"]
    assert "python main.py webhooks --failed" in shown["en"]
    quiet = renderer.render(
        "status.html",
        locale="en",
        status=BotStatus(
            version="1.0",
            backend="sqlite",
            schema_revision="0018",
            customers=3,
            uptime=status.uptime,
        ),
    )
    assert "webhooks" not in quiet


async def test_partial_refunds_give_back_spent_points_in_proportion(
    db: Database, clock: FixedClock
) -> None:
    """An order paid partly with points: each refund gives back its share of them and takes
    back its share of the cashback; the full refund afterwards does only the rest."""
    rules = Rules.model_validate({"bonus": {"redeem_requires_code": False}})
    member = await add_member(db)
    services = services_for(db, rules=rules, clock=clock, followers=())
    ledger, desk = services.points_ledger, services.order_desk
    await ledger.grant(
        customer_id=member,
        kind=EntryKind.WELCOME,
        source=welcome_source(member),
        points=300,
        reason="welcome",
    )
    await desk.report(
        RawOrder(
            order_id="A-1",
            customer=RawCustomer(phone=PHONE),
            items=(RawItem(sku="CAT", name="Cat food", quantity=1, price="3000.00"),),
            total="3000.00",
            currency="RUB",
            bonus_redeemed=300,  # 300.00 of 3000.00 paid with points; 2700.00 in money
        )
    )
    earned = 135  # 5 % of 2700.00
    assert await balance(db, member) == earned
    first = await desk.refund_part(order_id="A-1", refund_key="R1", amount=100000)  # a third
    assert first.partial is not None
    assert (first.partial.restored_points, first.partial.reversed_points) == (100, 45)
    again = await desk.refund_part(order_id="A-1", refund_key="R1", amount=100000)
    assert again.replayed and await balance(db, member) == earned + 100 - 45
    rest = await desk.refund_part(order_id="A-1", refund_key="R2", amount=200000)
    assert rest.change is not None and rest.change.after == "refunded"
    cancellation = rest.change.cancellation
    assert cancellation is not None
    assert (cancellation.restored_points, cancellation.reversed_points) == (200, 90)
    assert cancellation.owed_points == 0
    # Everything the order did is undone: the 300 points that paid for it are back.
    assert await balance(db, member) == 300


async def test_a_partial_refund_never_takes_more_than_the_order_left(
    db: Database, clock: FixedClock
) -> None:
    rules = Rules.model_validate({"bonus": {"hold_days": 0}})
    member = await add_member(db)
    services = services_for(db, rules=rules, clock=clock, followers=())
    ledger, desk = services.points_ledger, services.order_desk
    raw = RawOrder(
        order_id="B-1",
        customer=RawCustomer(phone=PHONE),
        items=(RawItem(sku="CAT", name="Cat food", quantity=1, price="2000.00"),),
        total="2000.00",
        currency="RUB",
    )
    await desk.report(raw)  # 100 points, spendable at once (no hold)
    await ledger.adjust(
        customer_id=member, key="spent", points=-90, reason="spent at the till", admin_id=1
    )
    done = await desk.refund_part(order_id="B-1", refund_key="R1", amount=100000)  # half
    assert done.partial is not None and done.partial.reversed_points == 10  # all that is left
    assert await balance(db, member) == 0
    async with db.read() as conn:
        debt = (
            await conn.execute(
                select(func.count())
                .select_from(ledger_entries)
                .where(ledger_entries.c.kind == "correction")
            )
        ).scalar_one()
    assert debt == 0
