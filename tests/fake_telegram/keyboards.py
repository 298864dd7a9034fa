"""Validation of reply_markup the way Telegram does it, and button lookup helpers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from .errors import bad_request
from .params import as_json

# A button must carry exactly one of these actions to be valid in an inline keyboard.
_INLINE_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_MAX_BUTTONS = 100
_URL_SCHEMES = ("http", "https", "tg", "ton")


def _invalid_markup() -> Exception:
    return bad_request("can't parse reply keyboard markup JSON object")


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise bad_request(
            "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
        )
    if not isinstance(button.get("text"), str):
        raise bad_request(
            'can\'t parse inline keyboard button: Field "text" must be of type String'
        )
    actions = [key for key in _INLINE_ACTIONS if key in button]
    if not actions:
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
            raise bad_request("BUTTON_DATA_INVALID")
    if "url" in button:
        url = button["url"]
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme.lower() not in _URL_SCHEMES or not parts.netloc:
            raise bad_request(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")


def _rows(markup: dict[str, Any], key: str) -> list[list[Any]]:
    rows = markup[key]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(f'field "{key}" must be an Array of Arrays')
    if sum(len(row) for row in rows) > _MAX_BUTTONS:
        raise bad_request("reply markup is too long")
    return rows


def validate_reply_markup(raw: Any) -> dict[str, Any] | None:
    """Checks an inline keyboard, reply keyboard, keyboard removal or force reply."""
    if raw is None or raw == "":
        return None
    markup = as_json(raw)
    if not isinstance(markup, dict):
        raise _invalid_markup()
    if "inline_keyboard" in markup:
        for row in _rows(markup, "inline_keyboard"):
            for button in row:
                _check_inline_button(button)
        return markup
    if "keyboard" in markup:
        for row in _rows(markup, "keyboard"):
            for button in row:
                text = button if isinstance(button, str) else None
                if isinstance(button, dict):
                    text = button.get("text")
                if not isinstance(text, str) or not text:
                    raise bad_request("keyboard button text must be non-empty")
        return markup
    if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
        return markup
    raise _invalid_markup()


def validate_inline_markup(raw: Any) -> dict[str, Any] | None:
    """Edits accept only inline keyboards."""
    markup = validate_reply_markup(raw)
    if markup is not None and "inline_keyboard" not in markup:
        raise bad_request("inline keyboard expected")
    return markup


def visible_inline_markup(markup: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a Message object shows: only non-empty inline keyboards appear in it."""
    if markup is None:
        return None
    rows = markup.get("inline_keyboard")
    if rows and any(rows):
        return {"inline_keyboard": rows}
    return None


def iter_buttons(markup: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    """All buttons of an inline or reply keyboard, normalised to dicts."""
    if not markup:
        return
    for key in ("inline_keyboard", "keyboard"):
        for row in markup.get(key) or ():
            for button in row:
                yield {"text": button} if isinstance(button, str) else button
