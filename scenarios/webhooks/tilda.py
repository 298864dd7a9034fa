"""Tilda's form webhooks, mapped (application/x-www-form-urlencoded, no signature: the secret
key is in the URL).

Fields are named after the form's inputs (``Phone``, ``Name``, ``Email``, any case); a cart
order adds ``payment``, a JSON string with ``orderid``, ``amount`` and ``products`` (``name``,
``sku``, ``quantity``, ``price``, ``amount``). Tilda reports only that an order was placed, so
every order counts as **paid**: the points stay pending for the return window
(``bonus.hold_days``) all the same. A form without ``payment`` is no order and is dropped.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from scenarios.webhooks.model import (
    MAX_NAME,
    MAX_SKU,
    Inspection,
    Line,
    Mapped,
    MappingProblem,
    OrderState,
    Platform,
    Shop,
    StoreOrder,
    Verdict,
    body_digest,
    first_phone,
    identifier,
    minor,
    order_ref,
    quantity,
    store_raw_order,
    text,
)

TOPIC = "order"


def form(body: bytes) -> dict[str, str] | None:
    """The form's fields (the last value of each), or None when the body is not a form."""
    try:
        decoded = body.decode("utf-8")
        fields = parse_qs(decoded, keep_blank_values=True, strict_parsing=bool(decoded))
    except (UnicodeDecodeError, ValueError):
        return None
    return {name: values[-1] for name, values in fields.items()}


def _payment(fields: dict[str, str]) -> dict[str, Any] | None:
    raw = next((value for name, value in fields.items() if name.lower() == "payment"), None)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise MappingProblem("payment is not JSON") from None
    if not isinstance(value, dict):
        raise MappingProblem("payment is not a JSON object")
    return value


def inspect(*, body: bytes) -> Inspection:
    """``test=test`` is Tilda's check when the webhook is connected; a form without a cart
    order is dropped; what is not a form, or whose ``payment`` is broken, is refused (400)."""
    fields = form(body)
    if fields is None:
        return Inspection(Verdict.MALFORMED, reason="the body is not a form")
    if fields.get("test") == "test":
        return Inspection(Verdict.PING)
    try:
        payment = _payment(fields)
    except MappingProblem as problem:
        return Inspection(Verdict.MALFORMED, reason=str(problem))
    if payment is None:
        return Inspection(Verdict.IGNORE, reason="a form without an order")
    if not identifier(payment.get("orderid")):
        return Inspection(Verdict.MALFORMED, reason="payment has no orderid")
    # Tilda's own id of the submission (a retry repeats it); else the body itself.
    tranid = identifier(_field(fields, "tranid"))
    return Inspection(Verdict.KEEP, delivery_id=f"tranid:{tranid}" if tranid else body_digest(body))


def _field(fields: dict[str, str], name: str) -> str | None:
    return next((value for key, value in fields.items() if key.lower() == name), None)


def map_delivery(*, body: bytes, shop: Shop) -> Mapped:
    fields = form(body)
    if fields is None:
        raise MappingProblem("the body is not a form")
    payment = _payment(fields)
    if payment is None:
        raise MappingProblem("a form without an order")
    currency = shop.currency
    lines = []
    for index, product in enumerate(payment.get("products") or []):
        if not isinstance(product, dict):
            raise MappingProblem(f"products.{index} is not an object")
        where = f"products.{index}"
        count = quantity(product.get("quantity", 1), field=f"{where}.quantity")
        if count <= 0:
            continue
        name = text(product.get("name"), MAX_NAME)
        price = (
            minor(product.get("price"), currency=currency, field=f"{where}.price")
            if product.get("price") not in (None, "")
            else minor(product.get("amount"), currency=currency, field=f"{where}.amount") // count
        )
        sku = text(product.get("sku"), MAX_SKU) or text(name, MAX_SKU) or "item"
        lines.append(Line(sku=sku, name=name or sku, quantity=count, price=price))
    ref = order_ref(payment.get("orderid"))
    return StoreOrder(
        platform=Platform.TILDA,
        external_id=identifier(payment.get("orderid")),
        order_ref=ref,
        state=OrderState.PAID,
        raw=store_raw_order(
            order_ref=ref,
            phone=first_phone((_field(fields, "phone"),), region=shop.region),
            name=text(_field(fields, "name"), MAX_NAME) or None,
            lines=lines,
            total=minor(payment.get("amount"), currency=currency, field="payment.amount"),
            currency=currency,
            ordered_at=None,
        ),
    )
