"""The API's OpenAPI 3.1 document, built from the same pydantic models that validate requests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from bot.api.models import OrderBody, ProductBody, StatusBody

_REF = "#/components/schemas/{model}"

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "example": "invalid_phone"},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"], "example": "customer.phone"},
            },
        }
    },
}
_BALANCE = {
    "type": "object",
    "properties": {"available": {"type": "integer"}, "pending": {"type": "integer"}},
}
_RECEIPT = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "customer_id": {"type": ["integer", "null"]},
        "points_accrued": {"type": "integer"},
        "pending_until": {"type": ["string", "null"], "format": "date-time"},
        "balance": {"$ref": _REF.format(model="Balance")},
    },
}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "The body is not the expected JSON shape",
        401: "Missing or wrong bearer token",
        404: "No such order or customer",
        409: "Conflicts with what is stored",
        422: "Well-formed but breaks a rule",
    }
    return {
        str(status): {
            "description": reasons[status],
            "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}},
        }
        for status in statuses
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}},
    }


def _components() -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": _ERROR, "Balance": _BALANCE, "Receipt": _RECEIPT}
    for model in (OrderBody, StatusBody, ProductBody):
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def openapi_document() -> dict[str, Any]:
    """Every route the API serves, with its request and response shapes."""
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    receipt = {"$ref": _REF.format(model="Receipt")}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Repeat-sales bot: shop API", "version": "1"},
        "components": {
            "schemas": _components(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Liveness and database reachability (no token needed)",
                    "responses": {
                        "200": _json({"type": "object"}, "Up"),
                        "503": _json({"type": "object"}, "The database does not answer"),
                    },
                }
            },
            "/api/v1/products/{sku}": {
                "put": {
                    "summary": "Create or replace a product (name, link, consumption, related)",
                    "security": secured,
                    "parameters": [
                        {
                            "name": "sku",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "requestBody": _body(ProductBody),
                    "responses": {
                        "201": _json({"type": "object"}, "Created"),
                        "200": _json({"type": "object"}, "Replaced"),
                        **_errors(400, 401, 422),
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document (no token needed)",
                    "responses": {"200": _json({"type": "object"}, "The OpenAPI document")},
                }
            },
            "/api/v1/orders": {
                "post": {
                    "summary": "Report an order; members redeem and earn points",
                    "security": secured,
                    "requestBody": _body(OrderBody),
                    "responses": {
                        "201": _json(receipt, "Stored"),
                        "200": _json(receipt, "The same order again: the first answer"),
                        **_errors(400, 401, 409, 422),
                    },
                }
            },
            "/api/v1/orders/{order_id}/status": {
                "post": {
                    "summary": "Delivered, cancelled or refunded (points reversed)",
                    "security": secured,
                    "parameters": [
                        {
                            "name": "order_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "requestBody": _body(StatusBody),
                    "responses": {
                        "200": _json({"type": "object"}, "The change and the balance"),
                        **_errors(400, 401, 404, 409, 422),
                    },
                }
            },
            "/api/v1/customers/{ref}": {
                "get": {
                    "summary": "A member by card number, phone, @username, Telegram id or tg:<id>",
                    "security": secured,
                    "parameters": [
                        {
                            "name": "ref",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "total",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "example": "2580.00"},
                        },
                    ],
                    "responses": {
                        "200": _json({"type": "object"}, "Tier, cashback and points"),
                        **_errors(401, 404, 422),
                    },
                }
            },
        },
    }
