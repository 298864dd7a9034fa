"""Card numbers: check digit, round trip, and what is not a card number."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scenarios.cards import (
    card_number,
    customer_id_from_card,
    display_card_number,
    ean_check_digit,
)


def test_a_card_number_is_an_ean13_in_the_in_store_range() -> None:
    number = card_number(427)
    assert number == "2900000004276"
    assert display_card_number(number) == "2 900000 004276"
    # The check digit of a published EAN-13 (4006381333931) agrees with the GS1 algorithm.
    assert ean_check_digit("400638133393") == "1"


@given(st.integers(min_value=1, max_value=10**10 - 1))
def test_every_card_number_reads_back_as_its_customer(customer_id: int) -> None:
    number = card_number(customer_id)
    assert len(number) == 13
    assert customer_id_from_card(number) == customer_id
    assert customer_id_from_card(display_card_number(number)) == customer_id


@given(st.integers(min_value=1, max_value=10**10 - 1), st.integers(0, 12), st.integers(1, 9))
def test_one_mistyped_digit_is_caught(customer_id: int, position: int, shift: int) -> None:
    number = card_number(customer_id)
    wrong = number[:position] + str((int(number[position]) + shift) % 10) + number[position + 1 :]
    assert customer_id_from_card(wrong) is None


@pytest.mark.parametrize(
    "text", ["", "29", "2900000004270", "79991234567", "123456789", "290000000000", "abc"]
)
def test_other_texts_are_not_card_numbers(text: str) -> None:
    assert customer_id_from_card(text) is None


def test_there_is_no_card_for_an_impossible_customer() -> None:
    with pytest.raises(ValueError, match="no card number"):
        card_number(0)
