"""Bot-level methods: getMe, command lists per scope/language, names, descriptions, menu."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from tests.fake_telegram.errors import bad_request
from tests.fake_telegram.params import Params, as_int, as_json
from tests.fake_telegram.state import FakeState

_Handler = Callable[[FakeState, Params], Awaitable[Any]]

# Scope type -> the fields that identify it.
_SCOPES: dict[str, tuple[str, ...]] = {
    "default": (),
    "all_private_chats": (),
    "all_group_chats": (),
    "all_chat_administrators": (),
    "chat": ("chat_id",),
    "chat_administrators": ("chat_id",),
    "chat_member": ("chat_id", "user_id"),
}
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")
_LANGUAGE = re.compile(r"^([a-z]{2})?$")
# (setter, getter, result key, length limit) for the simple per-language bot texts.
_BOT_TEXTS = {
    "description": ("setMyDescription", "getMyDescription", "description", 512),
    "short_description": (
        "setMyShortDescription",
        "getMyShortDescription",
        "short_description",
        120,
    ),
    "name": ("setMyName", "getMyName", "name", 64),
}


def scope_key(raw: Any) -> tuple[Any, ...]:
    """A hashable key for a BotCommandScope given as dict, JSON string, type name or model."""
    if hasattr(raw, "model_dump"):
        raw = raw.model_dump(exclude_none=True)
    scope = as_json(raw)
    if scope is None or scope == "":
        return ("default",)
    if isinstance(scope, str):
        scope = {"type": scope}
    if not isinstance(scope, dict) or scope.get("type") not in _SCOPES:
        raise bad_request("can't parse BotCommandScope JSON object")
    values = []
    for name in _SCOPES[scope["type"]]:
        value = scope.get(name)
        number = as_int(value)
        if value is None or value == "":
            raise bad_request(f"{name} is empty")
        values.append(number if number is not None else value)
    return (scope["type"], *values)


def language_code(raw: Any) -> str:
    code = raw if isinstance(raw, str) else ""
    if not _LANGUAGE.match(code):
        raise bad_request("invalid language code specified")
    return code


async def get_me(state: FakeState, params: Params) -> Any:
    return state.bot.get_me()


async def set_my_commands(state: FakeState, params: Params) -> Any:
    commands = as_json(params.get("commands"))
    if not isinstance(commands, list):
        raise bad_request('parameter "commands" is required')
    if len(commands) > 100:
        raise bad_request("BOT_COMMANDS_TOO_MUCH")
    stored = []
    for item in commands:
        if not isinstance(item, dict):
            raise bad_request("can't parse BotCommand JSON object")
        command, description = item.get("command"), item.get("description")
        if not isinstance(command, str) or not _COMMAND.match(command):
            raise bad_request("BOT_COMMAND_INVALID")
        if not isinstance(description, str) or not 1 <= len(description) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        stored.append({"command": command, "description": description})
    key = (scope_key(params.get("scope")), language_code(params.get("language_code")))
    if stored:
        state.commands[key] = stored
    else:
        state.commands.pop(key, None)
    return True


async def get_my_commands(state: FakeState, params: Params) -> Any:
    key = (scope_key(params.get("scope")), language_code(params.get("language_code")))
    return [dict(command) for command in state.commands.get(key, [])]


async def delete_my_commands(state: FakeState, params: Params) -> Any:
    key = (scope_key(params.get("scope")), language_code(params.get("language_code")))
    state.commands.pop(key, None)
    return True


def _text_setter(kind: str, limit: int) -> _Handler:
    async def handler(state: FakeState, params: Params) -> Any:
        value = params.get(kind)
        text = value if isinstance(value, str) else ""
        if len(text) > limit:
            raise bad_request(f"{kind.replace('_', ' ')} is too long")
        key = (kind, language_code(params.get("language_code")))
        if text:
            state.bot_texts[key] = text
        else:
            state.bot_texts.pop(key, None)
        return True

    return handler


def _text_getter(kind: str, result_key: str) -> _Handler:
    async def handler(state: FakeState, params: Params) -> Any:
        code = language_code(params.get("language_code"))
        text = state.bot_texts.get((kind, code)) or state.bot_texts.get((kind, ""))
        if text is None and kind == "name":
            text = state.bot.first_name
        return {result_key: text or ""}

    return handler


async def set_chat_menu_button(state: FakeState, params: Params) -> Any:
    button = as_json(params.get("menu_button")) or {"type": "default"}
    if not isinstance(button, dict) or button.get("type") not in ("default", "commands", "web_app"):
        raise bad_request("can't parse menu button JSON object")
    chat_id = as_int(params.get("chat_id"))
    if chat_id is not None:
        state.target(chat_id, sending=False)
    state.menu_buttons[chat_id] = button
    return True


async def get_chat_menu_button(state: FakeState, params: Params) -> Any:
    chat_id = as_int(params.get("chat_id"))
    button = state.menu_buttons.get(chat_id) or state.menu_buttons.get(None)
    if button is None or button.get("type") == "default":
        return {"type": "commands"}
    return button


HANDLERS: dict[str, _Handler] = {
    "getMe": get_me,
    "setMyCommands": set_my_commands,
    "getMyCommands": get_my_commands,
    "deleteMyCommands": delete_my_commands,
    "setChatMenuButton": set_chat_menu_button,
    "getChatMenuButton": get_chat_menu_button,
}
for _kind, (_setter, _getter, _key, _limit) in _BOT_TEXTS.items():
    HANDLERS[_setter] = _text_setter(_kind, _limit)
    HANDLERS[_getter] = _text_getter(_kind, _key)
