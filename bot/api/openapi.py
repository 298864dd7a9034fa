"""The API's OpenAPI 3.1 document, built from the same pydantic models that validate requests
and serialise answers, and from the same patterns that check path and query parameters."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bot.api.models import (
    AMOUNT_PATTERN,
    ANSWERS,
    ID_PATTERN,
    MAX_SKU,
    REQUESTS,
    TEXT_PATTERN,
    CustomerAnswer,
    ErrorAnswer,
    Health,
    OrderBody,
    ProductAnswer,
    ProductBody,
    Receipt,
    StatusAnswer,
    StatusBody,
)
from bot.api.stats import PERIOD_PARAMETER, StatsAnswer
from scenarios.customers import MAX_REF
from scenarios.orders import MAX_ORDER_ID

_REF = "#/components/schemas/{model}"
_REASONS = {
    400: "The body is not the shape this document gives (JSON types, unknown or missing fields)",
    401: "Missing or wrong bearer token",
    404: "No such order or customer",
    409: "Conflicts with what is stored",
    413: "The body is larger than 1 MiB",
    422: "The shape is right but a value breaks a rule (bounds and patterns of this document, "
    "or a rule it cannot express: a valid phone, the total, the date, the points)",
    503: "The database does not answer",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): _json(ErrorAnswer, _REASONS[status]) for status in statuses}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(model)}}}


def _path(name: str, description: str, *, max_length: int, pattern: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": pattern},
    }


# The path and query parameters, as bot.api.models.path_problem checks them.
ORDER_ID_PARAMETER = _path(
    "order_id", "The shop's order number", max_length=MAX_ORDER_ID, pattern=ID_PATTERN
)
SKU_PARAMETER = _path("sku", "The product's SKU", max_length=MAX_SKU, pattern=ID_PATTERN)
REF_PARAMETER = _path(
    "ref",
    "Card number, phone, @username, Telegram id or tg:<id>",
    max_length=MAX_REF,
    pattern=TEXT_PATTERN,
)
TOTAL_PARAMETER = {
    "name": "total",
    "in": "query",
    "required": False,
    "description": "An order total: the answer says how many points may pay for it",
    "schema": {"type": "string", "maxLength": 32, "pattern": AMOUNT_PATTERN, "example": "2580.00"},
}


def _components() -> dict[str, Any]:
    models = [(model, "validation") for model in REQUESTS]
    answers: tuple[type[BaseModel], ...] = (*ANSWERS, StatsAnswer)
    models += [(model, "serialization") for model in answers]
    _, schema = models_json_schema(models, ref_template=_REF)  # type: ignore[arg-type]
    return dict(schema["$defs"])


def openapi_document(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every route the API serves, with its request and response shapes; ``extra`` adds the
    paths, schemas, security schemes and tags of another part of the server (the Mini App)."""
    document = _shop_document()
    if extra:
        document["paths"].update(extra.get("paths", {}))
        document["components"]["schemas"].update(extra.get("schemas", {}))
        document["components"]["securitySchemes"].update(extra.get("securitySchemes", {}))
        document["tags"] = [*document.get("tags", []), *extra.get("tags", [])]
    return document


def _shop_document() -> dict[str, Any]:
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Repeat-sales bot: shop API",
            "version": "1",
            "description": "Errors are JSON {error: {code, message, field}}. 400: the request is "
            "not the shape given here; 422: a value breaks a rule. Nothing is written then.",
        },
        "components": {
            "schemas": _components(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Liveness and database reachability (no token needed)",
                    "security": [],
                    "responses": {"200": _json(Health, "Up"), **_errors(503)},
                }
            },
            "/api/v1/products/{sku}": {
                "put": {
                    "summary": "Create or replace a product (name, link, consumption, related)",
                    "security": secured,
                    "parameters": [SKU_PARAMETER],
                    "requestBody": _body(ProductBody),
                    "responses": {
                        "201": _json(ProductAnswer, "Created"),
                        "200": _json(ProductAnswer, "Replaced"),
                        **_errors(400, 401, 413, 422),
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document (no token needed)",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/api/v1/orders": {
                "post": {
                    "summary": "Report an order; members redeem and earn points",
                    "security": secured,
                    "requestBody": _body(OrderBody),
                    "responses": {
                        "201": _json(Receipt, "Stored"),
                        "200": _json(Receipt, "The same order again: the first answer"),
                        **_errors(400, 401, 409, 413, 422),
                    },
                }
            },
            "/api/v1/orders/{order_id}/status": {
                "post": {
                    "summary": "Delivered, cancelled or refunded (points reversed)",
                    "security": secured,
                    "parameters": [ORDER_ID_PARAMETER],
                    "requestBody": _body(StatusBody),
                    "responses": {
                        "200": _json(StatusAnswer, "The change and the balance"),
                        **_errors(400, 401, 404, 409, 413, 422),
                    },
                }
            },
            "/api/v1/stats": {
                "get": {
                    "summary": "The shop's figures for a period ending now (what /stats shows)",
                    "security": secured,
                    "parameters": [PERIOD_PARAMETER],
                    "responses": {
                        "200": _json(StatsAnswer, "Repeat sales, retention, value, cohorts"),
                        **_errors(401, 422, 503),
                    },
                }
            },
            "/api/v1/customers/{ref}": {
                "get": {
                    "summary": "A member by card number, phone, @username, Telegram id or tg:<id>",
                    "security": secured,
                    "parameters": [REF_PARAMETER, TOTAL_PARAMETER],
                    "responses": {
                        "200": _json(CustomerAnswer, "Tier, cashback and points"),
                        **_errors(401, 404, 422),
                    },
                }
            },
        },
    }
