"""Member card numbers: EAN-13 in the in-store range (prefix 29), ten random digits, a check
digit.

An EAN-13 is what shop scanners read, the check digit catches a mistyped number, and no phone
or Telegram id has 13 digits starting with 29, so a card number is never mistaken for either.
The ten digits are random (one in a few members per ten billion numbers is taken), so nobody
can work out another member's card; members from before random numbers keep their "29" +
customer id number, stored like the random ones.
"""

from __future__ import annotations

import re
import secrets
from typing import Protocol

CARD_PREFIX = "29"  # GS1 "restricted circulation": numbers a shop may assign itself
_BODY_DIGITS = 10  # room for ten billion members
_CARD = re.compile(r"^29\d{11}$")


def ean_check_digit(digits: str) -> str:
    """GS1 check digit for the 12 digits before it: weights 1, 3, 1, 3, ... from the left."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return str((10 - total % 10) % 10)


def card_number(customer_id: int) -> str:
    """The card number members got before random ones: "29" + the id + the check digit (the
    migration gave every such member this number; new members get ``new_card_number()``)."""
    if not 0 < customer_id < 10**_BODY_DIGITS:
        raise ValueError(f"customer id {customer_id} has no card number")
    body = f"{CARD_PREFIX}{customer_id:0{_BODY_DIGITS}d}"
    return body + ean_check_digit(body)


def new_card_number() -> str:
    """A random card number: 29, ten random digits, the check digit."""
    body = f"{CARD_PREFIX}{secrets.randbelow(10**_BODY_DIGITS):0{_BODY_DIGITS}d}"
    return body + ean_check_digit(body)


class HasCard(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def card_number(self) -> str | None: ...


def member_card(customer: HasCard) -> str:
    """The member's own card number (every member has one stored since they joined)."""
    return customer.card_number or card_number(customer.id)


def display_card_number(number: str) -> str:
    """As printed under an EAN-13 barcode: 2 900000 000427."""
    return f"{number[0]} {number[1:7]} {number[7:]}"


def looks_like_card(text: str) -> bool:
    """Shaped like a card number (29 and 11 more digits), whether or not its check digit fits."""
    return bool(_CARD.match(re.sub(r"[\s-]", "", text)))


def valid_card(text: str) -> str | None:
    """The 13 digits of a well-formed card number (check digit right), else None. Spaces and
    dashes are ignored, as people copy the number the way it is printed."""
    digits = re.sub(r"[\s-]", "", text)
    if not _CARD.match(digits) or ean_check_digit(digits[:12]) != digits[12]:
        return None
    return digits
