"""Sending methods: sendMessage, sendPhoto, sendDocument, copyMessage, forwardMessage."""

from __future__ import annotations

from typing import Any

from tests.fake_telegram.errors import bad_request
from tests.fake_telegram.formatting import caption_text, message_text
from tests.fake_telegram.keyboards import validate_reply_markup, visible_inline_markup
from tests.fake_telegram.media import UploadedFile
from tests.fake_telegram.models.messages import SentMessage
from tests.fake_telegram.models.updates import base_message, reply_view
from tests.fake_telegram.params import Params, as_bool, as_int, as_json, required_int
from tests.fake_telegram.state import FakeState, Target
from tests.fake_telegram.text_builder import FormattedText

# Content fields copyMessage/forwardMessage carry over from the original message.
_CONTENT_FIELDS = (
    "text",
    "entities",
    "link_preview_options",
    "photo",
    "document",
    "caption",
    "caption_entities",
    "has_media_spoiler",
    "show_caption_above_media",
    "contact",
)


def _reply_to(state: FakeState, target: Target, params: Params) -> dict[str, Any] | None:
    """Resolves reply_parameters (or legacy reply_to_message_id) to the replied message."""
    allow_missing = as_bool(params.get("allow_sending_without_reply"))
    reply = as_json(params.get("reply_parameters"))
    log = target.log
    if isinstance(reply, dict):
        message_id = as_int(reply.get("message_id"))
        allow_missing = allow_missing or as_bool(reply.get("allow_sending_without_reply"))
        other_chat = as_int(reply.get("chat_id"))
        if other_chat is not None and other_chat != log.chat_id:
            log = state.log(other_chat)
    else:
        message_id = as_int(params.get("reply_to_message_id"))
    if message_id is None:
        return None
    message = log.live(message_id)
    if message is None and not allow_missing:
        raise bad_request("message to be replied not found")
    return message


def _formatted_fields(
    formatted: FormattedText | None, text_key: str, entities_key: str
) -> dict[str, Any]:
    if formatted is None:
        return {}
    fields: dict[str, Any] = {text_key: formatted.text}
    if formatted.entities:
        fields[entities_key] = formatted.entities
    return fields


def commit_send(
    state: FakeState,
    target: Target,
    method: str,
    params: Params,
    content: dict[str, Any],
    *,
    markup: dict[str, Any] | None,
    raw: str | None,
    reply: dict[str, Any] | None = None,
    upload: UploadedFile | None = None,
) -> SentMessage:
    """Applies flood limits, allocates the message id and records the sent message."""
    if state.limiter is not None:
        paid = as_bool(params.get("allow_paid_broadcast"))
        state.limiter.admit(target.log.chat_id, target.private, paid)
    log = target.log
    payload = base_message(log.allocate_id(), state.now(), target.chat, state.bot_user)
    if reply is not None:
        payload["reply_to_message"] = reply_view(reply)
    payload.update(content)
    if as_bool(params.get("protect_content")):
        payload["has_protected_content"] = True
    visible = visible_inline_markup(markup)
    if visible is not None:
        payload["reply_markup"] = visible
    parse_mode = params.get("parse_mode")
    sent = SentMessage(
        chat_id=log.chat_id,
        message_id=payload["message_id"],
        method=method,
        payload=payload,
        raw=raw,
        parse_mode=parse_mode if isinstance(parse_mode, str) and parse_mode else None,
        reply_markup=markup,
        upload=upload,
        params=params,
    )
    log.add_sent(sent)
    return sent


def _media_caption(params: Params) -> dict[str, Any]:
    formatted = caption_text(
        params.get("caption"), params.get("parse_mode"), as_json(params.get("caption_entities"))
    )
    fields = _formatted_fields(formatted, "caption", "caption_entities")
    if formatted is not None and as_bool(params.get("show_caption_above_media")):
        fields["show_caption_above_media"] = True
    return fields


