"""Card numbers: check digit, round trip, and what is not a card number."""

from __future__ import annotations

from datetime import datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from bot.api import create_api_app
from bot.api.app import LookupLimit
from scenarios.cards import (
    card_number,
    display_card_number,
    ean_check_digit,
    new_card_number,
    valid_card,
)
from scenarios.clock import FixedClock
from scenarios.rules import Rules
from storage.database import Database
from storage.migrate import migrate
from storage.orders import SqlOrders
from storage.schema import metadata
from tests.support.services import services_for


def test_a_card_number_is_an_ean13_in_the_in_store_range() -> None:
    number = card_number(427)
    assert number == "2900000004276"
    assert display_card_number(number) == "2 900000 004276"
    # The check digit of a published EAN-13 (4006381333931) agrees with the GS1 algorithm.
    assert ean_check_digit("400638133393") == "1"


@given(st.integers(min_value=1, max_value=10**10 - 1))
def test_every_card_number_reads_back_as_printed(customer_id: int) -> None:
    number = card_number(customer_id)
    assert len(number) == 13
    assert valid_card(number) == number
    assert valid_card(display_card_number(number)) == number


@given(st.integers(min_value=1, max_value=10**10 - 1), st.integers(0, 12), st.integers(1, 9))
def test_one_mistyped_digit_is_caught(customer_id: int, position: int, shift: int) -> None:
    number = card_number(customer_id)
    wrong = number[:position] + str((int(number[position]) + shift) % 10) + number[position + 1 :]
    assert valid_card(wrong) is None


@pytest.mark.parametrize(
    "text", ["", "29", "2900000004270", "79991234567", "123456789", "290000000000", "abc"]
)
def test_other_texts_are_not_card_numbers(text: str) -> None:
    assert valid_card(text) is None


def test_there_is_no_card_for_an_impossible_customer() -> None:
    with pytest.raises(ValueError, match="no card number"):
        card_number(0)


def test_i18_7_new_card_numbers_are_random_valid_ean13s() -> None:
    numbers = {new_card_number() for _ in range(1000)}
    assert len(numbers) == 1000, "no two alike"
    assert all(len(n) == 13 and n.startswith("29") and valid_card(n) == n for n in numbers)
    # Not the customer id: a thousand random ten-digit bodies are nowhere near 1..1000.
    assert sum(int(n[2:12]) < 10**6 for n in numbers) < 5


async def test_i18_7_look_ups_by_card_number_are_rate_limited(
    sqlite_db: Database, clock: FixedClock
) -> None:
    app = create_api_app(
        services_for(sqlite_db, rules=Rules(), clock=clock, followers=()),
        api_token="t",
        card_lookups_per_minute=3,
    )
    auth = {"Authorization": "Bearer t"}
    async with TestClient(TestServer(app)) as client:
        for _ in range(3):
            response = await client.get(f"/api/v1/customers/{new_card_number()}", headers=auth)
            assert response.status == 404
        response = await client.get(f"/api/v1/customers/{new_card_number()}", headers=auth)
        assert response.status == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        body = await response.json()
        assert body["error"]["code"] == "too_many_requests"
        # Other references are not counted against the cards' limit.
        response = await client.get("/api/v1/customers/+79991234567", headers=auth)
        assert response.status == 404


def test_i18_7_the_window_slides() -> None:
    now = [0.0]
    limit = LookupLimit(2, clock=lambda: now[0])
    assert (limit.retry_after(), limit.retry_after()) == (None, None)
    now[0] = 45.0
    assert limit.retry_after() == 15
    now[0] = 60.0
    assert limit.retry_after() is None


async def test_i18_7_members_from_before_keep_their_card_numbers(db: Database) -> None:
    """Migration 0017 writes the number each member was given ("29" + id) into the column."""
    async with db.engine.begin() as conn:  # start again from the schema before random cards
        await conn.run_sync(metadata.drop_all)
        await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    await migrate(db, "0012")
    now = datetime(2026, 11, 1)
    async with db.transaction() as conn:
        for customer_id, joined in ((5, now), (6, None)):
            await conn.execute(
                text(
                    "INSERT INTO customers (id, telegram_id, created_at, last_seen_at, joined_at)"
                    " VALUES (:id, :tg, :now, :now, :joined)"
                ),
                {"id": customer_id, "tg": 500 + customer_id, "now": now, "joined": joined},
            )
    await migrate(db)
    async with db.read() as conn:
        cards = dict(
            (await conn.execute(text("SELECT id, card_number FROM customers ORDER BY id"))).all()
        )
    assert cards == {5: card_number(5), 6: None}
    match = await SqlOrders(db).match_customer(telegram_id=None, phone=None, card=card_number(5))
    assert match is not None and match.id == 5
