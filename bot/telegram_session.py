"""The Bot API session: aiogram's aiohttp session, keeping the response models it builds."""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType

# One response model per return type (Message, bool, list[Update]...): a few dozen at most.
_RESPONSE_MODELS: dict[Any, type[Response[Any]]] = {}


class TelegramSession(AiohttpSession):
    """aiogram parses every answer with ``Response[<what the method returns>]``, a pydantic
    generic model built on first use and cached by pydantic only weakly. A class lives in
    reference cycles, so the garbage collector frees it soon after (on a busy bot, every few
    hundred milliseconds) and the next answer builds it again: about 5 ms of CPU instead of
    40 µs, paid by every reply. Holding each one here keeps pydantic's cache warm."""

    def check_response(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        status_code: int,
        content: str,
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in _RESPONSE_MODELS:
            _RESPONSE_MODELS[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)
