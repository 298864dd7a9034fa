"""The OpenAPI document and the API never drift apart: the routes, the bounds, the answers."""

from __future__ import annotations

import asyncio
import re
import typing
from collections.abc import AsyncIterator
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.api import create_api_app
from bot.api.models import NewStatus, StatusReport
from bot.api.openapi import openapi_document
from scenarios.clock import FixedClock
from scenarios.orders import MAX_ORDER_ID, ORDER_STATUSES, STATUS_CHANGES
from scenarios.rules import Rules
from storage.database import Database
from tests.support.schemathesis_run import schemathesis_failures
from tests.support.services import services_for
from tests.test_api_orders import AUTH, TOKEN, add_customer, item, order_body

Client = TestClient[web.Request, web.Application]
DOCUMENT = openapi_document()
SCHEMAS = DOCUMENT["components"]["schemas"]


@pytest.fixture
async def client(sqlite_db: Database, clock: FixedClock) -> AsyncIterator[Client]:
    app = create_api_app(
        services_for(sqlite_db, rules=Rules(), clock=clock, followers=()), api_token="t0ken"
    )
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.fixture
async def api(db: Database, clock: FixedClock) -> AsyncIterator[Client]:
    app = create_api_app(
        services_for(db, rules=Rules(), clock=clock, followers=()), api_token=TOKEN
    )
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


# ---- 16.12: the document says what is enforced ---------------------------------------------


def validator(schema: dict[str, Any]) -> Any:
    """A JSON Schema validator for a schema of the document (its $refs resolve)."""
    return jsonschema_rs.Draft202012Validator({**schema, "components": DOCUMENT["components"]})


