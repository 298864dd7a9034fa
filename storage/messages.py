"""What a queued message carries (the outbox's JSON payload), typed for everyone who builds one."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class Button(TypedDict):
    """An inline button: a link (``url``) or a press the bot answers (``callback_data``)."""

    text: str
    url: NotRequired[str]
    callback_data: NotRequired[str]


# Rows of buttons, top to bottom; handlers/keyboards.py turns them into Telegram's keyboard.
ButtonRows = list[list[Button]]


class MessageContent(TypedDict, total=False):
    """Exactly one of ``text`` (rendered HTML), ``texts`` (per language, with a "default") or
    ``template`` + ``context`` (rendered in the recipient's language when sent); the rest is
    optional. ``edit_of``/``reply_to`` name another message by its dedupe key; an erasure's
    redaction names a message sent long ago by its Telegram id (``edit_message_id``)."""

    text: str
    texts: dict[str, str]
    template: str
    context: dict[str, Any]
    buttons: ButtonRows
    photo: str
    locale: str  # the language a fixed text was written in
    edit_of: str
    reply_to: str
    edit_message_id: int
    erased: bool  # what is left of a message once its customer erased their data
