"""The shop API's requests and answers: the shapes that validate them and the OpenAPI document."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
)

from scenarios.orders import (
    MAX_ITEMS,
    MAX_MONEY,
    MAX_ORDER_ID,
    MAX_QUANTITY,
    MAX_REF,
    MAX_TELEGRAM_ID,
    RawCustomer,
    RawItem,
    RawOrder,
)

# One pattern for the document and for the check: JSON Schema and pydantic read it alike.
# An id: printable ASCII without spaces (what orders.order_ref and products.sku hold).
ID_PATTERN = r"^[\x21-\x7e]+$"
# Text a person typed: anything but control characters (a NUL cannot be stored in PostgreSQL).
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
# An amount in major units with ASCII digits ("1290.00"); how many fraction digits the currency
# has is a rule of the shop's currency (422), not of the shape.
AMOUNT_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
POINTS_PATTERN = r"^[0-9]+$"
MAX_SKU = 64
# The statuses as scenarios.orders names them (a test keeps the two in step).
NewStatus = Literal["paid", "delivered"]
StatusReport = Literal["delivered", "cancelled", "refunded"]

# Pydantic names the member of a union it tried in the error's location; a field path omits it.
_UNION_MEMBERS = frozenset({"int", "str", "constrained-int", "constrained-str"})
# Errors about a value's content rather than its JSON type: a rule broken (422), not a shape.
_TOO_LONG = frozenset({"string_too_long", "too_long"})
_OUT_OF_BOUNDS = frozenset(
    {
        "string_too_short",
        "string_pattern_mismatch",
        "too_short",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "literal_error",
    }
)
# The code a broken bound is reported with, by the field's own name (the last part of its path).
_FIELD_CODES = {
    "order_id": "invalid_order_id",
    "sku": "invalid_sku",
    "telegram_id": "invalid_telegram_id",
    "total": "invalid_amount",
    "price": "invalid_amount",
    "discount": "invalid_amount",
    "shipping": "invalid_amount",
    "quantity": "invalid_quantity",
    "status": "unknown_status",
    "bonus_redeemed": "invalid_points",
    "items": "no_items",
    "consumption_days": "invalid_days",
    "lead_days": "invalid_days",
    "related": "invalid_related",
    "time_zone": "invalid_time_zone",
}


def _whole(value: object) -> object:
    # JSON Schema's "integer" includes 3.0: JSON has one kind of number, however it is spelt.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_WHOLE = BeforeValidator(_whole)
TelegramId = Annotated[int, Field(ge=1, le=MAX_TELEGRAM_ID), _WHOLE]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY), _WHOLE]
Points = Annotated[int, Field(ge=0, le=MAX_MONEY), _WHOLE]
ConsumptionDays = Annotated[int, Field(ge=1, le=3650), _WHOLE]
LeadDays = Annotated[int, Field(ge=0, le=365), _WHOLE]
Text = Annotated[str, Field(pattern=TEXT_PATTERN)]
Amount = Annotated[str, Field(max_length=32, pattern=AMOUNT_PATTERN, examples=["1290.00"])]
Sku = Annotated[str, Field(min_length=1, max_length=MAX_SKU, pattern=ID_PATTERN)]


class _Body(BaseModel):
    # strict: a JSON number is not a string and "123" is not an integer.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CustomerBody(_Body):
    """Who ordered: a phone, a Telegram id or both (at least one)."""

    phone: Text | None = Field(
        default=None,
        max_length=64,
        description="In any common spelling; read in the shop's currency's country without +",
        examples=["+7 999 123-45-67"],
    )
    telegram_id: TelegramId | None = Field(
        default=None, description="The customer's Telegram user id"
    )
    name: Text | None = Field(default=None, max_length=256, description="As the shop knows it")
    time_zone: Text | None = Field(
        default=None,
        max_length=64,
        description="Where the customer lives, an IANA zone name; quiet hours and daily caps "
        "follow it. Set on the customer with a new order; without it: unchanged",
        examples=["Europe/Kyiv"],
    )


class ItemBody(_Body):
    """One line of the order."""

    sku: Sku = Field(description="The product's SKU, as in PUT /api/v1/products/{sku}")
    name: Text = Field(max_length=256, description="The product's name on the receipt")
    quantity: Quantity = Field(description="Units bought")
    price: Amount = Field(description="Price of one unit in major units, e.g. 1290.00")
    category: Text | None = Field(default=None, max_length=64, description="For segments")


class OrderBody(_Body):
    """An order as the shop reports it. The total must equal Σ quantity × price − discount +
    shipping (give or take 0.01 per line), be above 0 and at most ``orders.max_total``."""

    order_id: str = Field(
        min_length=1,
        max_length=MAX_ORDER_ID,
        pattern=ID_PATTERN,
        description="The shop's order number; the same order_id again is a replay",
        examples=["A-1001"],
    )
    customer: CustomerBody
    items: list[ItemBody] = Field(min_length=1, max_length=MAX_ITEMS, description="The lines")
    total: Amount = Field(description="What the order costs before points, in major units")
    currency: str = Field(
        max_length=8, description="The shop's currency (ISO 4217), e.g. RUB", examples=["RUB"]
    )
    status: NewStatus = Field(default="paid", description="paid or delivered")
    created_at: datetime | None = Field(
        default=None,
        description="When it was ordered, with an offset; not in the future (beyond "
        "orders.clock_skew_minutes) and not before 2000. Without it: now",
    )
    bonus_redeemed: Points | Annotated[str, Field(max_length=16, pattern=POINTS_PATTERN)] = Field(
        default=0, description="Points the member spent on this order"
    )
    discount: Amount = Field(default="0", description="Subtracted from the items' sum")
    shipping: Amount = Field(default="0", description="Added to the items' sum")
    redeem_code: Text | None = Field(
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
                time_zone=self.customer.time_zone,
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
            discount=self.discount,
            shipping=self.shipping,
        )


class ProductBody(_Body):
    """A product of the catalog, for reminders and reorder links."""

    name: Text = Field(min_length=1, max_length=256, description="Shown in reminders")
    url: Text | None = Field(
        default=None, max_length=2048, description="The reorder link (http or https)"
    )
    category: Text | None = Field(default=None, max_length=64, description="For segments")
    consumption_days: ConsumptionDays | None = Field(
        default=None, description="How many days one unit lasts"
    )
    lead_days: LeadDays | None = Field(
        default=None, description="Remind this many days before it runs out"
    )
    related: list[Sku] = Field(
        default_factory=list, max_length=50, description="Other products' skus"
    )


class StatusBody(_Body):
    status: StatusReport = Field(
        description="cancelled and refunded reverse the points the order earned and spent"
    )


# ---- answers -----------------------------------------------------------------------------


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Balance(_Answer):
    available: int = Field(description="Points that can be spent now")
    pending: int = Field(description="Points earned but still on hold")


class Receipt(_Answer):
    """What an order earned; the same again for a replay."""

    order_id: str = Field(description="As reported")
    customer_id: int | None = Field(description="The member, or null when not (yet) a member")
    points_accrued: int = Field(description="Points this order earned")
    pending_until: datetime | None = Field(description="When they become available")
    balance: Balance

    @field_serializer("pending_until")
    def _iso(self, value: datetime | None) -> str | None:
        # As the API always wrote it: +00:00, not Z.
        return value.isoformat() if value is not None else None


class StatusAnswer(_Answer):
    """What a status report changed."""

    order_id: str = Field(description="As reported")
    status: StatusReport = Field(description="The status now")
    previous_status: NewStatus | StatusReport = Field(description="The status before this report")
    changed: bool = Field(description="False when the order already had this status")
    customer_id: int | None = Field(description="The member, or null when not a member's order")
    points_reversed: int = Field(
        description="Points the order had earned, taken back (from other points where the "
        "order's own were already spent)"
    )
    points_restored: int = Field(description="Points the order had spent, given back")
    debt: int = Field(description="Points taken back that nothing covered: the member now owes")
    balance: Balance | None = Field(description="The member's points now; null: not a member")


class CustomerAnswer(_Answer):
    """A member's tier and points."""

    customer_id: int = Field(description="The member's id")
    tier: str = Field(description="The tier's key, e.g. bronze")
    cashback_percent: str = Field(description="Of an order's paid total, e.g. 5 or 7.5")
    balance: Balance
    redeemable: int | None = Field(
        description="Points that may pay for an order of ?total=; null without it"
    )


