"""One-time codes that prove a member spends their own points: a phone number alone earns."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from scenarios.clock import Clock
from scenarios.problems import is_ascii_number
from scenarios.rules import Bonus
from storage.redeem_codes import CodeCheck

CODE_DIGITS = 6


class RedeemCodeStore(Protocol):
    async def replace(
        self, *, customer_id: int, code_hash: str, now: datetime, expires_at: datetime
    ) -> None: ...

    async def spend(
        self,
        *,
        customer_id: int,
        code_hash: str,
        order_ref: str,
        now: datetime,
        max_wrong: int,
    ) -> CodeCheck: ...

    async def count_wrong(self, *, customer_id: int, now: datetime) -> int: ...


@dataclass(frozen=True, slots=True)
class IssuedCode:
    code: str  # six digits, shown to the member once
    expires_at: datetime


def code_hash(customer_id: int, code: str) -> str:
    """What is stored: a hash bound to the member, so one member's code is nobody else's."""
    return hashlib.sha256(f"{customer_id}:{code}".encode()).hexdigest()


def normal_code(text: str) -> str | None:
    """The code as the till typed it ("123 456", "123-456"), or None if it cannot be one."""
    digits = "".join(ch for ch in text if ch not in " -")
    if len(digits) != CODE_DIGITS or not is_ascii_number(digits):
        return None
    return digits


def display_code(code: str) -> str:
    """``123 456``: easier to read out at the till."""
    return f"{code[:3]} {code[3:]}"


class RedeemCodes:
    def __init__(self, store: RedeemCodeStore, *, bonus: Bonus, clock: Clock) -> None:
        self._store = store
        self._ttl = timedelta(minutes=bonus.redeem_code_minutes)
        self._max_wrong = bonus.redeem_code_wrong_tries
        self._clock = clock

    async def issue(self, *, customer_id: int) -> IssuedCode:
        """A fresh code for the member; the one they had before stops working."""
        now = self._clock.now()
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        expires_at = now + self._ttl
        await self._store.replace(
            customer_id=customer_id,
            code_hash=code_hash(customer_id, code),
            now=now,
            expires_at=expires_at,
        )
        return IssuedCode(code=code, expires_at=expires_at)

    async def spend(self, *, customer_id: int, code: str, order_ref: str) -> CodeCheck:
        """Use the member's code for this order (in the order's transaction: a refused order
        rolls it back, so the code still works)."""
        normal = normal_code(code)
        if normal is None:
            return CodeCheck.UNKNOWN
        return await self._store.spend(
            customer_id=customer_id,
            code_hash=code_hash(customer_id, normal),
            order_ref=order_ref,
            now=self._clock.now(),
            max_wrong=self._max_wrong,
        )

    async def count_wrong(self, *, customer_id: int) -> int:
        """A wrong code was tried for the member. Called in a transaction of its own, after
        the refused order's rolled back, so the count stays. Wrong tries of the live code."""
        return await self._store.count_wrong(customer_id=customer_id, now=self._clock.now())
