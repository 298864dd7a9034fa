"""Filters shared by routers: who is an admin, private chats only, what a button may carry."""

from __future__ import annotations

from typing import Annotated

from aiogram.filters import Filter
from aiogram.types import TelegramObject, User
from pydantic import Field

# A number a button carries (a row id, a score, points): a forged 20-digit one names no row and
# would overflow BIGINT, so its button does not match and the fallback says it is out of date.
ButtonNumber = Annotated[int, Field(ge=0, le=2**63 - 1)]


class IsAdmin(Filter):
    """True for users listed in ADMIN_IDS (the Dispatcher passes ``admin_ids``)."""

    async def __call__(
        self, event: TelegramObject, event_from_user: User | None, admin_ids: tuple[int, ...]
    ) -> bool:
        return event_from_user is not None and event_from_user.id in admin_ids