def answer_schema(path: str, method: str, status: int) -> dict[str, Any]:
    responses = DOCUMENT["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method} {path} answered {status}, undocumented"
    schema: dict[str, Any] = responses[str(status)]["content"]["application/json"]["schema"]
    return schema


def request_schema(path: str, method: str) -> dict[str, Any]:
    body = DOCUMENT["paths"][path][method]["requestBody"]
    schema: dict[str, Any] = body["content"]["application/json"]["schema"]
    return schema


def test_i16_12_order_id_bounds_in_the_document_are_the_enforced_ones() -> None:
    order_id = SCHEMAS["OrderBody"]["properties"]["order_id"]
    assert order_id["maxLength"] == MAX_ORDER_ID == 64
    assert order_id["minLength"] == 1
    status_path = DOCUMENT["paths"]["/api/v1/orders/{order_id}/status"]["post"]
    [parameter] = status_path["parameters"]
    assert parameter["schema"]["maxLength"] == MAX_ORDER_ID


def test_i16_12_status_fields_have_their_enums() -> None:
    assert typing.get_args(NewStatus) == ORDER_STATUSES
    assert typing.get_args(StatusReport) == STATUS_CHANGES
    assert SCHEMAS["OrderBody"]["properties"]["status"]["enum"] == list(ORDER_STATUSES)
    assert SCHEMAS["StatusBody"]["properties"]["status"]["enum"] == list(STATUS_CHANGES)
    assert SCHEMAS["StatusAnswer"]["properties"]["status"]["enum"] == list(STATUS_CHANGES)
    previous = SCHEMAS["StatusAnswer"]["properties"]["previous_status"]
    assert {value for option in previous["anyOf"] for value in option["enum"]} == {
        *ORDER_STATUSES,
        *STATUS_CHANGES,
    }


def test_i16_12_answers_have_schemas_and_every_field_a_description() -> None:
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                schema = response["content"]["application/json"]["schema"]
                if path != "/api/v1/openapi.json":
                    assert "$ref" in schema, (method, path, status, schema)
            for parameter in operation.get("parameters", []):
                assert parameter["description"], (path, parameter)
    undescribed = [
        f"{name}.{field}"
        for name, schema in SCHEMAS.items()
        for field, spec in schema.get("properties", {}).items()
        if "description" not in spec
        and "$ref" not in spec
        and field not in {"order_id", "sku"}
        and name not in {"Health", "ProductAnswer"}
    ]
    assert undescribed == []


def test_i16_12_the_document_is_valid_openapi() -> None:
    # schemathesis refuses a document that is not OpenAPI 3.1.
    schema = schemathesis.openapi.from_dict(DOCUMENT)
    operations = schema.get_all_operations()
    assert {result.ok().label for result in operations} == {  # type: ignore[union-attr]
        "GET /healthz",
        "PUT /api/v1/products/{sku}",
        "GET /api/v1/openapi.json",
        "POST /api/v1/orders",
        "POST /api/v1/orders/{order_id}/status",
        "GET /api/v1/customers/{ref}",
        "GET /api/v1/stats",
    }


async def test_i16_12_real_requests_and_answers_match_the_document(
    api: Client, db: Database
) -> None:
    """Every route, its success and its errors, on both databases: each request sent is valid
    for the document (or, for the refusals, invalid) and each answer matches its schema."""
    await add_customer(db)
    body = order_body(discount="0", shipping="0")
    valid_requests = [
        ("/api/v1/orders", "post", body),
        ("/api/v1/orders/{order_id}/status", "post", {"status": "delivered"}),
        ("/api/v1/products/{sku}", "put", {"name": "Cat food", "consumption_days": 30}),
    ]
    for path, method, sent in valid_requests:
        errors = [
            error.message for error in validator(request_schema(path, method)).iter_errors(sent)
        ]
        assert errors == [], (path, errors)
    long_id = order_body(order_id="A" * 65, items=[item("2580.00")])
    assert not validator(request_schema("/api/v1/orders", "post")).is_valid(long_id)

    calls: list[tuple[str, str, str, Any]] = [
        ("post", "/api/v1/orders", "/api/v1/orders", body),
        ("post", "/api/v1/orders", "/api/v1/orders", body),  # the replay: 200
        (
            "post",
            "/api/v1/orders",
            "/api/v1/orders",
            {**body, "items": [item("3000.00")], "total": "3000.00"},
        ),  # 409
        ("post", "/api/v1/orders", "/api/v1/orders", long_id),  # 422
        ("post", "/api/v1/orders", "/api/v1/orders", {**body, "coupon": "X"}),  # 400
        (
            "post",
            "/api/v1/orders/A-1001/status",
            "/api/v1/orders/{order_id}/status",
            {"status": "delivered"},
        ),
        (
            "post",
            "/api/v1/orders/NOPE/status",
            "/api/v1/orders/{order_id}/status",
            {"status": "delivered"},
        ),
        ("get", "/api/v1/customers/tg:123?total=100.00", "/api/v1/customers/{ref}", None),
        ("get", "/api/v1/customers/tg:123", "/api/v1/customers/{ref}", None),
        ("get", "/api/v1/customers/tg:999", "/api/v1/customers/{ref}", None),
        ("put", "/api/v1/products/CAT-2KG", "/api/v1/products/{sku}", {"name": "Cat food"}),
        (
            "put",
            "/api/v1/products/CAT-2KG",
            "/api/v1/products/{sku}",
            {"name": "Cat", "related": ["L"]},
        ),
        ("put", "/api/v1/products/CAT-2KG", "/api/v1/products/{sku}", {"name": "Cat", "url": "x"}),
        ("get", "/healthz", "/healthz", None),
        ("get", "/api/v1/stats?period=30d", "/api/v1/stats", None),
        ("get", "/api/v1/stats", "/api/v1/stats", None),
        ("get", "/api/v1/stats?period=1y", "/api/v1/stats", None),  # 422
    ]
    statuses = []
    for method, url, path, sent in calls:
        response = await api.request(method, url, json=sent, headers=AUTH)
        statuses.append(response.status)
        answer = await response.json()
        schema = answer_schema(path, method, response.status)
        errors = [error.message for error in validator(schema).iter_errors(answer)]
        assert errors == [], (method, url, response.status, answer, errors)
    assert statuses == [
        *(201, 200, 409, 422, 400, 200, 404, 200, 200, 404, 201, 200, 422, 200),
        *(200, 200, 422),
    ]
    unauthorised = await api.post("/api/v1/orders", json=body)
    schema = answer_schema("/api/v1/orders", "post", unauthorised.status)
    assert validator(schema).is_valid(await unauthorised.json())


# ---- 16.15: 405 with Allow; the document no looser than the rules --------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/v1/orders", {"POST"}),
        ("GET", "/api/v1/orders", {"POST"}),
        ("GET", "/api/v1/orders/A-1/status", {"POST"}),
        ("POST", "/api/v1/customers/tg:1", {"GET", "HEAD"}),
        ("DELETE", "/api/v1/products/CAT", {"PUT"}),
        ("POST", "/healthz", {"GET", "HEAD"}),
        ("PUT", "/api/v1/openapi.json", {"GET", "HEAD"}),
        ("POST", "/api/v1/stats", {"GET", "HEAD"}),
    ],
)
async def test_i16_15_a_405_says_which_methods_are_allowed(
    client: Client, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path, headers={"Authorization": "Bearer t0ken"})
    assert response.status == 405
    assert {part.strip() for part in response.headers["Allow"].split(",")} == allowed
    body = await response.json()
    assert body["error"]["code"] == "method_not_allowed"


def _schemathesis_failures(base_url: str) -> list[str]:
    return schemathesis_failures(
        DOCUMENT,
        {
            "seed": 15,
            "max-time": 40,
            "base-url": base_url,
            "headers": {"Authorization": "Bearer t0ken"},
            "generation": {"max-examples": 8, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
            "checks": {
                # 422: a value the document allows breaks a rule it cannot express (a valid
                # phone, a total that adds up, a date not in the future); never a 400 or 500.
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "401", "404", "409", "422"]
                },
            },
        },
    )


async def test_i16_15_schemathesis_finds_no_disagreement_on_sqlite(
    sqlite_db: Database, clock: FixedClock
) -> None:
    app = create_api_app(
        services_for(sqlite_db, rules=Rules(), clock=clock, followers=()), api_token="t0ken"
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        await add_customer(sqlite_db)
        base_url = f"http://127.0.0.1:{server.port}"
        failures = await asyncio.to_thread(_schemathesis_failures, base_url)
    finally:
        await server.close()
    assert failures == [], "\n\n".join(failures)