async def send_message(state: FakeState, params: Params) -> Any:
    markup = validate_reply_markup(params.get("reply_markup"))
    raw = params.get("text")
    formatted = message_text(raw, params.get("parse_mode"), as_json(params.get("entities")))
    target = state.target(params.get("chat_id"))
    reply = _reply_to(state, target, params)
    content = _formatted_fields(formatted, "text", "entities")
    preview = as_json(params.get("link_preview_options"))
    if isinstance(preview, dict) and preview:
        content["link_preview_options"] = preview
    elif as_bool(params.get("disable_web_page_preview")):
        content["link_preview_options"] = {"is_disabled": True}
    sent = commit_send(
        state, target, "sendMessage", params, content, markup=markup, raw=str(raw), reply=reply
    )
    return sent.payload


async def send_photo(state: FakeState, params: Params) -> Any:
    markup = validate_reply_markup(params.get("reply_markup"))
    caption = _media_caption(params)
    source = params.get("photo")
    if source is None or source == "":
        raise bad_request("there is no photo in the request")
    target = state.target(params.get("chat_id"))
    reply = _reply_to(state, target, params)
    sizes, _ = state.files.photo(source)
    content: dict[str, Any] = {"photo": sizes, **caption}
    if as_bool(params.get("has_spoiler")):
        content["has_media_spoiler"] = True
    sent = commit_send(
        state,
        target,
        "sendPhoto",
        params,
        content,
        markup=markup,
        raw=params.get("caption"),
        reply=reply,
        upload=source if isinstance(source, UploadedFile) else None,
    )
    return sent.payload


async def send_document(state: FakeState, params: Params) -> Any:
    markup = validate_reply_markup(params.get("reply_markup"))
    caption = _media_caption(params)
    source = params.get("document")
    if source is None or source == "":
        raise bad_request("there is no document in the request")
    target = state.target(params.get("chat_id"))
    reply = _reply_to(state, target, params)
    document, _ = state.files.document(source)
    content: dict[str, Any] = {"document": document, **caption}
    sent = commit_send(
        state,
        target,
        "sendDocument",
        params,
        content,
        markup=markup,
        raw=params.get("caption"),
        reply=reply,
        upload=source if isinstance(source, UploadedFile) else None,
    )
    return sent.payload


def _source_message(state: FakeState, params: Params, action: str) -> dict[str, Any]:
    source = state.target(params.get("from_chat_id"), sending=False)
    message_id = required_int(params, "message_id", f"message to {action} not found")
    original = source.log.live(message_id)
    if original is None:
        raise bad_request(f"message to {action} not found")
    if not any(key in original for key in _CONTENT_FIELDS):
        done = "forwarded" if action == "forward" else "copied"
        raise bad_request(f"message can't be {done}")
    return original


async def copy_message(state: FakeState, params: Params) -> Any:
    markup = validate_reply_markup(params.get("reply_markup"))
    target = state.target(params.get("chat_id"))
    original = _source_message(state, params, "copy")
    content = {key: original[key] for key in _CONTENT_FIELDS if key in original}
    raw = original.get("text", original.get("caption"))
    if "text" not in content and "caption" in params:
        # A new caption replaces the original one on media copies.
        content.pop("caption", None)
        content.pop("caption_entities", None)
        content.update(_media_caption(params))
        raw = params.get("caption")
    reply = _reply_to(state, target, params)
    sent = commit_send(
        state, target, "copyMessage", params, content, markup=markup, raw=raw, reply=reply
    )
    return {"message_id": sent.message_id}


async def forward_message(state: FakeState, params: Params) -> Any:
    target = state.target(params.get("chat_id"))
    original = _source_message(state, params, "forward")
    content: dict[str, Any] = {}
    sender = original.get("from")
    if sender is not None:
        content["forward_origin"] = {
            "type": "user",
            "sender_user": sender,
            "date": original["date"],
        }
    else:
        content["forward_origin"] = {
            "type": "chat",
            "sender_chat": original["chat"],
            "date": original["date"],
        }
    content.update({key: original[key] for key in _CONTENT_FIELDS if key in original})
    raw = original.get("text", original.get("caption"))
    sent = commit_send(state, target, "forwardMessage", params, content, markup=None, raw=raw)
    return sent.payload


HANDLERS = {
    "sendMessage": send_message,
    "sendPhoto": send_photo,
    "sendDocument": send_document,
    "copyMessage": copy_message,
    "forwardMessage": forward_message,
}
