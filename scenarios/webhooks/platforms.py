"""Which platform module reads a kept delivery, and the shop's default phone region."""

from __future__ import annotations

from scenarios.customers import region_for
from scenarios.rules import Rules
from scenarios.webhooks import shopify, tilda, woocommerce
from scenarios.webhooks.model import Mapped, MappingProblem, Platform, Shop


def shop_of(rules: Rules) -> Shop:
    """Phones without a country code are read in ``shop.country``, else in the country of the
    shop's currency (RUB: Russia, UAH: Ukraine)."""
    currency = rules.shop.currency
    return Shop(currency=currency, region=rules.shop.country or region_for(currency))


def read_delivery(*, platform: str, topic: str, body: bytes, shop: Shop) -> Mapped:
    """A kept delivery in the bot's terms; MappingProblem says why it cannot be."""
    if platform == Platform.SHOPIFY:
        return shopify.map_delivery(topic=topic, body=body, shop=shop)
    if platform == Platform.WOOCOMMERCE:
        return woocommerce.map_delivery(topic=topic, body=body, shop=shop)
    if platform == Platform.TILDA:
        return tilda.map_delivery(body=body, shop=shop)
    raise MappingProblem(f"unknown platform {platform!r}")
