"""Store platforms' deliveries for tests: documented payload shapes, signed as each signs."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

PAYLOADS = Path(__file__).resolve().parents[1] / "webhook_payloads"
SHOPIFY_SECRET = "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"
WOO_SECRET = "wc-secret-8f7e6d5c4b3a2918"
TILDA_KEY = "tk_3q9VbXw2LmN8pR4sT6uY1zA5cE7gJ0hK"


def _load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def shopify_order(**changes: Any) -> dict[str, Any]:
    """Shopify's order webhook body (orders/create, /paid, /fulfilled, /cancelled)."""
    order: dict[str, Any] = copy.deepcopy(_load("shopify_order.json"))
    order.update(changes)
    return order


def shopify_refund(**changes: Any) -> dict[str, Any]:
    refund: dict[str, Any] = copy.deepcopy(_load("shopify_refund.json"))
    refund.update(changes)
    return refund


def woocommerce_order(**changes: Any) -> dict[str, Any]:
    """A WooCommerce REST API v3 order, as order.created / order.updated deliver it."""
    order: dict[str, Any] = copy.deepcopy(_load("woocommerce_order.json"))
    order.update(changes)
    return order


def tilda_fields(**changes: str) -> dict[str, str]:
    """A Tilda cart order's form fields (``payment`` is a JSON string)."""
    text = (PAYLOADS / "tilda_order.txt").read_text(encoding="utf-8").strip()
    fields = {name: values[-1] for name, values in parse_qs(text).items()}
    fields.update(changes)
    return fields


def tilda_payment(fields: dict[str, str], **changes: Any) -> dict[str, str]:
    payment = json.loads(fields["payment"])
    payment.update(changes)
    return {**fields, "payment": json.dumps(payment, ensure_ascii=False)}


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def form_of(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()


def hmac_base64(body: bytes, secret: str) -> str:
    """What Shopify sends as X-Shopify-Hmac-Sha256 and WooCommerce as X-WC-Webhook-Signature."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def shopify_headers(
    body: bytes, *, topic: str, webhook_id: str, secret: str = SHOPIFY_SECRET
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": hmac_base64(body, secret),
        "X-Shopify-Shop-Domain": "lapki.myshopify.com",
        "X-Shopify-API-Version": "2025-10",
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Triggered-At": "2026-11-30T09:00:00.000000000Z",
    }


def woocommerce_headers(
    body: bytes, *, topic: str, delivery_id: str, secret: str = WOO_SECRET
) -> dict[str, str]:
    resource, event = topic.split(".")
    return {
        "Content-Type": "application/json",
        "X-WC-Webhook-Source": "https://lapki.example/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": hmac_base64(body, secret),
        "X-WC-Webhook-ID": "3",
        "X-WC-Webhook-Delivery-ID": delivery_id,
    }


FORM = {"Content-Type": "application/x-www-form-urlencoded"}
