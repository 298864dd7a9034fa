"""Member card numbers: EAN-13 in the in-store range (prefix 29), the customer id, a check digit.

An EAN-13 is what shop scanners read, the check digit catches a mistyped number, and no phone
or Telegram id has 13 digits starting with 29, so a card number is never mistaken for either.
"""

from __future__ import annotations

import re

CARD_PREFIX = "29"  # GS1 "restricted circulation": numbers a shop may assign itself
_BODY_DIGITS = 10  # room for ten billion members
_CARD = re.compile(r"^29\d{11}$")


def ean_check_digit(digits: str) -> str:
    """GS1 check digit for the 12 digits before it: weights 1, 3, 1, 3, ... from the left."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return str((10 - total % 10) % 10)


def card_number(customer_id: int) -> str:
    """The customer's card number: 13 digits, stable for life."""
    if not 0 < customer_id < 10**_BODY_DIGITS:
        raise ValueError(f"customer id {customer_id} has no card number")
    body = f"{CARD_PREFIX}{customer_id:0{_BODY_DIGITS}d}"
    return body + ean_check_digit(body)


def display_card_number(number: str) -> str:
    """As printed under an EAN-13 barcode: 2 900000 000427."""
    return f"{number[0]} {number[1:7]} {number[7:]}"


def looks_like_card(text: str) -> bool:
    """Shaped like a card number (29 and 11 more digits), whether or not its check digit fits."""
    return bool(_CARD.match(re.sub(r"[\s-]", "", text)))


def customer_id_from_card(text: str) -> int | None:
    """The customer id a card number spells, or None when it is not a valid card number.

    Spaces and dashes are ignored, as people copy the number the way it is printed.
    """
    digits = re.sub(r"[\s-]", "", text)
    if not _CARD.match(digits) or ean_check_digit(digits[:12]) != digits[12]:
        return None
    customer_id = int(digits[2:12])
    return customer_id or None
