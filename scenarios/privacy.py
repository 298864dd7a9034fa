"""Privacy rules: keyed hashes of identities for fraud checks, and scrubbing free text of a
person's name, phone, username and Telegram id."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import phonenumbers

from scenarios.clock import Clock

FRAUD_SECRET_NAME = "fraud_hash"  # noqa: S105 (the name of the secret, not the secret)
ERASED_MARK = "[erased]"
PHONE, TELEGRAM = "phone", "telegram"


class SecretStore(Protocol):
    async def get_or_create(self, *, name: str, make: Callable[[], str], now: datetime) -> str: ...


class IdentityHasher:
    """HMAC-SHA256 of an E.164 phone or a Telegram id under the shop's secret.

    The key is ``FRAUD_HASH_SECRET`` when the shop sets it (kept outside the database, so a
    copy of the database alone cannot test phone numbers against the hashes); otherwise a
    random key the bot stores in its database on first use."""

    def __init__(self, secrets_store: SecretStore, *, clock: Clock, configured: str | None) -> None:
        self._store = secrets_store
        self._clock = clock
        self._key: bytes | None = configured.encode() if configured else None

    async def _secret(self) -> bytes:
        if self._key is None:
            value = await self._store.get_or_create(
                name=FRAUD_SECRET_NAME, make=lambda: secrets.token_hex(32), now=self._clock.now()
            )
            self._key = value.encode()
        return self._key

    async def digests(self, *, phone: str | None, telegram_id: int | None) -> list[tuple[str, str]]:
        """(kind, hex digest) for whichever of the two is known."""
        key = await self._secret()
        found: list[tuple[str, str]] = []
        for kind, value in ((PHONE, phone), (TELEGRAM, telegram_id)):
            if value is not None:
                message = f"{kind}:{value}".encode()
                found.append((kind, hmac.new(key, message, hashlib.sha256).hexdigest()))
        return found


# ---- scrubbing free text -----------------------------------------------------------------

_SEPARATORS = r"[\s\-().]*"


def _phone_pattern(e164: str) -> str:
    """Any usual spelling of the number: +7 999 123-45-67, 8 (999) 1234567, 79991234567..."""
    try:
        number = phonenumbers.parse(e164, None)
        national = str(number.national_number)
        country = str(number.country_code)
    except phonenumbers.NumberParseException:
        national, country = e164.lstrip("+"), ""
    digits = _SEPARATORS.join(re.escape(d) for d in national)
    prefix = rf"(?:\+?{country}|8|0)?{_SEPARATORS}" if country else r"\+?"
    return rf"(?<!\d){prefix}{digits}(?!\d)"


def names_phone(phone: str) -> Callable[[str], bool]:
    """Whether a text spells this phone number, in any usual spelling."""
    pattern = re.compile(_phone_pattern(phone))
    return lambda text: pattern.search(text) is not None


def scrubber(
    *,
    name: str | None,
    username: str | None,
    phone: str | None,
    telegram_id: int | None,
) -> Callable[[str], str]:
    """A function that replaces the person's name, @username, phone (any spelling) and
    Telegram id in a text with a mark; the rest of the text (the reason) stays readable."""
    patterns: list[str] = []
    if phone:
        patterns.append(_phone_pattern(phone))
    if telegram_id is not None:
        patterns.append(rf"(?<!\d){telegram_id}(?!\d)")
    if username:
        patterns.append(rf"(?<![\w@])@?{re.escape(username)}(?!\w)")
    if name and name.strip():
        patterns.append(rf"(?<!\w){re.escape(name.strip())}(?!\w)")
    if not patterns:
        return lambda text: text
    combined = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
    return lambda text: combined.sub(ERASED_MARK, text)


def scrub_json(value: Any, scrub: Callable[[str], str]) -> Any:
    """Every string inside a JSON value (keys stay), scrubbed."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: scrub_json(item, scrub) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub_json(item, scrub) for item in value]
    return value
