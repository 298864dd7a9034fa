"""Membership storage on both databases: joining, claiming orders, codes, birthdays, erasure."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from scenarios.clock import FixedClock
from storage.customers import SqlCustomers
from storage.database import Database
from storage.orders import NewOrder, SqlOrders
from storage.signup import SqlMembership


async def person(db: Database, clock: FixedClock, telegram_id: int) -> int:
    record = await SqlCustomers(db).seen(
        telegram_id=telegram_id,
        first_name="Anna",
        username="anna",
        language_code="en",
        now=clock.now(),
        refresh_after=timedelta(minutes=10),
    )
    return record.id


async def add_order(
    db: Database, clock: FixedClock, ref: str, phone: str, customer_id: int | None = None
) -> None:
    await SqlOrders(db).add(
        NewOrder(
            order_ref=ref,
            total=1000,
            currency="RUB",
            status="paid",
            ordered_at=clock.now(),
            phone=phone,
            customer_id=customer_id,
            lines=[],
        ),
        now=clock.now(),
    )


async def test_join_claim_and_erase(db: Database, clock: FixedClock) -> None:
    members = SqlMembership(db)
    anna = await person(db, clock, 1)
    await add_order(db, clock, "A-1", "+79991234567")
    await add_order(db, clock, "A-2", "+79990000000")
    await members.join(
        customer_id=anna,
        phone="+79991234567",
        terms_accepted_at=clock.now(),
        marketing_opt_in=True,
        now=clock.now(),
    )
    assert await members.phone_owner(phone="+79991234567") == anna
    assert await members.orders_for_phone(phone="+79991234567") == 1
    claimed = await members.claim_orders(phone="+79991234567", customer_id=anna)
    assert [order.order_ref for order in claimed] == ["A-1"]
    assert await members.claim_orders(phone="+79991234567", customer_id=anna) == []
    assert (await SqlOrders(db).by_ref(order_ref="A-2")).customer_id is None  # type: ignore[union-attr]

    code = await members.set_invite_code(customer_id=anna, code="first")
    assert code == "first"
    assert await members.set_invite_code(customer_id=anna, code="second") == "first"
    assert await members.by_invite_code(code="first") == anna
    assert await members.telegram_id_of(customer_id=anna) == 1

    erased = await members.erase(customer_id=anna, now=clock.now())
    assert erased.orders_anonymised == 1
    assert await members.phone_owner(phone="+79991234567") is None
    assert await members.by_invite_code(code="first") is None
    assert await members.telegram_id_of(customer_id=anna) is None
    assert await SqlCustomers(db).by_telegram_id(telegram_id=1) is None
    order = await SqlOrders(db).by_ref(order_ref="A-1")
    assert order is not None
    assert (order.customer_id, order.phone, order.telegram_id) == (anna, None, None)


async def test_a_phone_belongs_to_one_customer(db: Database, clock: FixedClock) -> None:
    members = SqlMembership(db)
    anna = await person(db, clock, 1)
    ivan = await person(db, clock, 2)
    await members.join(
        customer_id=anna,
        phone="+79991234567",
        terms_accepted_at=clock.now(),
        marketing_opt_in=False,
        now=clock.now(),
    )
    with pytest.raises(IntegrityError):
        await members.join(
            customer_id=ivan,
            phone="+79991234567",
            terms_accepted_at=clock.now(),
            marketing_opt_in=False,
            now=clock.now(),
        )


async def test_birthdays_on_skips_settled_years_and_non_members(
    db: Database, clock: FixedClock
) -> None:
    members = SqlMembership(db)
    anna = await person(db, clock, 1)
    stranger = await person(db, clock, 2)
    await members.join(
        customer_id=anna,
        phone="+79991234567",
        terms_accepted_at=clock.now(),
        marketing_opt_in=False,
        now=clock.now(),
    )
    for customer_id in (anna, stranger):
        await members.set_birthday(
            customer_id=customer_id, day=3, month=4, year=None, now=clock.now()
        )
    found = await members.birthdays_on(month=4, day=3, year=2027, limit=10)
    assert [(m.customer_id, m.telegram_id, m.birthday_set_at) for m in found] == [
        (anna, 1, clock.now())
    ]
    await members.settle_birthday(customer_id=anna, year=2027)
    assert await members.birthdays_on(month=4, day=3, year=2027, limit=10) == []
    assert len(await members.birthdays_on(month=4, day=3, year=2028, limit=10)) == 1
