"""The Mini App API's part of the OpenAPI document: its own tag, the same error shape."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bot.webapp.models import (
    ANSWERS,
    REQUESTS,
    CashierPurchaseBody,
    LookupBody,
    PurchaseAnswer,
    ScanBody,
    TillMember,
    TimeZoneBody,
)

TAG = "Mini App"
_REF = "#/components/schemas/{model}"
_REASONS = {
    400: "The body is not the shape this document gives",
    401: "Missing, forged or expired initData (Authorization: tma <initData>)",
    403: "The user is not staff (admins, CASHIER_IDS, the staff chat's members), or the card "
    "is the cashier's own (`own_card`: another cashier records their purchases)",
    404: "Not a member, or no such member or reminder",
    409: "The QR code was used already or has expired",
    413: "The body is too large",
    422: "A value breaks a rule (the total, the points, the QR code)",
    429: "Too many failed sign-ins from this address",
}
_OBJECT = {"type": "object"}


def _ref(model: type[BaseModel] | str) -> dict[str, str]:
    name = model if isinstance(model, str) else model.__name__
    return {"$ref": _REF.format(model=name)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): _json(_ref("ErrorAnswer"), _REASONS[status]) for status in statuses}


def _operation(
    summary: str,
    answer: dict[str, Any],
    *errors: int,
    body: type[BaseModel] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    status: int = 200,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "tags": [TAG],
        "summary": summary,
        "security": [{"tma": []}],
        "responses": {str(status): answer, **_errors(401, 429, *errors)},
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if parameters:
        operation["parameters"] = parameters
    return operation


def webapp_openapi() -> dict[str, Any]:
    models = [(model, "validation") for model in REQUESTS]
    models += [(model, "serialization") for model in ANSWERS]
    _, schema = models_json_schema(models, ref_template=_REF)  # type: ignore[arg-type]
    before = {
        "name": "before",
        "in": "query",
        "required": False,
        "description": "The next_before of the previous page",
        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    }
    reminder = {
        "name": "reminder_id",
        "in": "path",
        "required": True,
        "description": "A waiting reminder of the member",
        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    }
    purchase = _operation(
        "Record an in-store purchase (and spend points)",
        _json(_ref(PurchaseAnswer), "Recorded"),
        400,
        403,
        404,
        409,
        413,
        422,
        body=CashierPurchaseBody,
        status=201,
    )
    purchase["responses"]["200"] = _json(
        _ref(PurchaseAnswer), "The same purchase again (a double tap): nothing written"
    )
    return {
        "tags": [
            {
                "name": TAG,
                "description": "The Telegram Mini App under /app/: the member's card and the "
                "till. Signed in with Telegram's initData, not the API token.",
            }
        ],
        "securitySchemes": {
            "tma": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "tma <initData>, as Telegram gives it to the Mini App",
            }
        },
        "schemas": dict(schema["$defs"]),
        "paths": {
            "/app/api/session": {
                "get": _operation(
                    "Language, texts and views of the signed-in user", _json(_OBJECT, "The session")
                )
            },
            "/app/api/me": {
                "get": _operation(
                    "The member's card, points and tier", _json(_OBJECT, "The card"), 404
                )
            },
            "/app/api/me/qr": {
                "get": _operation(
                    "A one-time QR code of the card (60 s)", _json(_OBJECT, "The code"), 404
                )
            },
            "/app/api/me/history": {
                "get": _operation(
                    "A page of the points history",
                    _json(_OBJECT, "The page"),
                    404,
                    422,
                    parameters=[before],
                )
            },
            "/app/api/me/reminders": {
                "get": _operation("Waiting reminders", _json(_OBJECT, "The reminders"), 404)
            },
            "/app/api/me/reminders/{reminder_id}/cancel": {
                "post": _operation(
                    "Cancel a waiting reminder",
                    _json(_OBJECT, "The reminders"),
                    404,
                    parameters=[reminder],
                )
            },
            "/app/api/me/time-zone": {
                "put": _operation(
                    "The device's time zone, for quiet hours",
                    _json(_OBJECT, "Whether it was recorded"),
                    400,
                    404,
                    413,
                    body=TimeZoneBody,
                )
            },
            "/app/api/till/scan": {
                "post": _operation(
                    "Scan a member's QR code (it works once)",
                    _json(_ref(TillMember), "The member"),
                    400,
                    403,
                    404,
                    409,
                    413,
                    422,
                    body=ScanBody,
                )
            },
            "/app/api/till/lookup": {
                "post": _operation(
                    "A member by card number or phone",
                    _json(_ref(TillMember), "The member"),
                    400,
                    403,
                    404,
                    413,
                    422,
                    body=LookupBody,
                )
            },
            "/app/api/till/purchases": {"post": purchase},
        },
    }
