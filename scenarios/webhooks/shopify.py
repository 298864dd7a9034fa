"""Shopify's order and refund webhooks, mapped (JSON bodies, topic in X-Shopify-Topic).

Status table (the order's fields, whatever the topic, so deliveries may arrive in any order):

| Shopify order                                    | the bot         |
|--------------------------------------------------|-----------------|
| ``cancelled_at`` set, or ``financial_status`` voided | cancelled   |
| ``financial_status`` refunded                    | refunded        |
| ``fulfillment_status`` fulfilled                 | delivered       |
| ``financial_status`` paid, partially_refunded    | paid            |
| pending, authorized, partially_paid, expired     | not paid yet: nothing until it is |

``refunds/create``: part of the money back; the points follow in proportion (all of it: the
order is refunded).
"""

from __future__ import annotations

from typing import Any

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
    RefundNotice,
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

ORDER_TOPICS = frozenset({"orders/create", "orders/paid", "orders/fulfilled", "orders/cancelled"})
REFUND_TOPIC = "refunds/create"
TOPICS = ORDER_TOPICS | {REFUND_TOPIC}
PAID = frozenset({"paid", "partially_refunded"})


def inspect(*, topic: str, webhook_id: str | None, body: bytes) -> Inspection:
    """What the route does with a verified delivery: topics the bot does not use are answered
    and dropped; a body that is not an order or refund is refused (400)."""
    if topic not in TOPICS:
        return Inspection(Verdict.IGNORE, reason=f"topic {topic or 'missing'} is not used")
    payload = json_object(body)
    if payload is None or not identifier(payload.get("id")):
        return Inspection(Verdict.MALFORMED, reason="the body is not a Shopify order or refund")
    if topic == REFUND_TOPIC and not identifier(payload.get("order_id")):
        return Inspection(Verdict.MALFORMED, reason="the refund names no order_id")
    return Inspection(Verdict.KEEP, delivery_id=webhook_id or body_digest(body))


def order_state(order: dict[str, Any]) -> OrderState:
    financial = str(order.get("financial_status") or "").lower()
    if order.get("cancelled_at") or financial == "voided":
        return OrderState.CANCELLED
    if financial == "refunded":
        return OrderState.REFUNDED
    if str(order.get("fulfillment_status") or "").lower() == "fulfilled":
        return OrderState.DELIVERED
    if financial in PAID:
        return OrderState.PAID
    return OrderState.PENDING


def map_delivery(*, topic: str, body: bytes, shop: Shop) -> Mapped:
    payload = json_object(body)
    if payload is None:
        raise MappingProblem("the body is not a JSON object")
    if topic == REFUND_TOPIC:
        return _refund(payload, shop)
    if topic in ORDER_TOPICS:
        return _order(payload, shop)
    return Ignored(f"topic {topic} is not used")


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _order(order: dict[str, Any], shop: Shop) -> StoreOrder:
    currency = text(order.get("currency"), 3).upper() or shop.currency
    customer = _dict(order.get("customer"))
    phone = first_phone(
        (
            customer.get("phone"),
            order.get("phone"),
            _dict(order.get("billing_address")).get("phone"),
            _dict(order.get("shipping_address")).get("phone"),
        ),
        region=shop.region,
    )
    name = (
        text(customer.get("first_name"), MAX_NAME)
        or text(_dict(order.get("billing_address")).get("first_name"), MAX_NAME)
        or None
    )
    lines = []
    for index, item in enumerate(_list(order.get("line_items"))):
        item = _dict(item)
        count = quantity(item.get("quantity", 0), field=f"line_items.{index}.quantity")
        if count <= 0:
            continue
        sku = text(item.get("sku"), MAX_SKU) or (
            f"variant-{identifier(item.get('variant_id'))}"
            if identifier(item.get("variant_id"))
            else text(item.get("title"), MAX_SKU)
        )
        lines.append(
            Line(
                sku=sku or "item",
                name=text(item.get("title") or item.get("name"), MAX_NAME) or sku or "item",
                quantity=count,
                price=minor(
                    item.get("price"), currency=currency, field=f"line_items.{index}.price"
                ),
            )
        )
    ref = order_ref(order.get("name") or order.get("order_number") or order.get("id"))
    return StoreOrder(
        platform=Platform.SHOPIFY,
        external_id=identifier(order.get("id")),
        order_ref=ref,
        state=order_state(order),
        raw=store_raw_order(
            order_ref=ref,
            phone=phone,
            name=name,
            lines=lines,
            total=minor(order.get("total_price"), currency=currency, field="total_price"),
            currency=currency,
            ordered_at=utc_moment(order.get("processed_at")) or utc_moment(order.get("created_at")),
        ),
    )


def _refund(refund: dict[str, Any], shop: Shop) -> RefundNotice | Ignored:
    """The money the refund returned: its refund transactions, or else its lines' worth."""
    currency = shop.currency
    transactions = [
        _dict(transaction)
        for transaction in _list(refund.get("transactions"))
        if str(_dict(transaction).get("kind") or "").lower() == "refund"
        and str(_dict(transaction).get("status") or "success").lower() == "success"
    ]
    if transactions:
        amount = sum(
            minor(item.get("amount"), currency=currency, field="transactions.amount")
            for item in transactions
        )
    else:
        amount = 0
        for index, part in enumerate(_list(refund.get("refund_line_items"))):
            part = _dict(part)
            where = f"refund_line_items.{index}"
            if part.get("subtotal") is not None:
                amount += minor(part.get("subtotal"), currency=currency, field=f"{where}.subtotal")
                continue
            count = quantity(part.get("quantity", 0), field=f"{where}.quantity")
            price = minor(
                _dict(part.get("line_item")).get("price"),
                currency=currency,
                field=f"{where}.line_item.price",
            )
            amount += count * price
    if amount <= 0:
        return Ignored("the refund returned no money (a restock or a note only)")
    return RefundNotice(
        platform=Platform.SHOPIFY,
        external_order_id=identifier(refund.get("order_id")),
        refund=StoreRefund(refund_key=identifier(refund.get("id")), amount=amount),
    )