class ProductAnswer(_Answer):
    """The product as stored."""

    sku: str = Field(description="As in the path")
    name: str = Field(description="Shown in reminders")
    url: str | None = Field(description="The reorder link")
    category: str | None = Field(description="For segments")
    consumption_days: int | None = Field(description="How many days one unit lasts")
    lead_days: int | None = Field(description="Remind this many days before it runs out")
    related: list[str] = Field(description="Other products' skus")


class Health(_Answer):
    status: Literal["ok"] = Field(description="The database answered")


class ErrorDetail(_Answer):
    code: str = Field(description="Stable, for programs", examples=["invalid_phone"])
    message: str = Field(description="For people")
    field: str | None = Field(
        description="The dotted path of the field at fault", examples=["customer.phone"]
    )


class ErrorAnswer(_Answer):
    error: ErrorDetail


ANSWERS: tuple[type[BaseModel], ...] = (
    Receipt,
    StatusAnswer,
    CustomerAnswer,
    ProductAnswer,
    Health,
    ErrorAnswer,
)
REQUESTS: tuple[type[BaseModel], ...] = (OrderBody, StatusBody, ProductBody)


class BodyProblem(Exception):
    """A request that is not what the endpoint takes: (status, code, message, field)."""

    def __init__(self, status: int, code: str, message: str, field: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def _field(error: dict[str, Any]) -> str | None:
    parts = [part for part in error["loc"] if part not in _UNION_MEMBERS]
    if parts and isinstance(parts[-1], str) and parts[-1].startswith("function-"):
        parts.pop()
    return ".".join(str(part) for part in parts) or None


def body_problem(error: ValidationError) -> BodyProblem:
    """The first field at fault, as the API reports it (the field is a dotted path).

    400 for what the document's shapes forbid (JSON types, unknown or missing fields); 422 for
    a value of the right type outside the document's bounds (length, pattern, range, enum)."""
    errors = [dict(item) for item in error.errors(include_url=False)]
    first = errors[0]
    field = _field(first)
    # Of a union's failures (bonus_redeemed: 10 or "10"), the one about the value says more.
    for other in errors:
        if _field(other) == field and other["type"] in _TOO_LONG | _OUT_OF_BOUNDS:
            first = other
            break
    kind = str(first["type"])
    message = str(first["msg"])
    if kind == "json_invalid":
        return BodyProblem(400, "malformed_json", "the body is not valid JSON", None)
    if kind == "extra_forbidden":
        return BodyProblem(400, "unknown_field", f"unknown field {field}", field)
    if kind == "missing":
        return BodyProblem(400, "missing_field", f"{field} is required", field)
    if kind in _TOO_LONG:
        code = "too_many_items" if field == "items" else "too_long"
        return BodyProblem(422, code, f"{field}: {message}", field)
    # An enum of strings given a number is a JSON type wrong, not an unknown value.
    if kind in _OUT_OF_BOUNDS and not (
        kind == "literal_error" and not isinstance(first.get("input"), str)
    ):
        names = [part for part in (field or "").split(".") if not part.isdigit()]
        code = _FIELD_CODES.get(names[-1] if names else "", "invalid_value")
        if kind == "string_pattern_mismatch" and code == "invalid_value":
            code = "invalid_characters"
        return BodyProblem(422, code, f"{field}: {message}", field)
    return BodyProblem(400, "wrong_type", f"{field}: {message}" if field else message, field)


def path_problem(name: str, value: str) -> BodyProblem | None:
    """Why a path parameter cannot name anything, as the document's pattern says, or None."""
    if name == "ref":
        if len(value) > MAX_REF or not re.fullmatch(TEXT_PATTERN, value) or not value.strip():
            return BodyProblem(
                422,
                "invalid_customer_ref",
                f"a customer reference is 1..{MAX_REF} characters without control characters",
                "ref",
            )
        return None
    limit = MAX_ORDER_ID if name == "order_id" else MAX_SKU
    if len(value) > limit or not re.fullmatch(ID_PATTERN, value):
        return BodyProblem(
            422,
            _FIELD_CODES[name],
            f"{name} is 1..{limit} printable characters without spaces",
            name,
        )
    return None
