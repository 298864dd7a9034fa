"""Who is writing to the bot: recognise a Telegram user as a customer, and in which language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from scenarios.clock import Clock
from storage.customers import CustomerRecord

SUPPORTED_LOCALES: tuple[str, ...] = ("ru", "uk", "en")

# Telegram clients report IETF tags such as "uk", "ru-RU" or "en-GB"; Belarusian and Kazakh
# interfaces most often come with Russian-speaking users, so they get Russian before the default.
_LANGUAGE_FALLBACKS = {"be": "ru", "kk": "ru"}

# How stale ``last_seen_at`` may get before a plain update refreshes it (saves a write per update).
SEEN_REFRESH = timedelta(minutes=10)


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
    directory: CustomerDirectory, *, user: TelegramUser, clock: Clock
) -> CustomerRecord:
    """The customer behind this Telegram user; the first contact creates them, once."""
    return await directory.seen(
        telegram_id=user.id,
        first_name=user.first_name,
        username=user.username,
        language_code=user.language_code,
        now=clock.now(),
        refresh_after=SEEN_REFRESH,
    )


async def choose_locale(directory: CustomerDirectory, *, customer_id: int, locale: str) -> str:
    """Remember the language the customer picked; refuses locales without texts."""
    if locale not in SUPPORTED_LOCALES:
        raise UnsupportedLocaleError(locale)
    await directory.set_locale(customer_id=customer_id, locale=locale)
    return locale
