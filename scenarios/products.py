"""The catalog as the shop sends it: checked before it is stored."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Protocol
from urllib.parse import urlparse

from scenarios.clock import Clock
from scenarios.problems import invalid
from storage.products import ProductRecord

_SKU = re.compile(r"^[\x21-\x7e]{1,64}$")  # printable ASCII, no spaces


class ProductStore(Protocol):
    async def save(self, product: ProductRecord, *, now: datetime) -> bool: ...


def checked_product(
    *,
    sku: str,
    name: str,
    url: str | None,
    category: str | None,
    consumption_days: int | None,
    lead_days: int | None,
    related: list[str],
) -> ProductRecord:
    """The product, or a refusal naming the field that breaks a rule."""
    if not _SKU.match(sku):
        raise invalid("invalid_sku", "a sku is 1–64 printable characters without spaces", "sku")
    if not name.strip():
        raise invalid("empty_name", "the product needs a name", "name")
    if url is not None:
        parsed = urlparse(url)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise invalid("invalid_url", "the link must start with http:// or https://", "url")
    if consumption_days is not None and not 1 <= consumption_days <= 3650:
        raise invalid("invalid_days", "consumption_days is 1–3650", "consumption_days")
    if lead_days is not None and not 0 <= lead_days <= 365:
        raise invalid("invalid_days", "lead_days is 0–365", "lead_days")
    for position, other in enumerate(related):
        if not _SKU.match(other) or other == sku:
            raise invalid(
                "invalid_related", "related skus are other products' skus", f"related.{position}"
            )
    return ProductRecord(
        sku=sku,
        name=name.strip(),
        url=url,
        category=category,
        consumption_days=consumption_days,
        lead_days=lead_days,
        related=tuple(dict.fromkeys(related)),
    )


async def save_product(store: ProductStore, product: ProductRecord, *, clock: Clock) -> bool:
    """Store the product as sent (a full replacement); True when it is new."""
    return await store.save(product, now=clock.now())
