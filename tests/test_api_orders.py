"""The shop API over real HTTP (aiohttp test server) against both databases."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, insert, select

from bot.api import create_api_app, start_api
from scenarios.cards import card_number, display_card_number
from scenarios.clock import FixedClock
from scenarios.ledger import PointsLedger, welcome_source
from scenarios.orders import OrderEvent
from scenarios.redeem_codes import RedeemCodes
from scenarios.rules import Bonus, Rules
from scenarios.tiers import TierLadder
from storage.database import Database
from storage.ledger import EntryKind, SqlLedger
from storage.redeem_codes import SqlRedeemCodes
from storage.schema import (
    customers,
    ledger_entries,
    order_items,
    orders,
    outbox,
    redeem_codes,
)
from tests.support.services import services_for

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PHONE = "+79991234567"
TELEGRAM_ID = 123

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def api(db: Database, clock: FixedClock) -> AsyncIterator[Client]:
    app = create_api_app(
        services_for(db, rules=Rules(), clock=clock, followers=()), api_token=TOKEN
    )
    async with TestClient(TestServer(app)) as client:
        yield client


async def add_customer(
    db: Database,
    *,
    telegram_id: int | None = TELEGRAM_ID,
    phone: str | None = PHONE,
    joined: bool = True,
) -> int:
    at = datetime(2026, 10, 1, tzinfo=UTC)
    async with db.transaction() as conn:
        result = await conn.execute(
            insert(customers)
            .values(
                telegram_id=telegram_id,
                phone=phone,
                username="anna_cat",
                created_at=at,
                last_seen_at=at,
                joined_at=at if joined else None,
            )
            .returning(customers.c.id)
        )
        return int(result.scalar_one())


async def give_points(db: Database, clock: FixedClock, customer_id: int, points: int) -> None:
    rules = Rules()
    ledger = PointsLedger(
        SqlLedger(db),
        bonus=rules.bonus,
        ladder=TierLadder.from_rules(rules.bonus, currency="RUB"),
        clock=clock,
    )
    await ledger.grant(
        customer_id=customer_id,
        kind=EntryKind.WELCOME,
        source=welcome_source(customer_id),
        points=points,
        reason="welcome",
    )


async def spend_code(db: Database, clock: FixedClock, customer_id: int) -> str:
    """The one-time code /code would show this member."""
    codes = RedeemCodes(SqlRedeemCodes(db), bonus=Rules().bonus, clock=clock)
    return (await codes.issue(customer_id=customer_id)).code


def item(price: str, quantity: int = 1) -> dict[str, Any]:
    return {"sku": "CAT-2KG", "name": "Cat food 2 kg", "quantity": quantity, "price": price}


def order_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_id": "A-1001",
        "customer": {"phone": "+7 999 123-45-67", "telegram_id": TELEGRAM_ID, "name": "Anna"},
        "items": [
            {
                "sku": "CAT-2KG",
                "name": "Cat food 2 kg",
                "quantity": 2,
                "price": "1290.00",
                "category": "food",
            }
        ],
        "total": "2580.00",
        "currency": "RUB",
        "status": "paid",
        # The fixed clock's moment, in Moscow time.
        "created_at": "2026-11-01T13:00:00+03:00",
    }
    body.update(changes)
    return body


async def count(db: Database, table: Any) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def post_order(api: Client, body: dict[str, Any]) -> tuple[int, Any]:
    response = await api.post("/api/v1/orders", json=body, headers=AUTH)
    return response.status, await response.json()


# ---- auth and health ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}],
    ids=["missing", "wrong", "not-bearer"],
)
async def test_requests_without_the_right_token_are_refused(
    api: Client, db: Database, headers: dict[str, str]
) -> None:
    response = await api.post("/api/v1/orders", json=order_body(), headers=headers)
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"
    lookup = await api.get(f"/api/v1/customers/tg:{TELEGRAM_ID}", headers=headers)
    assert lookup.status == 401
    assert await count(db, orders) == 0


async def test_the_right_token_is_let_in(api: Client) -> None:
    status, _ = await post_order(api, order_body())
    assert status == 201


async def test_healthz_needs_no_token(api: Client) -> None:
    response = await api.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_healthz_is_503_when_the_database_does_not_answer(clock: FixedClock) -> None:
    gone = Database("postgresql://nobody@127.0.0.1:1/nothing")
    app = create_api_app(
        services_for(gone, rules=Rules(), clock=clock, followers=()), api_token=TOKEN
    )
    try:
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/healthz")
            assert response.status == 503
            assert (await response.json())["error"]["code"] == "database_unavailable"
    finally:
        await gone.close()


async def test_healthz_is_503_when_the_webhook_inbox_file_cannot_be_opened(
    sqlite_db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    inbox_file = tmp_path / "inbox" / "bot.inbox.sqlite3"
    inbox_db = Database(f"sqlite+aiosqlite:///{inbox_file}")
    app = create_api_app(
        services_for(sqlite_db, rules=Rules(), clock=clock, followers=(), inbox_db=inbox_db),
        api_token=TOKEN,
    )
    try:
        async with TestClient(TestServer(app)) as client:
            assert (await client.get("/healthz")).status == 200
            await inbox_db.engine.dispose()
            inbox_file.unlink()
            inbox_file.mkdir()  # a folder where the file was: SQLite cannot open it
            response = await client.get("/healthz")
            assert response.status == 503
            assert (await response.json())["error"]["code"] == "database_unavailable"
    finally:
        await inbox_db.close()


async def test_i17_7_an_order_while_the_database_is_away_is_a_503_to_retry_logged_once(
    clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    gone = Database("postgresql://nobody@127.0.0.1:1/nothing")
    app = create_api_app(
        services_for(gone, rules=Rules(), clock=clock, followers=()), api_token=TOKEN
    )
    try:
        async with TestClient(TestServer(app)) as client:
            for _ in range(2):
                response = await client.post("/api/v1/orders", json=order_body(), headers=AUTH)
                assert response.status == 503
                assert response.headers["Retry-After"] == "2"
                error = (await response.json())["error"]
                assert error["code"] == "database_unavailable"
    finally:
        await gone.close()
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([m for m in said if m.startswith("database unavailable (api: ")]) == 1, said
    assert not [m for m in said if "API request" in m], "not an error with a traceback"


async def test_unknown_routes_answer_json(api: Client) -> None:
    response = await api.get("/api/v1/nothing", headers=AUTH)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


async def test_start_api_serves_on_a_real_port(db: Database, clock: FixedClock) -> None:
    app = create_api_app(
        services_for(db, rules=Rules(), clock=clock, followers=()), api_token=TOKEN
    )
    runner = await start_api(app, "127.0.0.1", 0)
    try:
        host, port = runner.addresses[0][:2]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{host}:{port}/healthz") as response,
        ):
            assert response.status == 200
            assert await response.json() == {"status": "ok"}
    finally:
        await runner.cleanup()


# ---- reporting orders --------------------------------------------------------------------


async def test_a_members_order_earns_pending_cashback(api: Client, db: Database) -> None:
    member = await add_customer(db)
    status, body = await post_order(api, order_body())
    assert status == 201
    # 5 % (bronze) of 2580.00 RUB = 129.00 RUB = 129 points, pending for the 14-day hold.
    assert body == {
        "order_id": "A-1001",
        "customer_id": member,
        "points_accrued": 129,
        "pending_until": "2026-11-15T10:00:00+00:00",
        "balance": {"available": 0, "pending": 129},
    }
    async with db.read() as conn:
        row = (await conn.execute(select(orders))).one()
        lines = (await conn.execute(select(order_items))).all()
    assert (row.customer_id, row.total, row.status, row.phone) == (member, 258000, "paid", PHONE)
    assert row.ordered_at == datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    assert len(row.fingerprint) == 64
    assert [(line.sku, line.quantity, line.price) for line in lines] == [("CAT-2KG", 2, 129000)]


async def test_cashback_is_rounded_down(api: Client, db: Database) -> None:
    await add_customer(db)
    status, body = await post_order(api, order_body(total="99.99", items=[item("99.99")]))
    assert status == 201
    assert body["points_accrued"] == 4  # 5 % of 99.99 = 4.9995


async def test_the_member_is_found_by_phone_alone(api: Client, db: Database) -> None:
    member = await add_customer(db)
    status, body = await post_order(
        api, order_body(customer={"phone": "8 (999) 123-45-67"}, order_id="A-2")
    )
    assert status == 201
    assert body["customer_id"] == member


async def test_a_replay_answers_200_with_the_same_body(api: Client, db: Database) -> None:
    await add_customer(db)
    first_status, first = await post_order(api, order_body())
    again_status, again = await post_order(api, order_body())
    assert (first_status, again_status) == (201, 200)
    assert again == first
    assert await count(db, orders) == 1
    assert await count(db, ledger_entries) == 1


async def test_a_replay_without_created_at_is_still_a_replay(
    api: Client, db: Database, clock: FixedClock
) -> None:
    body = order_body()
    del body["created_at"]
    first_status, first = await post_order(api, body)
    clock.advance(datetime(2026, 11, 2, tzinfo=UTC) - clock.now())
    again_status, again = await post_order(api, body)
    assert (first_status, again_status, again) == (201, 200, first)


async def test_a_different_body_under_the_same_order_id_is_a_conflict(
    api: Client, db: Database
) -> None:
    await add_customer(db)
    await post_order(api, order_body())
    status, body = await post_order(api, order_body(total="3000.00", items=[item("3000.00")]))
    assert status == 409
    assert body["error"] == {
        "code": "order_conflict",
        "message": "order A-1001 was already reported with a different body",
        "field": "order_id",
    }
    async with db.read() as conn:
        assert (await conn.execute(select(orders.c.total))).scalars().all() == [258000]
    assert await count(db, ledger_entries) == 1


async def test_a_non_members_order_is_kept_for_a_later_sign_up(api: Client, db: Database) -> None:
    await add_customer(db, telegram_id=555, phone="+79990000000", joined=False)
    status, body = await post_order(
        api, order_body(customer={"phone": "+7 999 000-00-00", "telegram_id": 555})
    )
    assert status == 201
    assert body == {
        "order_id": "A-1001",
        "customer_id": None,
        "points_accrued": 0,
        "pending_until": None,
        "balance": {"available": 0, "pending": 0},
    }
    async with db.read() as conn:
        row = (await conn.execute(select(orders))).one()
    assert (row.customer_id, row.phone, row.telegram_id) == (None, "+79990000000", 555)
    assert await count(db, ledger_entries) == 0


async def test_a_non_member_cannot_redeem(api: Client, db: Database) -> None:
    status, body = await post_order(api, order_body(bonus_redeemed="10"))
    assert status == 422
    assert (body["error"]["code"], body["error"]["field"]) == ("not_a_member", "bonus_redeemed")
    assert await count(db, orders) == 0


async def test_a_member_redeems_then_earns_on_what_was_paid(
    api: Client, db: Database, clock: FixedClock
) -> None:
    member = await add_customer(db)
    await give_points(db, clock, member, 500)
    code = await spend_code(db, clock, member)
    status, body = await post_order(api, order_body(bonus_redeemed="50", redeem_code=code))
    assert status == 201
    # Paid 2580.00 - 50 points × 1.00 = 2530.00; 5 % = 126.50 → 126 points.
    assert body["points_accrued"] == 126
    assert body["balance"] == {"available": 450, "pending": 126}
    async with db.read() as conn:
        assert (await conn.execute(select(orders.c.bonus_redeemed))).scalar_one() == 50


@pytest.mark.parametrize(
    ("redeemed", "code", "message"),
    [
        (
            "800",
            "over_order_share",
            "at most 774 points can pay for this order (30 % of its total)",
        ),
        (70, "not_enough_points", "only 60 points can be spent now"),
    ],
)
async def test_a_refused_redemption_writes_nothing(
    api: Client,
    db: Database,
    clock: FixedClock,
    redeemed: object,
    code: str,
    message: str,
) -> None:
    member = await add_customer(db)
    await give_points(db, clock, member, 60 if code == "not_enough_points" else 1000)
    proof = await spend_code(db, clock, member)
    status, body = await post_order(api, order_body(bonus_redeemed=redeemed, redeem_code=proof))
    assert status == 422
    assert body["error"] == {"code": code, "message": message, "field": "bonus_redeemed"}
    assert await count(db, orders) == 0
    assert await count(db, order_items) == 0
    assert await count(db, ledger_entries) == 1  # the welcome gift only
    # The refusal rolled the code's use back too: it still pays for a valid redemption.
    status, _ = await post_order(api, order_body(bonus_redeemed="10", redeem_code=proof))
    assert status == 201


def _customer_without_ids() -> dict[str, Any]:
    return order_body(customer={"name": "Anna"})


def _without(field: str) -> dict[str, Any]:
    body = order_body()
    del body[field]
    return body


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        (_customer_without_ids(), 422, "customer_unidentified", "customer"),
        (order_body(customer={"phone": "12345"}), 422, "invalid_phone", "customer.phone"),
        (order_body(total="2580.000"), 422, "too_many_fraction_digits", "total"),
        (
            order_body(
                items=[{"sku": "X", "name": "X", "quantity": 1, "price": "1.005"}], total="1.00"
            ),
            422,
            "too_many_fraction_digits",
            "items.0.price",
        ),
        (order_body(total="abc"), 422, "invalid_amount", "total"),
        (order_body(status="shipped"), 422, "unknown_status", "status"),
        (order_body(created_at="2026-11-01T10:00:00"), 422, "naive_datetime", "created_at"),
        (order_body(currency="USD"), 422, "currency_mismatch", "currency"),
        (order_body(bonus_redeemed="1.5"), 422, "invalid_points", "bonus_redeemed"),
        (order_body(coupon="X"), 400, "unknown_field", "coupon"),
        (
            order_body(customer={"phone": PHONE, "email": "a@b.c"}),
            400,
            "unknown_field",
            "customer.email",
        ),
        (order_body(total=2580), 400, "wrong_type", "total"),
        (order_body(customer={"telegram_id": "123"}), 400, "wrong_type", "customer.telegram_id"),
        (order_body(created_at="yesterday"), 400, "wrong_type", "created_at"),
        (order_body(bonus_redeemed=[1]), 400, "wrong_type", "bonus_redeemed"),
        (_without("total"), 400, "missing_field", "total"),
        (
            order_body(customer={"phone": PHONE, "time_zone": "Mars/Olympus"}),
            422,
            "invalid_time_zone",
            "customer.time_zone",
        ),
        (
            order_body(customer={"phone": PHONE, "time_zone": "localtime"}),
            422,
            "invalid_time_zone",
            "customer.time_zone",
        ),
        (
            order_body(customer={"phone": PHONE, "time_zone": 3}),
            400,
            "wrong_type",
            "customer.time_zone",
        ),
    ],
    ids=[
        "no-phone-no-telegram",
        "bad-phone",
        "three-fraction-digits",
        "three-fraction-digits-in-item",
        "not-a-number",
        "unknown-status",
        "naive-created-at",
        "foreign-currency",
        "fractional-points",
        "unknown-field",
        "unknown-nested-field",
        "number-for-money",
        "string-for-telegram-id",
        "not-a-datetime",
        "list-for-points",
        "missing-total",
        "unknown-time-zone",
        "time-zone-not-in-tzdata",
        "number-for-time-zone",
    ],
)
async def test_invalid_orders_are_refused_with_the_field(
    api: Client, db: Database, body: dict[str, Any], status: int, code: str, field: str
) -> None:
    await add_customer(db)
    got_status, got = await post_order(api, body)
    assert got_status == status
    assert (got["error"]["code"], got["error"]["field"]) == (code, field)
    assert got["error"]["message"]
    assert await count(db, orders) == 0


async def zone_of(db: Database, customer_id: int) -> str | None:
    async with db.read() as conn:
        query = select(customers.c.timezone).where(customers.c.id == customer_id)
        zone: str | None = (await conn.execute(query)).scalar_one()
        return zone


async def test_i16_10_an_order_tells_where_the_customer_lives_and_a_replay_changes_nothing(
    api: Client, db: Database
) -> None:
    member = await add_customer(db)
    customer = {"phone": PHONE, "time_zone": "Asia/Yekaterinburg"}
    status, _ = await post_order(api, order_body(customer=customer))
    assert status == 201
    assert await zone_of(db, member) == "Asia/Yekaterinburg"

    # The zone says where the person lives, not what they bought: a replay naming another
    # zone is the same order (no conflict) and leaves the customer as the new order set them.
    moved = {"phone": PHONE, "time_zone": "Asia/Omsk"}
    status, _ = await post_order(api, order_body(customer=moved))
    assert status == 200
    assert await zone_of(db, member) == "Asia/Yekaterinburg"

    # A new order without the field leaves it as it is.
    status, _ = await post_order(api, order_body(order_id="A-1002", customer={"phone": PHONE}))
    assert status == 201
    assert await zone_of(db, member) == "Asia/Yekaterinburg"


async def test_i16_10_a_not_yet_joined_customer_gets_the_zone_and_a_stranger_none(
    api: Client, db: Database
) -> None:
    visitor = await add_customer(db, joined=False)
    customer = {"telegram_id": TELEGRAM_ID, "time_zone": "Europe/Kaliningrad"}
    status, _ = await post_order(api, order_body(customer=customer))
    assert status == 201
    assert await zone_of(db, visitor) == "Europe/Kaliningrad"

    stranger = {"phone": "+79997654321", "time_zone": "Europe/Kaliningrad"}
    status, _ = await post_order(api, order_body(order_id="A-2001", customer=stranger))
    assert status == 201
    assert await count(db, customers) == 1  # no customer is made up for a phone


async def test_malformed_json_is_a_400(api: Client, db: Database) -> None:
    response = await api.post(
        "/api/v1/orders",
        data=b'{"order_id": ',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "malformed_json"


async def test_a_json_array_is_a_400(api: Client) -> None:
    response = await api.post("/api/v1/orders", data=json.dumps([1]), headers=AUTH)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "wrong_type"


# ---- status changes ----------------------------------------------------------------------


async def change(api: Client, order_id: str, status: object) -> tuple[int, Any]:
    response = await api.post(
        f"/api/v1/orders/{order_id}/status", json={"status": status}, headers=AUTH
    )
    return response.status, await response.json()


async def test_cancelling_gives_the_points_back_and_repeating_is_a_no_op(
    api: Client, db: Database, clock: FixedClock
) -> None:
    member = await add_customer(db)
    await give_points(db, clock, member, 500)
    code = await spend_code(db, clock, member)
    await post_order(api, order_body(bonus_redeemed="50", redeem_code=code))
    status, body = await change(api, "A-1001", "cancelled")
    assert status == 200
    assert body == {
        "order_id": "A-1001",
        "status": "cancelled",
        "previous_status": "paid",
        "changed": True,
        "customer_id": member,
        "points_reversed": 126,
        "points_restored": 50,
        "debt": 0,
        "balance": {"available": 500, "pending": 0},
    }
    entries = await count(db, ledger_entries)
    again_status, again = await change(api, "A-1001", "cancelled")
    assert again_status == 200
    assert again["changed"] is False
    assert again["balance"] == {"available": 500, "pending": 0}
    assert await count(db, ledger_entries) == entries
    async with db.read() as conn:
        assert (await conn.execute(select(orders.c.status))).scalar_one() == "cancelled"


async def test_a_cancelled_order_cannot_come_back(api: Client, db: Database) -> None:
    await add_customer(db)
    await post_order(api, order_body())
    await change(api, "A-1001", "refunded")
    for status in ("delivered", "cancelled"):
        got, body = await change(api, "A-1001", status)
        assert got == 409
        assert body["error"]["code"] == "status_final"
    async with db.read() as conn:
        assert (await conn.execute(select(orders.c.status))).scalar_one() == "refunded"


async def test_delivered_updates_the_status_only(api: Client, db: Database) -> None:
    await add_customer(db)
    _, receipt = await post_order(api, order_body())
    status, body = await change(api, "A-1001", "delivered")
    assert status == 200
    assert (body["status"], body["previous_status"], body["changed"]) == (
        "delivered",
        "paid",
        True,
    )
    assert body["balance"] == receipt["balance"]
    _, again = await change(api, "A-1001", "delivered")
    assert again["changed"] is False


async def test_cancelling_a_non_members_order_just_marks_it(api: Client, db: Database) -> None:
    await post_order(api, order_body())
    status, body = await change(api, "A-1001", "cancelled")
    assert (status, body["customer_id"], body["balance"]) == (200, None, None)


async def test_status_of_an_unknown_order_is_404(api: Client) -> None:
    status, body = await change(api, "NOPE-1", "delivered")
    assert status == 404
    assert (body["error"]["code"], body["error"]["field"]) == ("order_not_found", "order_id")


@pytest.mark.parametrize(
    ("value", "status", "code"), [("shipped", 422, "unknown_status"), (1, 400, "wrong_type")]
)
async def test_an_unknown_status_is_refused(
    api: Client, db: Database, value: object, status: int, code: str
) -> None:
    await post_order(api, order_body())
    got, body = await change(api, "A-1001", value)
    assert (got, body["error"]["code"], body["error"]["field"]) == (status, code, "status")


class RecordingFollower:
    def __init__(self) -> None:
        self.events: list[OrderEvent] = []

    async def after_order(self, event: OrderEvent) -> None:
        self.events.append(event)


async def test_followers_see_new_orders_and_changes_but_not_replays(
    db: Database, clock: FixedClock
) -> None:
    follower = RecordingFollower()
    app = create_api_app(
        services_for(db, rules=Rules(), clock=clock, followers=[follower]), api_token=TOKEN
    )
    async with TestClient(TestServer(app)) as api:
        member = await add_customer(db)
        await post_order(api, order_body())
        await post_order(api, order_body())  # a replay: nothing follows
        old = order_body(order_id="OLD-1", created_at="2026-01-01T10:00:00+03:00")
        await post_order(api, old)
        await change(api, "A-1001", "delivered")
        await change(api, "A-1001", "delivered")  # no change: nothing follows
    assert [
        (e.order_id, e.previous_status, e.status, e.customer_id, e.recent) for e in follower.events
    ] == [
        ("A-1001", None, "paid", member, True),
        ("OLD-1", None, "paid", member, False),
        ("A-1001", "paid", "delivered", member, True),
    ]


# ---- customer lookup ---------------------------------------------------------------------


async def lookup(api: Client, ref: str, **query: str) -> tuple[int, Any]:
    response = await api.get(f"/api/v1/customers/{quote(ref)}", params=query, headers=AUTH)
    return response.status, await response.json()


@pytest.mark.parametrize(
    "ref", ["8 (999) 123-45-67", "+7 999 123 45 67", "79991234567", "123", "tg:123"]
)
async def test_a_member_is_found_by_phone_or_telegram_id(
    api: Client, db: Database, clock: FixedClock, ref: str
) -> None:
    member = await add_customer(db)
    await give_points(db, clock, member, 500)
    await post_order(api, order_body())
    status, body = await lookup(api, ref, total="100.00")
    assert status == 200
    assert body == {
        "customer_id": member,
        "tier": "bronze",
        "cashback_percent": "5",
        "balance": {"available": 500, "pending": 129},
        "redeemable": 30,  # 30 % of 100.00 = 30.00 = 30 points (1 point = 1.00)
    }


async def test_a_member_is_found_by_card_number_or_username(api: Client, db: Database) -> None:
    member = await add_customer(db)
    async with db.transaction() as conn:  # a member from before random card numbers
        await conn.execute(
            customers.update()
            .where(customers.c.id == member)
            .values(card_number=card_number(member))
        )
    for ref in (card_number(member), display_card_number(card_number(member)), "@Anna_Cat"):
        status, body = await lookup(api, ref)
        assert (status, body["customer_id"]) == (200, member)
    wrong_check_digit = card_number(member)[:-1] + str((int(card_number(member)[-1]) + 1) % 10)
    status, body = await lookup(api, wrong_check_digit)
    assert (status, body["error"]["code"]) == (422, "invalid_card_number")
    status, body = await lookup(api, "@x")
    assert (status, body["error"]["code"]) == (422, "invalid_customer_ref")


async def test_redeemable_is_capped_by_the_available_points(
    api: Client, db: Database, clock: FixedClock
) -> None:
    member = await add_customer(db)
    await give_points(db, clock, member, 20)
    status, body = await lookup(api, "tg:123", total="2580.00")
    assert (status, body["redeemable"]) == (200, 20)
    _, without_total = await lookup(api, "tg:123")
    assert without_total["redeemable"] is None


async def test_unknown_or_not_joined_customers_are_404(api: Client, db: Database) -> None:
    await add_customer(db, joined=False)
    for ref in ("tg:123", "tg:999", "+7 912 000-00-00"):
        status, body = await lookup(api, ref)
        assert status == 404
        assert body["error"]["code"] == "customer_not_found"


async def test_a_bad_total_in_the_lookup_is_422(api: Client, db: Database) -> None:
    await add_customer(db)
    status, body = await lookup(api, "tg:123", total="1.001")
    assert (status, body["error"]["field"]) == (422, "total")


# ---- issue 15 item 3: spending needs the member's one-time code -------------------------


async def test_i15_3_spending_needs_the_members_one_time_code(
    api: Client, db: Database, clock: FixedClock
) -> None:
    """A phone number earns; spending needs the code the member got in the bot, once."""
    member = await add_customer(db)
    other = await add_customer(db, telegram_id=456, phone="+79990000000")
    await give_points(db, clock, member, 500)
    await give_points(db, clock, other, 500)

    async def refused(changes: dict[str, Any]) -> tuple[str, str | None]:
        status, body = await post_order(api, order_body(bonus_redeemed="50", **changes))
        assert status == 422, body
        return body["error"]["code"], body["error"]["field"]

    assert await refused({}) == ("redeem_code_required", "redeem_code")
    assert await refused({"redeem_code": " "}) == ("redeem_code_required", "redeem_code")
    code = await spend_code(db, clock, member)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert await refused({"redeem_code": wrong}) == ("redeem_code_invalid", "redeem_code")
    # Another member's code cannot spend this member's points.
    assert await refused({"redeem_code": await spend_code(db, clock, other)}) == (
        "redeem_code_invalid",
        "redeem_code",
    )
    assert await count(db, orders) == 0
    assert await count(db, ledger_entries) == 2  # the two welcome gifts only

    # Spaced as the bot shows it ("123 456"), the member's own code spends.
    status, body = await post_order(
        api, order_body(bonus_redeemed="50", redeem_code=f"{code[:3]} {code[3:]}")
    )
    assert status == 201
    assert body["balance"]["available"] == 450
    # Used once: the next order cannot spend with it; earning without a code still works.
    assert await refused({"order_id": "A-1002", "redeem_code": code}) == (
        "redeem_code_used",
        "redeem_code",
    )
    status, body = await post_order(api, order_body(order_id="A-1003"))
    assert status == 201 and body["points_accrued"] == 129


async def test_i15_3_an_expired_or_replaced_code_is_refused(
    api: Client, db: Database, clock: FixedClock
) -> None:
    member = await add_customer(db)
    await give_points(db, clock, member, 500)
    old = await spend_code(db, clock, member)
    new = await spend_code(db, clock, member)  # asking again replaces the first code
    status, body = await post_order(api, order_body(bonus_redeemed="50", redeem_code=old))
    assert (status, body["error"]["code"]) == (422, "redeem_code_invalid")
    clock.advance(timedelta(minutes=10))  # bonus.redeem_code_minutes
    status, body = await post_order(api, order_body(bonus_redeemed="50", redeem_code=new))
    assert (status, body["error"]["code"]) == (422, "redeem_code_expired")
    assert await count(db, orders) == 0
    async with db.read() as conn:
        stored = (await conn.execute(select(redeem_codes.c.code_hash))).scalars().all()
    assert stored and old not in stored and new not in stored  # hashed, never the code


async def test_guessing_a_members_code_locks_it_and_a_new_code_works(
    api: Client, db: Database, clock: FixedClock
) -> None:
    """Six digits are a million codes: five wrong tries lock the member's live code, though
    each refused order rolls back, so guessing cannot spend their points."""
    member = await add_customer(db)
    await give_points(db, clock, member, 500)
    code = await spend_code(db, clock, member)
    wrong = [f"{(int(code) + step) % 10**6:06d}" for step in range(1, 6)]  # bonus default: 5
    for guess in wrong:
        status, body = await post_order(api, order_body(bonus_redeemed="50", redeem_code=guess))
        assert (status, body["error"]["code"]) == (422, "redeem_code_invalid")

    status, body = await post_order(api, order_body(bonus_redeemed="50", redeem_code=code))
    assert (status, body["error"]["code"], body["error"]["field"]) == (
        422,
        "redeem_code_locked",
        "redeem_code",
    )
    assert "/code" in body["error"]["message"]
    assert await count(db, orders) == 0
    assert await count(db, ledger_entries) == 1  # the welcome gift only

    # The member asks the bot for a new code: it spends, and its count starts afresh.
    fresh = await spend_code(db, clock, member)
    status, body = await post_order(api, order_body(bonus_redeemed="50", redeem_code=fresh))
    assert status == 201
    assert body["balance"]["available"] == 450


async def test_wrong_codes_count_only_against_the_member_they_were_tried_for(
    api: Client, db: Database, clock: FixedClock
) -> None:
    member = await add_customer(db)
    other = await add_customer(db, telegram_id=456, phone="+79990000000")
    await give_points(db, clock, member, 500)
    await give_points(db, clock, other, 500)
    others_code = await spend_code(db, clock, other)
    own = await spend_code(db, clock, member)
    for _ in range(5):  # the other member's code, tried for this member
        status, body = await post_order(
            api, order_body(bonus_redeemed="50", redeem_code=others_code)
        )
        assert body["error"]["code"] == "redeem_code_invalid"
    # Typed for its own member, the other code still works; this member's is locked.
    other_order = order_body(
        order_id="B-1",
        customer={"telegram_id": 456},
        bonus_redeemed="50",
        redeem_code=others_code,
    )
    status, body = await post_order(api, other_order)
    assert status == 201, body
    status, body = await post_order(api, order_body(bonus_redeemed="50", redeem_code=own))
    assert body["error"]["code"] == "redeem_code_locked"


async def test_i15_3_a_shop_that_signs_customers_in_may_turn_the_code_off(
    db: Database, clock: FixedClock
) -> None:
    rules = Rules(bonus=Bonus(redeem_requires_code=False))
    app = create_api_app(services_for(db, rules=rules, clock=clock, followers=()), api_token=TOKEN)
    member = await add_customer(db)
    await give_points(db, clock, member, 500)
    async with TestClient(TestServer(app)) as client:
        status, body = await post_order(client, order_body(bonus_redeemed="50"))
    assert status == 201
    assert body["balance"]["available"] == 450


# ---- issue 15 item 5: the 12-month tier window counts an order from its own date ---------


async def test_i15_5_tier_window_counts_the_orders_own_date_not_when_it_was_reported(
    db: Database, clock: FixedClock
) -> None:
    rules = Rules(bonus=Bonus(tier_window="12 months"))
    app = create_api_app(
        services_for(db, rules=rules, clock=clock, zone=ZoneInfo("Europe/Moscow")), api_token=TOKEN
    )
    await add_customer(db)

    async def tier() -> str:
        response = await client.get("/api/v1/customers/tg:123", headers=AUTH)
        return str((await response.json())["tier"])

    async def announcements() -> list[dict[str, Any]]:
        async with db.read() as conn:
            rows = await conn.execute(
                select(outbox.c.payload).where(outbox.c.kind == "tier_change")
            )
            return [row.payload["context"] for row in rows]

    ten_thousand = {
        "items": [{"sku": "SOFA", "name": "Cat sofa", "quantity": 1, "price": "10000.00"}],
        "total": "10000.00",
    }
    async with TestClient(TestServer(app)) as client:
        # Placed 13 months ago, reported today: outside the window, it lifts no tier.
        status, _ = await post_order(
            client,
            order_body(order_id="OLD-13M", created_at="2025-10-01T12:00:00+03:00", **ten_thousand),
        )
        assert status == 201
        assert await tier() == "bronze"
        assert await announcements() == []
        # Backdated by 20 days: inside the window, silver, announced once (a replay adds none).
        backdated = order_body(
            order_id="BACK-20D", created_at="2026-10-12T12:00:00+03:00", **ten_thousand
        )
        assert (await post_order(client, backdated))[0] == 201
        assert (await post_order(client, backdated))[0] == 200
        assert await tier() == "silver"
        assert [(a["direction"], a["tier"]) for a in await announcements()] == [("up", "silver")]
        # Twelve months after it was placed (not reported) the order leaves the window.
        clock.set(datetime(2027, 10, 13, 10, 0, tzinfo=UTC))
        assert await tier() == "bronze"


# ---- issue 15 item 9: the refund answer says what the ledger did -------------------------


async def test_i15_9_the_refund_answer_equals_what_the_ledger_did(
    api: Client, db: Database, clock: FixedClock
) -> None:
    member = await add_customer(db)
    await give_points(db, clock, member, 100)
    assert (await post_order(api, order_body(order_id="A-1")))[0] == 201  # +129 pending
    clock.advance(timedelta(days=15))
    code = await spend_code(db, clock, member)
    # The 229 available points pay for A-2, which earns 117 pending.
    status, body = await post_order(
        api,
        order_body(
            order_id="A-2",
            bonus_redeemed="229",
            redeem_code=code,
            created_at="2026-11-16T13:00:00+03:00",
        ),
    )
    assert (status, body["points_accrued"]) == (201, 117)

    response = await api.post(
        "/api/v1/orders/A-1/status", json={"status": "refunded"}, headers=AUTH
    )
    answer = await response.json()
    async with db.read() as conn:
        taken = (
            await conn.execute(
                select(func.sum(ledger_entries.c.amount)).where(
                    ledger_entries.c.source == "order:A-1",
                    ledger_entries.c.kind.in_(("reversal", "correction")),
                )
            )
        ).scalar_one()
    # A-1's 129 points were spent on A-2: 117 come from A-2's points, 12 are owed.
    assert -taken == 129
    assert (answer["points_reversed"], answer["points_restored"], answer["debt"]) == (129, 0, 12)
    assert answer["balance"] == {"available": 0, "pending": 0}

    # Later points pay the debt off; a repeated refund still tells what the refund did.
    await PointsLedger(
        SqlLedger(db),
        bonus=Rules().bonus,
        ladder=TierLadder.from_rules(Rules().bonus, currency="RUB"),
        clock=clock,
    ).grant(customer_id=member, kind=EntryKind.GIFT, source="gift:1", points=50, reason="gift")
    response = await api.post(
        "/api/v1/orders/A-1/status", json={"status": "refunded"}, headers=AUTH
    )
    again = await response.json()
    assert (again["points_reversed"], again["points_restored"], again["debt"]) == (129, 0, 12)
    assert again["balance"] == {"available": 38, "pending": 0}
