"""Who a customer is: a Telegram user recognised, their language, their phone and references."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import phonenumbers

from scenarios.cards import looks_like_card, valid_card
from scenarios.clock import Clock
from scenarios.problems import InputProblem, invalid
from storage.customers import CustomerRecord
from storage.orders import CustomerMatch

SUPPORTED_LOCALES: tuple[str, ...] = ("ru", "uk", "en")

# Telegram clients report IETF tags such as "uk", "ru-RU" or "en-GB"; Belarusian and Kazakh
# interfaces most often come with Russian-speaking users, so they get Russian before the default.
_LANGUAGE_FALLBACKS = {"be": "ru", "kk": "ru"}

# How stale ``last_seen_at`` may get before a plain update refreshes it (saves a write per update).
SEEN_REFRESH = timedelta(minutes=10)

# Telegram user ids have at most 52 significant bits (Bot API docs); a longer number is no id.
MAX_TELEGRAM_ID = 2**52 - 1
MAX_REF = 64  # a customer reference: card number, phone, @username or tg:<id>
_REGIONS = {"RUB": "RU", "UAH": "UA"}
_USERNAME = re.compile(r"^[A-Za-z0-9_]{4,32}$")
_DIGITS = re.compile(r"[0-9]+")


class UnsupportedLocaleError(ValueError):
    """A locale the product has no texts for."""


@dataclass(frozen=True, slots=True)
class TelegramUser:
    """The parts of a Telegram user this product keeps."""

    id: int
    first_name: str | None = None
    username: str | None = None
    language_code: str | None = None


class CustomerDirectory(Protocol):
    async def seen(
        self,
        *,
        telegram_id: int,
        first_name: str | None,
        username: str | None,
        language_code: str | None,
        now: datetime,
        refresh_after: timedelta,
        fsm_key: str | None = None,
    ) -> CustomerRecord: ...

    async def set_locale(self, *, customer_id: int, locale: str) -> None: ...


def resolve_locale(*, chosen: str | None, language_code: str | None, default: str) -> str:
    """The user's own choice first, then their Telegram app's language, then the shop default."""
    if chosen in SUPPORTED_LOCALES:
        return chosen
    if language_code:
        language = language_code.replace("_", "-").split("-", 1)[0].lower()
        language = _LANGUAGE_FALLBACKS.get(language, language)
        if language in SUPPORTED_LOCALES:
            return language
    return default


async def recognise(
    directory: CustomerDirectory,
    *,
    user: TelegramUser,
    clock: Clock,
    fsm_key: str | None = None,
) -> CustomerRecord:
    """The customer behind this Telegram user; the first contact creates them, once.
    ``fsm_key``: the update's wizard row, read by the same statement."""
    return await directory.seen(
        telegram_id=user.id,
        first_name=user.first_name,
        username=user.username,
        language_code=user.language_code,
        now=clock.now(),
        refresh_after=SEEN_REFRESH,
        fsm_key=fsm_key,
    )


async def choose_locale(directory: CustomerDirectory, *, customer_id: int, locale: str) -> str:
    """Remember the language the customer picked; refuses locales without texts."""
    if locale not in SUPPORTED_LOCALES:
        raise UnsupportedLocaleError(locale)
    await directory.set_locale(customer_id=customer_id, locale=locale)
    return locale


# ---- phones and customer references (the API, the CSV import, admins' commands) ----------


def region_for(currency: str) -> str | None:
    """The region a phone without a country code is read in: the shop's currency's country."""
    return _REGIONS.get(currency.upper())


def normalize_phone(text: str, *, region: str | None, field: str = "phone") -> str:
    """A phone in any common spelling as E.164 (+79991234567); refused unless it is valid."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise invalid("invalid_phone", f"{text!r} is not a valid phone number", field)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def telegram_id_problem(value: int) -> str | None:
    """Why ``value`` cannot be a Telegram user id, or None when it can."""
    if value <= 0:
        return "a Telegram id is a positive number"
    if value > MAX_TELEGRAM_ID:
        return "a Telegram id has at most 16 digits"
    return None


class CustomerMatcher(Protocol):
    """Who a reference names: by Telegram id, phone, row id, username or card number."""

    async def match_customer(
        self,
        *,
        telegram_id: int | None,
        phone: str | None,
        customer_id: int | None = None,
        username: str | None = None,
        card: str | None = None,
    ) -> CustomerMatch | None: ...


class CustomerSource(Protocol):
    async def customer(self, *, customer_id: int) -> CustomerRecord | None: ...


@dataclass(frozen=True, slots=True)
class CustomerRef:
    telegram_id: int | None = None
    phone: str | None = None
    customer_id: int | None = None
    username: str | None = None  # without the @, as Telegram spells it
    card: str | None = None  # a card number's 13 digits


def parse_customer_ref(ref: str, *, region: str | None) -> CustomerRef:
    """A card number, ``@username``, ``tg:<id>``, a phone in any spelling, or a Telegram id.

    Bare digits are a phone only when they spell a valid number of 11 or more digits
    (79991234567); Telegram ids are shorter, and the ``tg:`` prefix settles any doubt.
    Card numbers (13 digits from 29, with a check digit) are neither.
    """
    text = ref.strip()
    if not text or len(text) > MAX_REF or not text.isprintable():
        raise invalid(
            "invalid_customer_ref",
            f"a customer reference is 1..{MAX_REF} printable characters",
            "ref",
        )
    card = valid_card(text)
    if card is not None:
        return CustomerRef(card=card)
    if looks_like_card(text):
        raise invalid("invalid_card_number", "this card number has a wrong check digit", "ref")
    if text.startswith("@"):
        if not _USERNAME.match(text[1:]):
            raise invalid("invalid_customer_ref", "a Telegram username is 4-32 letters", "ref")
        return CustomerRef(username=text[1:])
    if text.lower().startswith("tg:"):
        digits = text[3:].strip()
        if not _DIGITS.fullmatch(digits) or telegram_id_problem(int(digits)) is not None:
            raise invalid(
                "invalid_customer_ref", "tg: is followed by a Telegram id (1-16 digits)", "ref"
            )
        return CustomerRef(telegram_id=int(digits))
    if _DIGITS.fullmatch(text):
        if len(text) >= 11:
            for candidate, where in ((text, region), ("+" + text, None)):
                try:
                    return CustomerRef(phone=normalize_phone(candidate, region=where))
                except InputProblem:
                    continue
        if telegram_id_problem(int(text)) is not None:
            raise invalid(
                "invalid_customer_ref",
                "expected a phone, a card number or a Telegram id (1-16 digits)",
                "ref",
            )
        return CustomerRef(telegram_id=int(text))
    try:
        return CustomerRef(phone=normalize_phone(text, region=region, field="ref"))
    except InputProblem:
        raise invalid(
            "invalid_customer_ref", "expected a phone, a Telegram id or tg:<id>", "ref"
        ) from None
