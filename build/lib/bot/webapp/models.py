"""The Mini App API's request and answer shapes (they also make its part of the OpenAPI doc)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bot.api.models import AMOUNT_PATTERN, TEXT_PATTERN

_STRICT = ConfigDict(extra="forbid")


class ScanBody(BaseModel):
    model_config = _STRICT
    qr: str = Field(min_length=1, max_length=256, description="The text of the scanned QR code")
    total: str | None = Field(
        default=None,
        max_length=32,
        pattern=AMOUNT_PATTERN,
        description="The purchase total, for the cap on points (major units, e.g. 1290.00)",
    )


class LookupBody(BaseModel):
    model_config = _STRICT
    ref: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=TEXT_PATTERN,
        description="A card number or phone typed at the till",
    )
    customer_id: int | None = Field(
        default=None, ge=1, le=2**53, description="The member again (after a scan or look-up)"
    )
    visit: str | None = Field(
        default=None, max_length=32, description="The scan's visit id, which lets points be spent"
    )
    total: str | None = Field(
        default=None, max_length=32, pattern=AMOUNT_PATTERN, description="The purchase total"
    )


class TillItem(BaseModel):
    model_config = _STRICT
    sku: str = Field(
        default="in-store",
        min_length=1,
        max_length=64,
        pattern=r"^[\x21-\x7e]+$",
        description="The product's SKU (plans its replenishment reminders)",
    )
    name: str = Field(min_length=1, max_length=200, pattern=TEXT_PATTERN, description="Name")
    quantity: int = Field(default=1, ge=1, le=100_000, description="How many")
    price: str = Field(max_length=32, pattern=AMOUNT_PATTERN, description="Price of one")


class CashierPurchaseBody(BaseModel):
    model_config = _STRICT
    id: str = Field(
        min_length=8,
        max_length=40,
        pattern=r"^[A-Za-z0-9-]+$",
        description="Made once per purchase by the page: a repeated request records it once",
    )
    customer_id: int = Field(ge=1, le=2**53, description="The member")
    total: str = Field(max_length=32, pattern=AMOUNT_PATTERN, description="What was paid in all")
    redeem: int = Field(default=0, ge=0, le=10**13, description="Points paying for part of it")
    visit: str | None = Field(
        default=None, max_length=32, description="The scan's visit id (needed to spend points)"
    )
    note: str | None = Field(
        default=None, max_length=120, pattern=TEXT_PATTERN, description="What was bought"
    )
    items: list[TillItem] = Field(
        default_factory=list,
        max_length=100,
        description="Optional lines; they must add up to the total (none: one in-store line)",
    )


class TimeZoneBody(BaseModel):
    model_config = _STRICT
    zone: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$", description="IANA zone"
    )


class TillMember(BaseModel):
    customer_id: int = Field(description="The member")
    name: str | None = Field(description="Their first name in Telegram")
    card: str = Field(description="Card number")
    card_display: str = Field(description="Card number as printed")
    tier: str = Field(description="Tier key")
    tier_text: str = Field(description="Tier name in the cashier's language")
    available: int = Field(description="Points they may spend now")
    available_text: str = Field(description="The same, in words")
    pending: int = Field(description="Points still in their return window")
    redeemable: int | None = Field(description="Points that may pay for the asked total")
    redeemable_text: str | None = Field(description="The same, in words")
    visit: str | None = Field(description="Visit id of the scan (lets the purchase spend points)")
    can_redeem: bool = Field(description="Whether points may be spent on this visit")


class PurchaseAnswer(BaseModel):
    order_id: str = Field(description="The order the purchase was recorded as")
    recorded: bool = Field(description="False: the same purchase again, nothing written")
    points_accrued: int = Field(description="Points the purchase earned")
    points_redeemed: int = Field(description="Points that paid for part of it")
    available: int = Field(description="The member's points available now")
    pending: int = Field(description="The member's points in their return window")
    earned_text: str = Field(description="Earned points in words")
    spent_text: str = Field(description="Spent points in words")
    available_text: str = Field(description="Available points in words")
    total_text: str = Field(description="The total as money")


REQUESTS: tuple[type[BaseModel], ...] = (ScanBody, LookupBody, CashierPurchaseBody, TimeZoneBody)
ANSWERS: tuple[type[BaseModel], ...] = (TillMember, PurchaseAnswer)
