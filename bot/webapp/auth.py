"""Who is calling the Mini App's API: Telegram's signed initData, checked as Telegram documents.

https://core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app:
secret_key = HMAC-SHA256(key "WebAppData", the bot token); the hash is the hex HMAC-SHA256 of
the data-check-string (every received field but ``hash``, sorted by key, as ``key=value``
lines joined by "\\n") under that secret. ``auth_date`` says when Telegram signed it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from scenarios.problems import is_ascii_number

SCHEME = "tma"
MAX_INIT_DATA = 4096


class InitDataError(ValueError):
    """initData that proves nothing: missing, malformed, forged or too old."""


@dataclass(frozen=True, slots=True)
class WebAppUser:
    id: int
    first_name: str | None
    username: str | None
    language_code: str | None


@dataclass(frozen=True, slots=True)
class InitData:
    user: WebAppUser
    auth_date: int
    fields: dict[str, str]


def secret_key(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def data_check_string(fields: dict[str, str]) -> str:
    return "\n".join(f"{key}={fields[key]}" for key in sorted(fields) if key != "hash")


def sign(fields: dict[str, str], bot_token: str) -> str:
    """The hash Telegram would give these fields (for tests and the documentation)."""
    return hmac.new(
        secret_key(bot_token), data_check_string(fields).encode(), hashlib.sha256
    ).hexdigest()


def validate_init_data(
    raw: str, *, bot_token: str, max_age_seconds: int, now: float | None = None
) -> InitData:
    """The user Telegram signed ``raw`` for; InitDataError unless it is genuine and fresh."""
    if not raw or len(raw) > MAX_INIT_DATA:
        raise InitDataError("initData is missing or too long")
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InitDataError("initData is not a query string") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:  # which of the two would be signed is a guess: refuse both
            raise InitDataError(f"initData repeats the field {key!r}")
        fields[key] = value
    given = fields.get("hash", "")
    expected = sign(fields, bot_token)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise InitDataError("initData is not signed with this bot's token")
    auth_date = fields.get("auth_date", "")
    if not is_ascii_number(auth_date):
        raise InitDataError("initData has no auth_date")
    moment = now if now is not None else time.time()
    age = moment - int(auth_date)
    if age > max_age_seconds:
        raise InitDataError("initData has expired; reopen the Mini App")
    if age < -60:  # signed in the future: a clock a minute apart is all we forgive
        raise InitDataError("initData is dated in the future")
    return InitData(user=_user(fields.get("user")), auth_date=int(auth_date), fields=fields)


def _user(raw: str | None) -> WebAppUser:
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("id"), int) or data["id"] <= 0:
        raise InitDataError("initData names no user")
    return WebAppUser(
        id=data["id"],
        first_name=_text(data.get("first_name")),
        username=_text(data.get("username")),
        language_code=_text(data.get("language_code")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def init_data_from_header(header: str | None) -> str:
    """``Authorization: tma <initData>`` as Telegram's Mini Apps documentation spells it."""
    if not header:
        raise InitDataError("send the Mini App's initData as Authorization: tma <initData>")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != SCHEME or not value.strip():
        raise InitDataError("send the Mini App's initData as Authorization: tma <initData>")
    return value.strip()


class FailedSignIns:
    """Failed sign-ins per address, in any 60 seconds: past ``per_minute`` the address waits, so
    nobody can try forged initData at speed (one process, memory only)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None when it may now."""
        recent = self._recent(address)
        if recent is None or len(recent) < self._per_minute:
            return None
        return max(1, math.ceil(60 - (self._clock() - recent[0])))

    def failed(self, address: str) -> None:
        recent = self._recent(address)
        if recent is None:
            recent = self._failures.setdefault(address, deque())
        recent.append(self._clock())
        if len(self._failures) > 10_000:  # many addresses: forget the quiet ones
            for key in [k for k, v in self._failures.items() if not v]:
                del self._failures[key]

    def _recent(self, address: str) -> deque[float] | None:
        recent = self._failures.get(address)
        if recent is None:
            return None
        now = self._clock()
        while recent and now - recent[0] >= 60:
            recent.popleft()
        return recent
