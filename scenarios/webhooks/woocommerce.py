"""WooCommerce's order webhooks, mapped (REST API v3 order JSON, topic in X-WC-Webhook-Topic).

Status table:

| WooCommerce ``status``                  | the bot                                     |
|-----------------------------------------|---------------------------------------------|
| processing                              | paid                                        |
| completed                               | delivered                                   |
| cancelled                               | cancelled                                   |
| refunded                                | refunded                                    |
| pending, on-hold, failed, checkout-draft | not paid yet: nothing until it is          |

Every entry of ``refunds[]`` (``id``, ``total`` written negative) is a partial refund, once per
id; the points follow in proportion. WooCommerce disables a webhook after five failed
deliveries in a row, so every verified delivery gets 200, even one the bot cannot use.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from scenarios.webhooks.model import (
    MAX_NAME,
    MAX_SKU,
    Ignored,
    Inspection,
    Line,
    Mapped,
    MappingProblem,
    OrderState,
    Platform,
    Shop,
    StoreOrder,
    StoreRefund,
    Verdict,
    body_digest,
    first_phone,
    identifier,
    json_object,
    minor,
    order_ref,
    quantity,
    store_raw_order,
    text,
    utc_moment,
)

TOPICS = frozenset({"order.created", "order.updated"})
STATES = {
    "processing": OrderState.PAID,
    "completed": OrderState.DELIVERED,
    "cancelled": OrderState.CANCELLED,
    "refunded": OrderState.REFUNDED,
}


def is_ping(body: bytes) -> bool:
    """WooCommerce's check when a webhook is saved: a form-encoded ``webhook_id=N``."""
    if len(body) > 200 or not body.startswith(b"webhook_id="):
        return False
    try:
        fields = parse_qs(body.decode("ascii"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return False
    return set(fields) == {"webhook_id"}


def inspect(*, topic: str, delivery_id: str | None, body: bytes) -> Inspection:
    """Pings and topics the bot does not use are answered and dropped; a body that is no order
    is answered 200 too (a 4xx would count towards disabling the webhook) and dropped."""
    if is_ping(body):
        return Inspection(Verdict.PING)
    if topic not in TOPICS:
        return Inspection(Verdict.IGNORE, reason=f"topic {topic or 'missing'} is not used")
    payload = json_object(body)
    if payload is None or not identifier(payload.get("id")):
        return Inspection(Verdict.IGNORE, reason="the body is not a WooCommerce order")
    return Inspection(Verdict.KEEP, delivery_id=delivery_id or body_digest(body))


def order_state(order: dict[str, Any]) -> OrderState:
    return STATES.get(str(order.get("status") or "").lower(), OrderState.PENDING)


def map_delivery(*, topic: str, body: bytes, shop: Shop) -> Mapped:
    order = json_object(body)
    if order is None:
        raise MappingProblem("the body is not a JSON object")
    if topic not in TOPICS:
        return Ignored(f"topic {topic} is not used")
    currency = text(order.get("currency"), 3).upper() or shop.currency
    billing = _dict(order.get("billing"))
    shipping = _dict(order.get("shipping"))
    phone = first_phone((billing.get("phone"), shipping.get("phone")), region=shop.region)
    lines = []
    for index, item in enumerate(_list(order.get("line_items"))):
        item = _dict(item)
        where = f"line_items.{index}"
        count = quantity(item.get("quantity", 0), field=f"{where}.quantity")
        if count <= 0:
            continue
        line_total = minor(item.get("total"), currency=currency, field=f"{where}.total")
        product = identifier(item.get("variation_id")) or identifier(item.get("product_id"))
        sku = text(item.get("sku"), MAX_SKU) or (f"product-{product}" if product else "item")
        lines.append(
            Line(
                sku=sku,
                name=text(item.get("name"), MAX_NAME) or sku,
                quantity=count,
                # The line's total after its discounts, per unit (rounded down: the rest is
                # folded into the order's difference).
                price=line_total // count,
            )
        )
    refunds = []
    for index, refund in enumerate(_list(order.get("refunds"))):
        refund = _dict(refund)
        key = identifier(refund.get("id"))
        amount = minor(refund.get("total"), currency=currency, field=f"refunds.{index}.total")
        if key and amount > 0:
            refunds.append(StoreRefund(refund_key=key, amount=amount))
    ref = order_ref(order.get("number") or order.get("id"))
    return StoreOrder(
        platform=Platform.WOOCOMMERCE,
        external_id=identifier(order.get("id")),
        order_ref=ref,
        state=order_state(order),
        raw=store_raw_order(
            order_ref=ref,
            phone=phone,
            name=text(billing.get("first_name"), MAX_NAME) or None,
            lines=lines,
            total=minor(order.get("total"), currency=currency, field="total"),
            currency=currency,
            ordered_at=utc_moment(order.get("date_paid_gmt"), assume_utc=True)
            or utc_moment(order.get("date_created_gmt"), assume_utc=True),
        ),
        refunds=tuple(refunds),
    )


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
