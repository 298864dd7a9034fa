"""The Bot API methods the fake implements, keyed by lower-cased name like Telegram matches them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from tests.fake_telegram.params import Params
from tests.fake_telegram.state import FakeState

from . import bot, chats, editing, sending, updates

Handler = Callable[[FakeState, Params], Awaitable[Any]]


def _registry(*tables: Mapping[str, Handler]) -> dict[str, tuple[str, Handler]]:
    registry: dict[str, tuple[str, Handler]] = {}
    for table in tables:
        for name, handler in table.items():
            registry[name.lower()] = (name, handler)
    return registry


# lower-cased name -> (canonical name, handler)
METHODS = _registry(
    bot.HANDLERS, chats.HANDLERS, editing.HANDLERS, sending.HANDLERS, updates.HANDLERS
)
