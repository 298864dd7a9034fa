"""Input that cannot be true gets a 4xx JSON error and writes nothing, never a 500 (issue 15.7)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bot.api import create_api_app
from scenarios.clock import FixedClock
from scenarios.rules import Rules
from storage.database import Database
from storage.schema import ledger_entries, order_items, orders
from tests.support.services import services_for
from tests.test_api_orders import AUTH, TOKEN, add_customer, count, item, order_body, post_order
from tests.test_import import run as run_import

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def api(db: Database, clock: FixedClock) -> AsyncIterator[Client]:
    app = create_api_app(
        services_for(db, rules=Rules(), clock=clock, followers=()), api_token=TOKEN
    )
    async with TestClient(TestServer(app)) as client:
        yield client


async def nothing_written(db: Database) -> None:
    assert await count(db, orders) == 0
    assert await count(db, order_items) == 0
    assert await count(db, ledger_entries) == 0


def error_of(body: Any) -> tuple[str, str | None]:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["message"]
    return body["error"]["code"], body["error"]["field"]


@pytest.mark.parametrize(
    ("created_at", "code"),
    [
        ("0001-01-01T00:00:00+05:00", "created_at_out_of_range"),
        ("0001-01-01T00:00:00Z", "created_at_out_of_range"),
        ("1999-12-31T23:59:59Z", "created_at_out_of_range"),
        ("9999-12-31T23:59:59-05:00", "created_at_in_future"),
        ("9999-12-31T23:59:59+05:00", "created_at_in_future"),
        # The fixed clock is 10:00 UTC; five minutes of skew are allowed, six are not.
        ("2026-11-01T10:06:00Z", "created_at_in_future"),
        ("2026-11-02T13:00:00+03:00", "created_at_in_future"),
    ],
)
async def test_i15_7_dates_that_cannot_be_true_are_422_and_write_nothing(
    api: Client, db: Database, created_at: str, code: str
) -> None:
    await add_customer(db)
    status, body = await post_order(api, order_body(created_at=created_at))
    assert status == 422
    assert error_of(body) == (code, "created_at")
    await nothing_written(db)


async def test_i15_7_a_little_clock_skew_is_accepted(api: Client, db: Database) -> None:
    await add_customer(db)
    status, _ = await post_order(api, order_body(created_at="2026-11-01T10:04:00Z"))
    assert status == 201


async def test_i15_7_clock_skew_is_a_setting(db: Database, clock: FixedClock) -> None:
    rules = Rules.model_validate({"orders": {"clock_skew_minutes": 0}})
    app = create_api_app(services_for(db, rules=rules, clock=clock, followers=()), api_token=TOKEN)
    async with TestClient(TestServer(app)) as api:
        status, body = await post_order(api, order_body(created_at="2026-11-01T10:01:00Z"))
    assert (status, error_of(body)) == (422, ("created_at_in_future", "created_at"))


TWENTY_DIGITS = "9" * 20


@pytest.mark.parametrize(
    "ref", [TWENTY_DIGITS, f"tg:{TWENTY_DIGITS}", "4503599627370496", "tg:0", "\x00", "x" * 65]
)
async def test_i15_7_a_customer_reference_that_names_nobody_is_422(
    api: Client, db: Database, ref: str
) -> None:
    await add_customer(db)
    response = await api.get(f"/api/v1/customers/{quote(ref)}", headers=AUTH)
    assert response.status == 422
    assert error_of(await response.json()) == ("invalid_customer_ref", "ref")


async def test_i15_7_a_twenty_digit_telegram_id_in_an_order_is_422(
    api: Client, db: Database
) -> None:
    status, body = await post_order(api, order_body(customer={"telegram_id": int(TWENTY_DIGITS)}))
    assert (status, error_of(body)) == (422, ("invalid_telegram_id", "customer.telegram_id"))
    await nothing_written(db)


@pytest.mark.parametrize(
    ("path", "method", "code", "field"),
    [
        ("/api/v1/customers/%00", "GET", "invalid_customer_ref", "ref"),
        ("/api/v1/customers/tg%3A1%00", "GET", "invalid_customer_ref", "ref"),
        ("/api/v1/orders/A-1001%00/status", "POST", "invalid_order_id", "order_id"),
        ("/api/v1/products/CAT%00", "PUT", "invalid_sku", "sku"),
    ],
)
async def test_i15_7_a_nul_in_the_path_is_a_4xx(
    api: Client, db: Database, path: str, method: str, code: str, field: str | None
) -> None:
    await post_order(api, order_body())
    body = {"status": "delivered"} if "status" in path else {"name": "Cat food"}
    response = await api.request(method, path, json=body, headers=AUTH)
    assert 400 <= response.status < 500
    assert error_of(await response.json()) == (code, field)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"order_id": "A-\x00"}, "order_id"),
        ({"customer": {"phone": "+79991234567", "name": "An\x00na"}}, "customer.name"),
        ({"items": [{**item("2580.00"), "name": "Cat\x00food"}]}, "items.0.name"),
        ({"items": [{**item("2580.00"), "sku": "CAT\x00"}]}, "items.0.sku"),
    ],
)
async def test_i15_7_a_nul_in_the_body_is_422(
    api: Client, db: Database, changes: dict[str, Any], field: str
) -> None:
    status, body = await post_order(api, order_body(**changes))
    assert status == 422
    assert error_of(body)[1] == field
    await nothing_written(db)


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"items": []}, "no_items", "items"),
        ({"total": "2000.00"}, "total_mismatch", "total"),
        ({"total": "2580.02"}, "total_mismatch", "total"),
        ({"total": "2580.00", "shipping": "300.00"}, "total_mismatch", "total"),
        ({"total": "١٢٣"}, "invalid_amount", "total"),
        ({"total": "1_000"}, "invalid_amount", "total"),
        ({"total": " 2580.00"}, "invalid_amount", "total"),
        ({"total": "2.58e3"}, "invalid_amount", "total"),
        ({"items": [item("1_290", 2)], "total": "2580"}, "invalid_amount", "items.0.price"),
        ({"items": [item("١٢٩٠", 2)], "total": "2580"}, "invalid_amount", "items.0.price"),
        ({"discount": "-5"}, "invalid_amount", "discount"),
        ({"bonus_redeemed": "١٠"}, "invalid_points", "bonus_redeemed"),
        ({"bonus_redeemed": "1_0"}, "invalid_points", "bonus_redeemed"),
        (
            {"items": [item("1.00", 10**12)], "total": "1.00"},
            "invalid_quantity",
            "items.0.quantity",
        ),
        (
            {"items": [item("99999999999.99")], "total": "99999999999.99"},
            "total_too_large",
            "total",
        ),
    ],
)
async def test_i15_7_totals_that_cannot_be_true_are_422_and_write_nothing(
    api: Client, db: Database, changes: dict[str, Any], code: str, field: str
) -> None:
    await add_customer(db)
    status, body = await post_order(api, order_body(**changes))
    assert status == 422, body
    assert error_of(body) == (code, field)
    await nothing_written(db)


async def test_i15_7_a_total_with_discount_and_shipping_adds_up(api: Client, db: Database) -> None:
    await add_customer(db)
    # 2 × 1290.00 − 100.00 + 300.00 = 2780.00
    status, body = await post_order(
        api, order_body(total="2780.00", discount="100.00", shipping="300.00")
    )
    assert status == 201
    assert body["points_accrued"] == 139  # 5 % of the total the shop reported
    # Three lines whose shares of a discount were rounded each: 0.01 per line is tolerated.
    lines = [{**item("10.00"), "sku": f"S-{n}"} for n in range(3)]
    status, _ = await post_order(
        api, order_body(order_id="A-2", items=lines, total="20.03", discount="10.00")
    )
    assert status == 201
    status, body = await post_order(
        api, order_body(order_id="A-3", items=lines, total="20.04", discount="10.00")
    )
    assert (status, error_of(body)) == (422, ("total_mismatch", "total"))


async def test_i15_7_a_total_above_orders_max_total_is_422(db: Database, clock: FixedClock) -> None:
    rules = Rules.model_validate({"orders": {"max_total": "2000"}})
    app = create_api_app(services_for(db, rules=rules, clock=clock, followers=()), api_token=TOKEN)
    async with TestClient(TestServer(app)) as api:
        await add_customer(db)
        status, body = await post_order(api, order_body())
        assert status == 422
        assert error_of(body) == ("total_too_large", "total")
        assert "2000.00" in body["error"]["message"]
        small = order_body(order_id="A-2", items=[item("2000.00")], total="2000.00")
        status, _ = await post_order(api, small)
        assert status == 201


async def test_i15_7_a_replay_of_an_order_stored_before_discount_keeps_its_fingerprint(
    api: Client, db: Database
) -> None:
    """discount and shipping of 0 leave the canonical body as it was: no false conflicts."""
    await add_customer(db)
    first_status, first = await post_order(api, order_body())
    again_status, again = await post_order(api, order_body(discount="0", shipping="0.00"))
    assert (first_status, again_status, again) == (201, 200, first)


@pytest.mark.parametrize(
    ("query", "code"),
    [("١٠٠", "invalid_amount"), ("1_00", "invalid_amount"), (" 1", "invalid_amount")],
)
async def test_i15_7_a_lookup_total_spelt_oddly_is_422(
    api: Client, db: Database, query: str, code: str
) -> None:
    await add_customer(db)
    response = await api.get("/api/v1/customers/tg:123", params={"total": query}, headers=AUTH)
    assert response.status == 422
    assert error_of(await response.json()) == (code, "total")


# ---- anything at all: never a 500 ----------------------------------------------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["", "\x00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=12,
)
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "order_id": _SCALARS,
        "customer": st.fixed_dictionaries(
            {}, optional={"phone": _SCALARS, "telegram_id": _SCALARS, "name": _SCALARS}
        )
        | _JSON,
        "items": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "sku": _SCALARS,
                    "name": _SCALARS,
                    "quantity": _SCALARS,
                    "price": _SCALARS,
                },
            ),
            max_size=3,
        )
        | _JSON,
        "total": _SCALARS,
        "currency": st.sampled_from(["RUB", "rub", "USD"]) | _SCALARS,
        "status": st.sampled_from(["paid", "delivered", "PAID"]) | _SCALARS,
        "created_at": _SCALARS,
        "bonus_redeemed": _SCALARS,
        "discount": _SCALARS,
        "shipping": _SCALARS,
    },
)
_SEGMENTS = st.text(max_size=80) | st.sampled_from(["%00", "%FF", "tg:" + "9" * 20, "9" * 20])
SHARED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(max_examples=60, deadline=None, suppress_health_check=SHARED)
@given(body=_FIELDS | _JSON, segment=_SEGMENTS, total=st.none() | st.text(max_size=20))
async def test_i15_7_any_json_and_any_path_get_a_json_answer_below_500(
    api: Client, body: Any, segment: str, total: str | None
) -> None:
    piece = quote(segment, safe="%:") if segment not in {"%00", "%FF"} else segment
    answers = [
        await api.post("/api/v1/orders", data=json.dumps(body), headers=AUTH),
        await api.post(f"/api/v1/orders/{piece}/status", data=json.dumps(body), headers=AUTH),
        await api.put(f"/api/v1/products/{piece}", data=json.dumps(body), headers=AUTH),
        await api.get(
            f"/api/v1/customers/{piece}",
            params={"total": total} if total is not None else None,
            headers=AUTH,
        ),
    ]
    for response in answers:
        assert response.status < 500, (response.method, response.url, await response.text())
        if response.status >= 400:
            error_of(await response.json())


# ---- the CSV import follows the same rule ----------------------------------------------------


async def test_i15_7_an_imported_total_must_add_up_with_discount_and_shipping(
    db: Database, clock: FixedClock
) -> None:
    text = (
        "order_id,created_at,phone,total,discount,shipping,sku,quantity,price\n"
        "OK-1,2026-10-20,+79991234567,2780.00,100.00,300.00,CAT,2,1290.00\n"
        "OFF-1,2026-10-20,+79991234567,2580.00,,300.00,CAT,2,1290.00\n"
        "FUTURE,2027-10-20,+79991234567,1290.00,,,CAT,1,1290.00\n"
    )
    summary = await run_import(db, clock, text)
    assert summary.imported == 1
    messages = {r.key: r.message for r in summary.rejected}
    assert messages["OFF-1"] == (
        "total: the total should be 2880.00 "
        "(the items' quantity × price, minus discount, plus shipping)"
    )
    assert messages["FUTURE"].startswith("created_at: created_at is in the future")
    async with db.read() as conn:
        assert (await conn.execute(select(orders.c.order_ref))).scalars().all() == ["OK-1"]
