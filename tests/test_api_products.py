"""PUT /api/v1/products/{sku} over real HTTP, on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.api import create_api_app
from scenarios.clock import FixedClock
from scenarios.rules import Rules
from storage.database import Database
from storage.products import ProductRecord, SqlProducts
from tests.support.services import services_for

Client = TestClient[web.Request, web.Application]
AUTH = {"Authorization": "Bearer t0ken"}
CAT_FOOD = {
    "name": "Cat food 2 kg",
    "url": "https://lapki.example/cat-food-2kg",
    "category": "food",
    "consumption_days": 30,
    "lead_days": 3,
    "related": ["CAT-5KG"],
}


@pytest.fixture
async def client(db: Database, clock: FixedClock) -> AsyncIterator[Client]:
    app = create_api_app(
        services_for(db, rules=Rules(), clock=clock, followers=()), api_token="t0ken"
    )
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_a_product_is_created_then_replaced(client: Client, db: Database) -> None:
    created = await client.put("/api/v1/products/CAT-2KG", json=CAT_FOOD, headers=AUTH)
    assert created.status == 201
    assert (await created.json())["consumption_days"] == 30
    replaced = await client.put(
        "/api/v1/products/CAT-2KG",
        json={**CAT_FOOD, "consumption_days": 35, "related": []},
        headers=AUTH,
    )
    assert replaced.status == 200
    stored = await SqlProducts(db).get(sku="CAT-2KG")
    assert stored == ProductRecord(
        sku="CAT-2KG",
        name="Cat food 2 kg",
        url="https://lapki.example/cat-food-2kg",
        category="food",
        consumption_days=35,
        lead_days=3,
        related=(),
    )


@pytest.mark.parametrize(
    ("sku", "body", "status", "code", "field"),
    [
        ("CAT-2KG", {**CAT_FOOD, "url": "lapki.example"}, 422, "invalid_url", "url"),
        ("CAT-2KG", {**CAT_FOOD, "consumption_days": 0}, 422, "invalid_days", "consumption_days"),
        ("CAT-2KG", {**CAT_FOOD, "related": ["CAT-2KG"]}, 422, "invalid_related", "related.0"),
        ("CAT 2KG", CAT_FOOD, 422, "invalid_sku", "sku"),
        ("CAT-2KG", {**CAT_FOOD, "colour": "red"}, 400, "unknown_field", "colour"),
        ("CAT-2KG", {**CAT_FOOD, "consumption_days": "30"}, 400, "wrong_type", "consumption_days"),
    ],
)
async def test_a_bad_product_is_refused_and_nothing_is_stored(
    client: Client,
    db: Database,
    sku: str,
    body: dict[str, object],
    status: int,
    code: str,
    field: str,
) -> None:
    response = await client.put(f"/api/v1/products/{sku}", json=body, headers=AUTH)
    assert response.status == status
    error = (await response.json())["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert await SqlProducts(db).get(sku=sku) is None


async def test_products_need_the_token(client: Client) -> None:
    response = await client.put("/api/v1/products/CAT-2KG", json=CAT_FOOD)
    assert response.status == 401
