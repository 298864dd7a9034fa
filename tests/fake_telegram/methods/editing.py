"""Editing and deleting: editMessageText/Caption/ReplyMarkup, deleteMessage(s)."""

from __future__ import annotations

from typing import Any

from tests.fake_telegram.errors import NOT_MODIFIED, bad_request
from tests.fake_telegram.formatting import caption_text, message_text
from tests.fake_telegram.keyboards import validate_inline_markup, visible_inline_markup
from tests.fake_telegram.models.messages import SentMessage
from tests.fake_telegram.params import Params, as_int, as_json
from tests.fake_telegram.state import FakeState
from tests.fake_telegram.text_builder import FormattedText


def _editable(state: FakeState, params: Params) -> SentMessage:
    """The bot's own live message addressed by chat_id + message_id."""
    if params.get("inline_message_id"):
        # Inline mode is not simulated, so no inline message id is ever valid.
        raise bad_request("MESSAGE_ID_INVALID")
    target = state.target(params.get("chat_id"))
    message_id = as_int(params.get("message_id"))
    if message_id is None:
        raise bad_request("message identifier is not specified")
    sent = target.log.sent_by_id.get(message_id)
    if sent is None or sent.deleted:
        if target.log.live(message_id) is not None:
            raise bad_request("message can't be edited")
        raise bad_request("message to edit not found")
    return sent


def _apply_edit(
    state: FakeState,
    sent: SentMessage,
    fields: dict[str, Any],
    drop: tuple[str, ...],
    markup: dict[str, Any] | None,
    raw: str | None,
    parse_mode: Any,
) -> dict[str, Any]:
    """Checks "not modified", archives the current version and applies the new one."""
    payload = sent.payload
    new_visible = visible_inline_markup(markup)
    unchanged = all(payload.get(key) == value for key, value in fields.items())
    unchanged = unchanged and not any(key in payload for key in drop)
    if unchanged and new_visible == payload.get("reply_markup"):
        raise bad_request(NOT_MODIFIED)
    sent.edits.append(sent.snapshot())
    for key in drop:
        payload.pop(key, None)
    payload.update(fields)
    if new_visible is None:
        payload.pop("reply_markup", None)
    else:
        payload["reply_markup"] = new_visible
    payload["edit_date"] = state.now()
    sent.raw = raw
    sent.parse_mode = parse_mode if isinstance(parse_mode, str) and parse_mode else None
    # A reply keyboard is not part of the message, so an edit cannot remove it.
    if markup is not None or "inline_keyboard" in (sent.reply_markup or {}):
        sent.reply_markup = markup
    return payload


def _text_fields(
    formatted: FormattedText | None, text_key: str, entities_key: str
) -> tuple[dict[str, Any], tuple[str, ...]]:
    if formatted is None:
        return {}, (text_key, entities_key)
    if formatted.entities:
        return {text_key: formatted.text, entities_key: formatted.entities}, ()
    return {text_key: formatted.text}, (entities_key,)


async def edit_message_text(state: FakeState, params: Params) -> Any:
    markup = validate_inline_markup(params.get("reply_markup"))
    raw = params.get("text")
    parse_mode = params.get("parse_mode")
    formatted = message_text(raw, parse_mode, as_json(params.get("entities")))
    sent = _editable(state, params)
    if "text" not in sent.payload:
        raise bad_request("there is no text in the message to edit")
    fields, drop = _text_fields(formatted, "text", "entities")
    preview = as_json(params.get("link_preview_options"))
    if isinstance(preview, dict) and preview:
        fields["link_preview_options"] = preview
    return _apply_edit(state, sent, fields, drop, markup, str(raw), parse_mode)


async def edit_message_caption(state: FakeState, params: Params) -> Any:
    markup = validate_inline_markup(params.get("reply_markup"))
    parse_mode = params.get("parse_mode")
    formatted = caption_text(
        params.get("caption"), parse_mode, as_json(params.get("caption_entities"))
    )
    sent = _editable(state, params)
    if "text" in sent.payload:
        raise bad_request("there is no caption in the message to edit")
    fields, drop = _text_fields(formatted, "caption", "caption_entities")
    raw = params.get("caption")
    return _apply_edit(state, sent, fields, drop, markup, raw, parse_mode)


async def edit_message_reply_markup(state: FakeState, params: Params) -> Any:
    markup = validate_inline_markup(params.get("reply_markup"))
    sent = _editable(state, params)
    return _apply_edit(state, sent, {}, (), markup, sent.raw, sent.parse_mode)


async def delete_message(state: FakeState, params: Params) -> Any:
    target = state.target(params.get("chat_id"), sending=False)
    message_id = as_int(params.get("message_id"))
    if message_id is None or not target.log.delete(message_id):
        raise bad_request("message to delete not found")
    return True


async def delete_messages(state: FakeState, params: Params) -> Any:
    target = state.target(params.get("chat_id"), sending=False)
    ids = as_json(params.get("message_ids"))
    if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
        raise bad_request("message_ids must be a non-empty array of at most 100 identifiers")
    # Missing messages are skipped silently, as documented for deleteMessages.
    for raw_id in ids:
        message_id = as_int(raw_id)
        if message_id is not None:
            target.log.delete(message_id)
    return True


HANDLERS = {
    "editMessageText": edit_message_text,
    "editMessageCaption": edit_message_caption,
    "editMessageReplyMarkup": edit_message_reply_markup,
    "deleteMessage": delete_message,
    "deleteMessages": delete_messages,
}
