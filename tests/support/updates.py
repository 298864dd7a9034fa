"""Build real aiogram Update objects for flow tests, as Telegram would send them."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiogram.types import Message, Update


@dataclass(frozen=True)
class TgUser:
    id: int
    first_name: str = "Anna"
    language_code: str | None = "en"
    username: str | None = None

    def as_dict(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.language_code:
            user["language_code"] = self.language_code
        if self.username:
            user["username"] = self.username
        return user


class Updates:
    """Numbered updates and messages for one simulated Telegram conversation."""

    def __init__(self) -> None:
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)

    def _update(self, **payload: Any) -> Update:
        return Update.model_validate({"update_id": next(self._update_ids), **payload})

    def message(self, user: TgUser, text: str, *, chat_id: int | None = None) -> Update:
        chat_id = user.id if chat_id is None else chat_id
        chat = (
            {"id": chat_id, "type": "private", "first_name": user.first_name}
            if chat_id > 0
            else {"id": chat_id, "type": "supergroup", "title": "Staff"}
        )
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(datetime.now(UTC).timestamp()),
            "chat": chat,
            "from": user.as_dict(),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self._update(message=message)

    def callback(self, user: TgUser, data: str, *, message: Message | None = None) -> Update:
        payload: dict[str, Any] = {
            "id": str(next(self._callback_ids)),
            "from": user.as_dict(),
            "chat_instance": f"ci-{user.id}",
            "data": data,
        }
        if message is not None:
            payload["message"] = message.model_dump(mode="json", by_alias=True, exclude_none=True)
        return self._update(callback_query=payload)

    def membership(self, user: TgUser, *, old: str, new: str) -> Update:
        """my_chat_member in the user's private chat: "member" -> "kicked" means blocked."""
        bot = {"id": 123456, "is_bot": True, "first_name": "Shop"}

        def member(status: str) -> dict[str, Any]:
            extra = {"until_date": 0} if status == "kicked" else {}
            return {"status": status, "user": bot, **extra}

        return self._update(
            my_chat_member={
                "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
                "from": user.as_dict(),
                "date": int(datetime.now(UTC).timestamp()),
                "old_chat_member": member(old),
                "new_chat_member": member(new),
            }
        )
