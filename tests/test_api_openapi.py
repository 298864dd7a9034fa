"""The OpenAPI document and the routes the API really serves never drift apart."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.api import create_api_app
from bot.api.openapi import openapi_document
from scenarios.clock import FixedClock
from scenarios.rules import Rules
from storage.database import Database

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(sqlite_db: Database, clock: FixedClock) -> AsyncIterator[Client]:
    app = create_api_app(db=sqlite_db, rules=Rules(), clock=clock, api_token="t0ken")
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_every_route_is_documented_and_every_documented_route_exists(
    client: Client,
) -> None:
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in client.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {
        (method, path)
        for path, operations in openapi_document()["paths"].items()
        for method in operations
    }
    assert served == documented


async def test_the_document_is_served_without_a_token_and_its_references_resolve(
    client: Client,
) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.")
    schemas = document["components"]["schemas"]
    references = set(re.findall(r'"#/components/schemas/([^"]+)"', str(document).replace("'", '"')))
    assert references
    assert references <= set(schemas), references - set(schemas)
    assert "order_id" in schemas["OrderBody"]["properties"]
