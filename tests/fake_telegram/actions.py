"""Helpers shared by fake users and groups: finding the bot's messages and pressing buttons."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .models import updates
from .models.messages import SentMessage
from .models.objects import chat_instance

if TYPE_CHECKING:
    from .state import FakeState
    from .users import FakeUser

MessageRef = SentMessage | int | None


def command_text(command: str, args: str | None, mention: str | None) -> str:
    """ "/command[@bot] args" as a user types it."""
    text = "/" + command.lstrip("/")
    if mention:
        text += f"@{mention}"
    return f"{text} {args}" if args else text


def find_message(state: FakeState, chat_id: int, message: MessageRef) -> SentMessage:
    """A bot message by object or id; None means the latest one in the chat."""
    log = state.log(chat_id)
    if isinstance(message, SentMessage):
        return message
    if message is None:
        if not log.sent:
            msg = f"the bot has not sent anything to chat {chat_id}"
            raise AssertionError(msg)
        return log.sent[-1]
    found = log.sent_by_id.get(message)
    if found is None:
        msg = f"the bot never sent message #{message} to chat {chat_id}"
        raise AssertionError(msg)
    return found


def replied_payload(state: FakeState, chat_id: int, reply_to: MessageRef) -> dict[str, Any] | None:
    """The bot message a user replies to, or None when not replying."""
    return None if reply_to is None else find_message(state, chat_id, reply_to).payload


def text_update(
    state: FakeState,
    chat: dict[str, Any],
    sender: dict[str, Any],
    text: str,
    *,
    entities: list[dict[str, Any]] | None,
    reply_to: MessageRef,
) -> dict[str, Any]:
    """A text message from a person into ``chat``, kept in the chat's log so the bot can
    reply to it, wrapped in the update the bot receives."""
    log = state.log(chat["id"])
    message = updates.text_message(
        log.allocate_id(),
        state.now(),
        chat,
        sender,
        text,
        entities=entities,
        reply_to=replied_payload(state, chat["id"], reply_to),
    )
    log.add_incoming(message)
    return updates.message_update(state.next_update_id(), message)


def callback_update(
    state: FakeState,
    chat_id: int,
    sender: FakeUser,
    message: MessageRef,
    data: str,
    force: bool,
) -> dict[str, Any]:
    """A callback_query update; refuses buttons the message does not have unless forced."""
    sent = find_message(state, chat_id, message)
    if not force:
        if sent.deleted:
            msg = f"message #{sent.message_id} was deleted; pass force=True to press anyway"
            raise AssertionError(msg)
        inline = (sent.reply_markup or {}).get("inline_keyboard") or []
        datas = [b.get("callback_data") for row in inline for b in row if "callback_data" in b]
        if data not in datas:
            msg = (
                f"message #{sent.message_id} has no button with callback_data={data!r}; "
                f"available: {datas}"
            )
            raise AssertionError(msg)
    query_id = state.new_callback(chat_id, sent.message_id)
    return updates.callback_query_update(
        state.next_update_id(),
        query_id,
        sender.to_dict(),
        dict(sent.payload),  # the message as it looks now, unaffected by later edits
        chat_instance(state.bot.id, chat_id),
        data,
    )
