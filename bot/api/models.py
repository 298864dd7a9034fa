"""Request bodies of the shop API: shape and JSON types only; the rules live in scenarios."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scenarios.orders import RawCustomer, RawItem, RawOrder

# Pydantic names the member of a union it tried in the error's location; a field path omits it.
_UNION_MEMBERS = frozenset({"int", "str"})
# Errors about a value's content rather than its JSON type: a rule broken (422), not a shape.
_SEMANTIC_TYPES = frozenset({"string_too_long", "string_too_short", "too_long"})


class _Body(BaseModel):
    # strict: a JSON number is not a string and "123" is not an integer.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CustomerBody(_Body):
    phone: str | None = Field(default=None, max_length=64)
    telegram_id: int | None = None
    name: str | None = Field(default=None, max_length=256)


class ItemBody(_Body):
    sku: str = Field(max_length=64)
    name: str = Field(max_length=256)
    quantity: int
    price: str = Field(max_length=32)
    category: str | None = Field(default=None, max_length=64)


class OrderBody(_Body):
    order_id: str = Field(max_length=200)
    customer: CustomerBody
    items: list[ItemBody] = Field(default_factory=list)
    total: str = Field(max_length=32)
    currency: str = Field(max_length=8)
    status: str = Field(default="paid", max_length=32)
    created_at: datetime | None = None
    bonus_redeemed: int | str = 0
    redeem_code: str | None = Field(
        default=None,
        max_length=32,
        description="The member's one-time code (/code in the bot); needed with bonus_redeemed",
    )

    def to_raw(self) -> RawOrder:
        return RawOrder(
            order_id=self.order_id,
            customer=RawCustomer(
                phone=self.customer.phone,
                telegram_id=self.customer.telegram_id,
                name=self.customer.name,
            ),
            items=tuple(
                RawItem(
                    sku=item.sku,
                    name=item.name,
                    quantity=item.quantity,
                    price=item.price,
                    category=item.category,
                )
                for item in self.items
            ),
            total=self.total,
            currency=self.currency,
            status=self.status,
            created_at=self.created_at,
            bonus_redeemed=self.bonus_redeemed,
            redeem_code=self.redeem_code,
        )


class ProductBody(_Body):
    name: str = Field(max_length=256)
    url: str | None = Field(default=None, max_length=2048)
    category: str | None = Field(default=None, max_length=64)
    consumption_days: int | None = None
    lead_days: int | None = None
    related: list[str] = Field(default_factory=list, max_length=50)


class StatusBody(_Body):
    status: str = Field(max_length=32)


class BodyProblem(Exception):
    """A body that is not the JSON the endpoint takes: (status, code, message, field)."""

    def __init__(self, status: int, code: str, message: str, field: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def body_problem(error: ValidationError) -> BodyProblem:
    """The first validation error, as the API reports it (the field is a dotted path)."""
    first: dict[str, Any] = dict(error.errors(include_url=False)[0])
    kind = str(first["type"])
    field = ".".join(str(part) for part in first["loc"] if part not in _UNION_MEMBERS) or None
    message = str(first["msg"])
    if kind == "json_invalid":
        return BodyProblem(400, "malformed_json", "the body is not valid JSON", None)
    if kind == "extra_forbidden":
        return BodyProblem(400, "unknown_field", f"unknown field {field}", field)
    if kind == "missing":
        return BodyProblem(400, "missing_field", f"{field} is required", field)
    if kind in _SEMANTIC_TYPES:
        return BodyProblem(422, "too_long", message, field)
    return BodyProblem(400, "wrong_type", message, field)
