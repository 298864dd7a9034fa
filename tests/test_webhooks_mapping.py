"""Store platforms' deliveries mapped without a database: status tables, phones, amounts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scenarios.rules import Rules
from scenarios.signup import own_phone
from scenarios.webhooks import shopify, tilda, woocommerce
from scenarios.webhooks.model import (
    Ignored,
    MappingProblem,
    OrderState,
    Platform,
    RefundNotice,
    Shop,
    StoreOrder,
    StoreRefund,
    Verdict,
)
from scenarios.webhooks.platforms import shop_of
from tests.support.webhooks import (
    body_of,
    form_of,
    shopify_order,
    shopify_refund,
    tilda_fields,
    tilda_payment,
    woocommerce_order,
)

SHOP = Shop(currency="RUB", region="RU")


def shopify_mapped(**changes: object) -> StoreOrder:
    mapped = shopify.map_delivery(
        topic="orders/paid", body=body_of(shopify_order(**changes)), shop=SHOP
    )
    assert isinstance(mapped, StoreOrder)
    return mapped


@pytest.mark.parametrize(
    ("changes", "state"),
    [
        ({"financial_status": "paid"}, OrderState.PAID),
        ({"financial_status": "partially_refunded"}, OrderState.PAID),
        ({"financial_status": "pending"}, OrderState.PENDING),
        ({"financial_status": "authorized"}, OrderState.PENDING),
        ({"financial_status": "paid", "fulfillment_status": "fulfilled"}, OrderState.DELIVERED),
        ({"fulfillment_status": "partial"}, OrderState.PAID),
        ({"financial_status": "refunded"}, OrderState.REFUNDED),
        ({"financial_status": "voided"}, OrderState.CANCELLED),
        ({"cancelled_at": "2026-11-30T13:00:00+03:00"}, OrderState.CANCELLED),
    ],
)
def test_shopify_status_table(changes: dict[str, object], state: OrderState) -> None:
    assert shopify_mapped(**changes).state is state


def test_a_shopify_order_becomes_the_desks_order() -> None:
    mapped = shopify_mapped()
    assert mapped.order_ref == "#1001"
    assert mapped.external_id == "820982911946154508"
    raw = mapped.raw
    assert raw is not None
    # customer.phone is empty: the billing phone comes next (the shipping one is last).
    assert raw.customer.phone == "+79991234567"
    assert raw.customer.name == "Анна"
    assert [(item.sku, item.quantity, item.price) for item in raw.items] == [
        ("CAT-2KG", 2, "1290.00")
    ]
    # The 200.00 of shipping is the difference between the lines and the total.
    assert (raw.total, raw.shipping, raw.discount) == ("2780.00", "200.00", "0.00")
    assert raw.created_at == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_phones_come_from_customer_then_billing_then_shipping() -> None:
    customer_first = shopify_mapped(customer={"phone": "+380501234567", "first_name": "Оля"})
    assert customer_first.raw is not None and customer_first.raw.customer.phone == "+380501234567"
    shipping_only = shopify_mapped(billing_address={"phone": "not a phone"})
    assert shipping_only.raw is not None and shipping_only.raw.customer.phone == "+79990000000"
    nobody = shopify_mapped(billing_address=None, shipping_address={"phone": ""})
    assert nobody.raw is None  # kept as skipped: nobody to credit


def test_phones_without_a_country_code_are_read_in_the_shops_country() -> None:
    germany = shop_of(Rules.model_validate({"shop": {"currency": "EUR", "country": "DE"}}))
    assert germany.region == "DE"
    assert shop_of(Rules()).region == "RU"  # RUB
    order = shopify_order(currency="EUR", billing_address={"phone": "0151 23456789"})
    mapped = shopify.map_delivery(topic="orders/paid", body=body_of(order), shop=germany)
    assert isinstance(mapped, StoreOrder) and mapped.raw is not None
    assert mapped.raw.customer.phone == "+4915123456789"


def test_a_shopify_refund_counts_its_refund_transactions() -> None:
    mapped = shopify.map_delivery(topic="refunds/create", body=body_of(shopify_refund()), shop=SHOP)
    assert mapped == RefundNotice(
        platform=Platform.SHOPIFY,
        external_order_id="820982911946154508",
        refund=StoreRefund(refund_key="509562969", amount=139000),
    )
    # Without transactions, the refunded lines' worth.
    lines_only = shopify.map_delivery(
        topic="refunds/create", body=body_of(shopify_refund(transactions=[])), shop=SHOP
    )
    assert isinstance(lines_only, RefundNotice) and lines_only.refund.amount == 129000
    # A restock without money back is nothing for the points.
    nothing = shopify_refund(transactions=[], refund_line_items=[])
    assert isinstance(
        shopify.map_delivery(topic="refunds/create", body=body_of(nothing), shop=SHOP), Ignored
    )


def test_shopify_topics_the_bot_does_not_use_and_bodies_that_are_no_order() -> None:
    body = body_of(shopify_order())
    assert (
        shopify.inspect(topic="products/update", webhook_id="w", body=body).verdict
        is Verdict.IGNORE
    )
    assert (
        shopify.inspect(topic="orders/paid", webhook_id="w", body=b"[1]").verdict
        is Verdict.MALFORMED
    )
    assert (
        shopify.inspect(topic="orders/paid", webhook_id="w", body=b"{").verdict is Verdict.MALFORMED
    )
    kept = shopify.inspect(topic="orders/paid", webhook_id="w-1", body=body)
    assert (kept.verdict, kept.delivery_id) == (Verdict.KEEP, "w-1")


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("processing", OrderState.PAID),
        ("completed", OrderState.DELIVERED),
        ("cancelled", OrderState.CANCELLED),
        ("refunded", OrderState.REFUNDED),
        ("pending", OrderState.PENDING),
        ("on-hold", OrderState.PENDING),
        ("failed", OrderState.PENDING),
    ],
)
def test_woocommerce_status_table(status: str, state: OrderState) -> None:
    mapped = woocommerce.map_delivery(
        topic="order.updated", body=body_of(woocommerce_order(status=status)), shop=SHOP
    )
    assert isinstance(mapped, StoreOrder) and mapped.state is state


def test_a_woocommerce_order_with_its_refunds() -> None:
    order = woocommerce_order(refunds=[{"id": 731, "reason": "torn bag", "total": "-1290.00"}])
    mapped = woocommerce.map_delivery(topic="order.updated", body=body_of(order), shop=SHOP)
    assert isinstance(mapped, StoreOrder)
    assert mapped.order_ref == "#727"
    assert mapped.raw is not None and mapped.raw.customer.phone == "+79991234567"  # 8 (999)...
    assert mapped.raw.created_at == datetime(2026, 11, 30, 12, 0, 5, tzinfo=UTC)  # paid, GMT
    assert mapped.refunds == (StoreRefund(refund_key="731", amount=129000),)


def test_woocommerce_pings_and_bodies_that_are_no_order_are_answered_200() -> None:
    assert (
        woocommerce.inspect(topic="", delivery_id=None, body=b"webhook_id=3").verdict
        is Verdict.PING
    )
    for body in (b"{not json", b"[]", b'{"no": "id"}'):
        assert (
            woocommerce.inspect(topic="order.created", delivery_id="d", body=body).verdict
            is Verdict.IGNORE
        )


def test_a_tilda_order_is_paid() -> None:
    mapped = tilda.map_delivery(body=form_of(tilda_fields()), shop=SHOP)
    assert isinstance(mapped, StoreOrder)
    assert (mapped.order_ref, mapped.state) == ("#1706021234", OrderState.PAID)
    assert mapped.raw is not None and mapped.raw.customer.phone == "+79991234567"
    assert mapped.raw.customer.name == "Анна"
    assert [(item.sku, item.quantity, item.price) for item in mapped.raw.items] == [
        ("CAT-2KG", 2, "1290.00")
    ]
    assert mapped.raw.total == "2580.00"


def test_tilda_pings_forms_without_orders_and_broken_payments() -> None:
    assert tilda.inspect(body=b"test=test").verdict is Verdict.PING
    assert tilda.inspect(body=form_of({"Name": "Anna", "Phone": "+79991234567"})).verdict is (
        Verdict.IGNORE
    )
    broken = form_of({**tilda_fields(), "payment": "{not json"})
    assert tilda.inspect(body=broken).verdict is Verdict.MALFORMED
    no_order_id = form_of(tilda_payment(tilda_fields(), orderid=""))
    assert tilda.inspect(body=no_order_id).verdict is Verdict.MALFORMED
    assert tilda.inspect(body=b"\xff\xfe").verdict is Verdict.MALFORMED
    kept = tilda.inspect(body=form_of(tilda_fields()))
    assert (kept.verdict, kept.delivery_id) == (Verdict.KEEP, "tranid:5112233:1706021234")


def test_amounts_with_more_digits_than_the_currency_fail_with_the_field() -> None:
    with pytest.raises(MappingProblem, match="total_price"):
        shopify_mapped(total_price="2780.005")


def test_a_shared_contact_is_accepted_when_it_is_a_possible_number() -> None:
    # +7 000 ... is the right length for +7 but in no range the metadata lists as valid.
    assert (
        own_phone(contact_user_id=5, sender_id=5, phone_number="70001234567", currency="RUB")
        == "+70001234567"
    )
    # Telegram's anonymous numbers (+888) are in no numbering plan at all.
    assert (
        own_phone(contact_user_id=5, sender_id=5, phone_number="88804123456", currency="RUB")
        == "+88804123456"
    )
