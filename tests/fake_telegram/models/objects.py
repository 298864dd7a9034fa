"""Builders for Telegram's basic JSON objects: users, the bot, chats and chat members."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the fake bot is: its token, numeric id (the token prefix) and names."""

    token: str
    id: int
    username: str
    first_name: str

    @classmethod
    def from_token(cls, token: str, username: str, first_name: str) -> BotIdentity:
        prefix = token.split(":", 1)[0]
        if not prefix.isdigit():
            msg = f"bot token must look like '123456:ABC', got {token!r}"
            raise ValueError(msg)
        return cls(token=token, id=int(prefix), username=username, first_name=first_name)

    def user(self) -> dict[str, Any]:
        """The bot as it appears in messages' "from" and chat member objects."""
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }

    def get_me(self) -> dict[str, Any]:
        """The getMe result, with the capability flags Telegram adds for bots."""
        return {
            **self.user(),
            "can_join_groups": True,
            # The fake delivers every group message, i.e. privacy mode is off.
            "can_read_all_group_messages": True,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }


def user_object(
    user_id: int,
    first_name: str,
    *,
    last_name: str | None = None,
    username: str | None = None,
    language_code: str | None = None,
    is_premium: bool = False,
) -> dict[str, Any]:
    """A User object; Telegram omits absent optional fields rather than sending null."""
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if last_name:
        user["last_name"] = last_name
    if username:
        user["username"] = username
    if language_code:
        user["language_code"] = language_code
    if is_premium:
        user["is_premium"] = True
    return user


def private_chat_object(
    user_id: int, first_name: str, last_name: str | None, username: str | None
) -> dict[str, Any]:
    """The private Chat object between the bot and a user; its id equals the user id."""
    chat: dict[str, Any] = {"id": user_id, "type": "private", "first_name": first_name}
    if last_name:
        chat["last_name"] = last_name
    if username:
        chat["username"] = username
    return chat


def group_chat_object(
    chat_id: int, kind: str, title: str, username: str | None, is_forum: bool = False
) -> dict[str, Any]:
    """A group or supergroup Chat object."""
    chat: dict[str, Any] = {"id": chat_id, "type": kind, "title": title}
    if username:
        chat["username"] = username
    if is_forum:
        chat["is_forum"] = True
    return chat


def full_chat_info(chat: dict[str, Any]) -> dict[str, Any]:
    """A ChatFullInfo for getChat: the Chat plus the fields Telegram always fills in."""
    return {
        **chat,
        "accent_color_id": abs(chat["id"]) % 7,
        "max_reaction_count": 11,
        "accepted_gift_types": {
            "unlimited_gifts": True,
            "limited_gifts": True,
            "unique_gifts": True,
            "premium_subscription": True,
            "gifts_from_channels": True,
        },
    }


def member_object(status: str, user: dict[str, Any]) -> dict[str, Any]:
    """A ChatMember of a simple status: member, left or kicked."""
    member: dict[str, Any] = {"status": status, "user": user}
    if status == "kicked":
        member["until_date"] = 0
    return member


def chat_instance(bot_id: int, chat_id: int) -> str:
    """A stable opaque chat_instance, like Telegram's signed 64-bit identifier."""
    value = (chat_id * 0x9E3779B97F4A7C15 + bot_id) % (1 << 64)
    return str(value - (1 << 64) if value >= 1 << 63 else value)
