"""Birthday gifts: reading the date, eligibility, and the daily tick on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from scenarios.birthdays import (
    Birthday,
    birthdays_to_look_at,
    gift_eligible,
    occurrence,
    parse_birthday,
)
from scenarios.clock import FixedClock
from scenarios.ledger import PointsLedger
from scenarios.rules import Birthday as BirthdayRules
from scenarios.rules import Rules
from scenarios.signup import Consent
from scenarios.tiers import TierLadder
from storage.customers import SqlCustomers
from storage.database import Database
from storage.ledger import SqlLedger
from storage.schema import customers, outbox
from tests.support.services import services_for
from tests.support.signup import entries

ZONE = ZoneInfo("Europe/Moscow")
TODAY = date(2026, 11, 1)


def test_birthdays_are_read_as_day_and_month_with_an_optional_year() -> None:
    assert parse_birthday("31.12", today=TODAY) == Birthday(31, 12)
    assert parse_birthday(" 1/2/1990 ", today=TODAY) == Birthday(1, 2, 1990)
    assert parse_birthday("29.02", today=TODAY) == Birthday(29, 2)
    assert parse_birthday("05-11-2000", today=TODAY) == Birthday(5, 11, 2000)
    for wrong in ("31.02", "29.02.2023", "12.13", "1.1.1899", "2.11.2026", "soon", "31", ""):
        assert parse_birthday(wrong, today=TODAY) is None, wrong


def test_29_february_is_celebrated_on_the_28th_in_other_years() -> None:
    assert occurrence(month=2, day=29, year=2027) == date(2027, 2, 28)
    assert occurrence(month=2, day=29, year=2028) == date(2028, 2, 29)
    assert (date(2027, 2, 28), 2, 29) in birthdays_to_look_at(date(2027, 2, 28), 0)
    assert birthdays_to_look_at(date(2026, 12, 30), 2) == [
        (date(2027, 1, 1), 1, 1),
        (date(2026, 12, 31), 12, 31),
        (date(2026, 12, 30), 12, 30),
    ]


def test_a_birthday_entered_less_than_30_days_before_earns_nothing() -> None:
    day = date(2026, 12, 31)
    start = datetime(2026, 12, 30, 21, 0, tzinfo=UTC)  # midnight in Moscow
    assert gift_eligible(birthday_set_at=start - timedelta(days=30), birthday=day, zone=ZONE)
    assert not gift_eligible(
        birthday_set_at=start - timedelta(days=29, hours=23), birthday=day, zone=ZONE
    )
    assert not gift_eligible(birthday_set_at=None, birthday=day, zone=ZONE)


async def member_with_birthday(
    db: Database, clock: FixedClock, rules: Rules, telegram_id: int, birthday: Birthday
) -> int:
    services = services_for(db, rules=rules, clock=clock, zone=ZONE)
    person = await SqlCustomers(db).seen(
        telegram_id=telegram_id,
        first_name="Anna",
        username=None,
        language_code="en",
        now=clock.now(),
        refresh_after=timedelta(minutes=10),
    )
    async with db.transaction():
        await services.signup.join(
            person,
            phone=f"+7999{telegram_id:07d}",
            consent=Consent(accepted_at=clock.now(), marketing_opt_in=False),
            invite=None,
        )
        await services.signup.set_birthday(person, birthday)
    return person.id


async def birthday_entries(db: Database, customer_id: int) -> list[tuple[str, str, int]]:
    return [e for e in await entries(db, customer_id) if e[0] == "birthday"]


@pytest.mark.parametrize("days_before", [0, 3])
async def test_the_gift_comes_once_a_year_by_tier_with_a_greeting(
    db: Database, days_before: int
) -> None:
    rules = Rules(birthday=BirthdayRules(birthday_days_before=days_before))
    clock = FixedClock(datetime(2026, 10, 1, 9, 0, tzinfo=UTC))
    anna = await member_with_birthday(db, clock, rules, 301, Birthday(15, 11))
    gold = await member_with_birthday(db, clock, rules, 302, Birthday(15, 11, 1990))
    ladder = TierLadder.from_rules(rules.bonus, currency="RUB")
    await PointsLedger(SqlLedger(db), bonus=rules.bonus, ladder=ladder, clock=clock).accrue(
        customer_id=gold, order_id="BIG", total=3_500_000
    )
    gifts = services_for(db, rules=rules, clock=clock, zone=ZONE).birthdays

    # The evening before the gift day (Moscow) is still too early.
    clock.set(datetime(2026, 11, 15 - days_before, 20, 59, tzinfo=UTC) - timedelta(days=1))
    assert await gifts.tick() == 0
    clock.advance(timedelta(minutes=2))  # 00:01 in Moscow on the gift day
    assert await gifts.tick() == 2
    assert await gifts.tick() == 0
    clock.advance(timedelta(days=days_before + 1))
    assert await gifts.tick() == 0
    assert await birthday_entries(db, anna) == [("birthday", f"customer:{anna}:2026", 100)]
    assert await birthday_entries(db, gold) == [("birthday", f"customer:{gold}:2026", 300)]
    async with db.read() as conn:
        rows = (
            await conn.execute(select(outbox.c.dedupe_key, outbox.c.category, outbox.c.payload))
        ).all()
    assert [(key, category) for key, category, _ in rows] == [
        (f"birthday:{anna}:2026", "service"),
        (f"birthday:{gold}:2026", "service"),
    ]
    assert rows[0].payload["context"] == {"points": 100, "name": "Anna"}

    # Next year: again, once.
    clock.set(datetime(2027, 11, 15 - days_before, 6, 0, tzinfo=UTC))
    assert await gifts.tick() == 2
    assert len(await birthday_entries(db, anna)) == 2


async def test_a_fresh_birthday_gets_no_gift_that_year(db: Database) -> None:
    rules = Rules()
    clock = FixedClock(datetime(2026, 11, 1, 9, 0, tzinfo=UTC))
    anna = await member_with_birthday(db, clock, rules, 301, Birthday(20, 11))
    gifts = services_for(db, rules=rules, clock=clock, zone=ZONE).birthdays
    clock.set(datetime(2026, 11, 20, 6, 0, tzinfo=UTC))
    assert await gifts.tick() == 0
    assert await birthday_entries(db, anna) == []
    async with db.read() as conn:
        assert (await conn.execute(select(outbox.c.id))).all() == []
    clock.set(datetime(2027, 11, 20, 6, 0, tzinfo=UTC))
    assert await gifts.tick() == 1


async def test_erased_members_get_nothing(db: Database) -> None:
    rules = Rules()
    clock = FixedClock(datetime(2026, 9, 1, 9, 0, tzinfo=UTC))
    anna = await member_with_birthday(db, clock, rules, 301, Birthday(20, 11))
    async with db.transaction() as conn:
        await conn.execute(
            update(customers).where(customers.c.id == anna).values(erased_at=clock.now())
        )
    clock.set(datetime(2026, 11, 20, 6, 0, tzinfo=UTC))
    gifts = services_for(db, rules=rules, clock=clock, zone=ZONE).birthdays
    assert await gifts.tick() == 0
    assert await birthday_entries(db, anna) == []
