"""Pure builders of raw update dicts exactly as Telegram delivers them to bots."""

from __future__ import annotations

import re
from typing import Any

from tests.fake_telegram.text_builder import utf16_len

# What Telegram clients/servers auto-detect in messages users type.
_AUTO_ENTITIES = re.compile(
    r"(?P<bot_command>(?<![\w/])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?)"
    r"|(?P<mention>(?<!\w)@[A-Za-z0-9_]{5,32})"
    r"|(?P<hashtag>(?<!\w)#\w+)"
    r"|(?P<url>\bhttps?://[^\s<>\"]+)"
)


def detect_entities(text: str) -> list[dict[str, Any]]:
    """bot_command, mention, hashtag and url entities with UTF-16 offsets."""
    entities = []
    for match in _AUTO_ENTITIES.finditer(text):
        kind = match.lastgroup
        if kind is None:
            continue
        entities.append(
            {
                "type": kind,
                "offset": utf16_len(text[: match.start()]),
                "length": utf16_len(match.group()),
            }
        )
    return entities


def update_type(update: dict[str, Any]) -> str:
    """The update kind ("message", "callback_query", ...), i.e. its only non-id field."""
    for key in update:
        if key != "update_id":
            return key
    return "unknown"


def base_message(
    message_id: int, date: int, chat: dict[str, Any], sender: dict[str, Any] | None
) -> dict[str, Any]:
    """Fields every Message has; channel posts would have no sender."""
    message: dict[str, Any] = {"message_id": message_id}
    if sender is not None:
        message["from"] = sender
    message["chat"] = chat
    message["date"] = date
    return message


def reply_view(message: dict[str, Any]) -> dict[str, Any]:
    """A message as embedded in reply_to_message: Telegram does not nest replies further."""
    return {key: value for key, value in message.items() if key != "reply_to_message"}


def text_message(
    message_id: int,
    date: int,
    chat: dict[str, Any],
    sender: dict[str, Any],
    text: str,
    *,
    entities: list[dict[str, Any]] | None = None,
    reply_to: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A text Message from a user; entities are auto-detected unless given."""
    message = base_message(message_id, date, chat, sender)
    if reply_to is not None:
        message["reply_to_message"] = reply_view(reply_to)
    message["text"] = text
    found = detect_entities(text) if entities is None else entities
    if found:
        message["entities"] = found
    return message


def contact_message(
    message_id: int,
    date: int,
    chat: dict[str, Any],
    sender: dict[str, Any],
    contact: dict[str, Any],
) -> dict[str, Any]:
    """A Message carrying a shared Contact."""
    message = base_message(message_id, date, chat, sender)
    message["contact"] = contact
    return message


def contact_object(
    phone_number: str,
    first_name: str,
    *,
    last_name: str | None = None,
    user_id: int | None = None,
) -> dict[str, Any]:
    contact: dict[str, Any] = {"phone_number": phone_number, "first_name": first_name}
    if last_name:
        contact["last_name"] = last_name
    if user_id is not None:
        contact["user_id"] = user_id
    return contact


def message_update(update_id: int, message: dict[str, Any]) -> dict[str, Any]:
    return {"update_id": update_id, "message": message}


def callback_query_update(
    update_id: int,
    query_id: str,
    sender: dict[str, Any],
    message: dict[str, Any],
    chat_instance: str,
    data: str,
) -> dict[str, Any]:
    """A callback_query for a button press on a message the bot sent."""
    return {
        "update_id": update_id,
        "callback_query": {
            "id": query_id,
            "from": sender,
            "message": message,
            "chat_instance": chat_instance,
            "data": data,
        },
    }


def my_chat_member_update(
    update_id: int,
    chat: dict[str, Any],
    sender: dict[str, Any],
    date: int,
    old_member: dict[str, Any],
    new_member: dict[str, Any],
) -> dict[str, Any]:
    """The bot's own membership changed: blocked/unblocked in private, added/removed in groups."""
    return {
        "update_id": update_id,
        "my_chat_member": {
            "chat": chat,
            "from": sender,
            "date": date,
            "old_chat_member": old_member,
            "new_chat_member": new_member,
        },
    }
