"""Chat-level methods: getChat, getChatMember, sendChatAction, answerCallbackQuery."""

from __future__ import annotations

from typing import Any

from tests.fake_telegram.errors import bad_request
from tests.fake_telegram.models.objects import full_chat_info, member_object
from tests.fake_telegram.params import Params, as_bool, as_int
from tests.fake_telegram.state import CallbackAnswer, FakeState

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


async def get_chat(state: FakeState, params: Params) -> Any:
    target = state.target(params.get("chat_id"), sending=False)
    return full_chat_info(target.chat)


async def get_chat_member(state: FakeState, params: Params) -> Any:
    target = state.target(params.get("chat_id"), sending=False)
    user_id = as_int(params.get("user_id"))
    if user_id is None:
        raise bad_request("invalid user_id specified")
    if user_id == state.bot.id:
        group = state.groups.get(target.log.chat_id)
        status = "kicked" if group is not None and not group.bot_is_member else "member"
        return member_object(status, state.bot_user)
    user = state.users.get(user_id)
    if user is None:
        raise bad_request("user not found")
    if target.private:
        if user_id != target.log.chat_id:
            raise bad_request("user not found")
        return member_object("member", user.to_dict())
    group = state.groups[target.log.chat_id]
    status = "member" if user_id in group.members else "left"
    return member_object(status, user.to_dict())


async def send_chat_action(state: FakeState, params: Params) -> Any:
    action = params.get("action")
    if action not in _CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    state.target(params.get("chat_id"))
    return True


async def answer_callback_query(state: FakeState, params: Params) -> Any:
    query_id = params.get("callback_query_id")
    if not query_id:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    text = params.get("text")
    if isinstance(text, str) and len(text) > 200:
        raise bad_request("MESSAGE_TOO_LONG")
    url = params.get("url")
    state.answer_callback(
        CallbackAnswer(
            callback_query_id=str(query_id),
            text=text if isinstance(text, str) and text else None,
            show_alert=as_bool(params.get("show_alert")),
            url=url if isinstance(url, str) and url else None,
            cache_time=as_int(params.get("cache_time")) or 0,
        )
    )
    return True


HANDLERS = {
    "getChat": get_chat,
    "getChatMember": get_chat_member,
    "sendChatAction": send_chat_action,
    "answerCallbackQuery": answer_callback_query,
}
