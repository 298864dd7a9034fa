"""What a store platform's delivery means to the bot, whatever the platform: the shared shapes."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from scenarios.customers import normalize_phone
from scenarios.orders import RawCustomer, RawItem, RawOrder
from scenarios.problems import InputProblem
from scenarios.tiers import minor_units_per_major

MAX_SKU = 64  # order_items.sku
MAX_NAME = 256
MAX_REF = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Platform(StrEnum):
    SHOPIFY = "shopify"
    WOOCOMMERCE = "woocommerce"
    TILDA = "tilda"


class OrderState(StrEnum):
    """Where a platform says its order stands, in the bot's words (see each platform's table)."""

    PENDING = "pending"  # not paid yet: nothing to do until it is
    PAID = "paid"
    DELIVERED = "delivered"  # fulfilled / completed: the rating request and reminders start
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


class Verdict(StrEnum):
    """What the HTTP route does with a verified delivery before answering."""

    KEEP = "keep"  # write it to the inbox, answer 200
    PING = "ping"  # the platform checking the URL: 200, nothing written
    IGNORE = "ignore"  # a topic the bot does not use: 200, nothing written
    MALFORMED = "malformed"  # not the platform's shape: the platform's error answer


@dataclass(frozen=True, slots=True)
class Inspection:
    verdict: Verdict
    delivery_id: str | None = None  # for KEEP: the platform's id, or one derived from the body
    reason: str | None = None  # for MALFORMED and IGNORE, for the log


@dataclass(frozen=True, slots=True)
class Shop:
    """What mapping needs to know about the shop."""

    currency: str
    region: str | None  # the country a phone without a country code is read in


@dataclass(frozen=True, slots=True)
class StoreRefund:
    refund_key: str  # the platform's refund id: the same refund twice is one refund
    amount: int  # minor units, above 0


@dataclass(frozen=True, slots=True)
class StoreOrder:
    """An order as a platform reports it, mapped: ``raw`` goes to the order desk as it is."""

    platform: Platform
    external_id: str  # the platform's own id of the order (refunds name it)
    order_ref: str  # the number the customer knows ("#1001")
    state: OrderState
    raw: RawOrder | None  # None: no usable phone, nobody to credit (kept as skipped)
    refunds: tuple[StoreRefund, ...] = ()


@dataclass(frozen=True, slots=True)
class RefundNotice:
    """A refund reported on its own (Shopify ``refunds/create``)."""

    platform: Platform
    external_order_id: str
    refund: StoreRefund


@dataclass(frozen=True, slots=True)
class Ignored:
    """A kept delivery with nothing for the bot in it, and why."""

    reason: str


Mapped = StoreOrder | RefundNotice | Ignored


class MappingProblem(Exception):
    """A kept delivery that cannot be mapped: it fails with this reason (an admin can retry)."""


# ---- helpers the platforms share ---------------------------------------------------------


def body_digest(body: bytes) -> str:
    """A delivery id for platforms that send none: the same body again is the same delivery."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one."""
    try:  # UTF-8 only (json.loads would also guess UTF-16 and UTF-32 from bytes)
        value = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def text(value: object, limit: int) -> str:
    """A platform's string for storage: no control characters (PostgreSQL stores no NUL),
    trimmed, at most ``limit`` characters."""
    if value is None:
        return ""
    return _CONTROL.sub(" ", str(value)).strip()[:limit]


def identifier(value: object) -> str:
    """A platform's id (a number or a string) as a string; empty when there is none."""
    if value is None or isinstance(value, bool | dict | list):
        return ""
    return text(value, MAX_REF)


def order_ref(number: object) -> str:
    """The order number as customers know it: "#1001" (spaces dropped, at most 64 characters)."""
    shown = re.sub(r"\s+", "", text(number, MAX_REF))
    if not shown:
        raise MappingProblem("the order has no number")
    return (shown if shown.startswith("#") else "#" + shown)[:MAX_REF]


def minor(value: object, *, currency: str, field: str) -> int:
    """A platform's amount ("199.00", 199, 199.5) in minor units; a negative one counts as its
    size (WooCommerce writes refunds as "-10.00")."""
    if value is None or isinstance(value, bool | dict | list):
        raise MappingProblem(f"{field} is not an amount")
    try:
        amount = abs(Decimal(str(value).strip()))
    except InvalidOperation:
        raise MappingProblem(f"{field} is not an amount: {str(value)[:40]!r}") from None
    if not amount.is_finite():
        raise MappingProblem(f"{field} is not an amount")
    scaled = amount * minor_units_per_major(currency)
    if scaled != scaled.to_integral_value():
        raise MappingProblem(f"{field} has more fraction digits than {currency}: {amount}")
    return int(scaled)


def major(amount: int, currency: str) -> str:
    """Minor units as the decimal string the order desk reads ("1290.00")."""
    per_major = minor_units_per_major(currency)
    digits = len(str(per_major)) - 1
    return f"{Decimal(amount) / per_major:.{digits}f}"


def first_phone(candidates: Iterable[object], *, region: str | None) -> str | None:
    """The first candidate that is a valid phone number, as E.164; None when none is."""
    for candidate in candidates:
        spelled = text(candidate, 40)
        if not spelled:
            continue
        try:
            return normalize_phone(spelled, region=region)
        except InputProblem:
            continue
    return None


def utc_moment(value: object, *, assume_utc: bool = False) -> datetime | None:
    """An ISO 8601 moment as aware UTC; ``assume_utc`` for fields without an offset that are
    GMT by name (WooCommerce's ``*_gmt``). None when missing or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        if not assume_utc:
            return None
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    name: str
    quantity: int
    price: int  # minor units per unit


def store_raw_order(
    *,
    order_ref: str,
    phone: str | None,
    name: str | None,
    lines: Sequence[Line],
    total: int,
    currency: str,
    ordered_at: datetime | None,
) -> RawOrder | None:
    """The order for the desk, or None without a phone. Platforms fold taxes, shipping and
    discounts into their total in their own ways; the difference between the lines and the
    total is passed as the desk's shipping (more) or discount (less), so the desk's rule
    (total = lines − discount + shipping) holds and cashback is earned on what was paid."""
    if phone is None:
        return None
    if not lines:
        raise MappingProblem("the order has no items")
    lines_total = sum(line.quantity * line.price for line in lines)
    return RawOrder(
        order_id=order_ref,
        customer=RawCustomer(phone=phone, name=name or None),
        items=tuple(
            RawItem(
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                price=major(line.price, currency),
            )
            for line in lines
        ),
        total=major(total, currency),
        currency=currency,
        status="paid",
        created_at=ordered_at,
        discount=major(max(0, lines_total - total), currency),
        shipping=major(max(0, total - lines_total), currency),
    )


def quantity(value: object, *, field: str) -> int:
    if isinstance(value, bool):
        raise MappingProblem(f"{field} is not a quantity")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise MappingProblem(f"{field} is not a quantity") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise MappingProblem(f"{field} is not a whole quantity")
    return int(number)
