"""Filters shared by routers: who is an admin, private chats only."""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.types import TelegramObject, User


class IsAdmin(Filter):
    """True for users listed in ADMIN_IDS (the Dispatcher passes ``admin_ids``)."""

    async def __call__(
        self, event: TelegramObject, event_from_user: User | None, admin_ids: tuple[int, ...]
    ) -> bool:
        return event_from_user is not None and event_from_user.id in admin_ids
