"""Handlers indexed by command and by button prefix: an update checks only those that could take it.

aiogram checks a router's handlers one after another until one's filters pass, and each check
costs a copy of the update's context per filter: a star press checked some thirty callback
handlers before its own, a command as many message handlers. A handler whose filters include
``Command("balance")`` can only take a message whose first word is that command, and one with
``SomeData.filter()`` only a button whose data begins with that prefix; every other handler
(magic filters, states, plain text) may take anything and is always checked. So each update's
candidates are the handlers keyed to its command or prefix plus the unkeyed ones, in their
registration order: the first whose filters pass is the same handler as without the index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from aiogram import Router
from aiogram.dispatcher.event.bases import UNHANDLED, SkipHandler
from aiogram.dispatcher.event.handler import HandlerObject
from aiogram.dispatcher.event.telegram import TelegramEventObserver
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackQueryFilter
from aiogram.types import CallbackQuery, Message, TelegramObject

SEPARATOR = ":"  # aiogram's CallbackData separator; a class with another one is not indexed

Keys = frozenset[str] | None  # None: the handler may take any update
Kind = TypeVar("Kind")


def index_handlers(router: Router) -> None:
    """Index the router's message handlers by command and its button handlers by prefix."""
    _install(router.message, _command_keys, message_key)
    _install(router.callback_query, _prefix_keys, callback_key)


def message_key(event: TelegramObject) -> str | None:
    """The command a message would be matched on, as aiogram's Command filter reads it (the
    first word of the text or caption, without its prefix and @mention), casefolded."""
    text = (event.text or event.caption) if isinstance(event, Message) else None
    words = text.split(maxsplit=1) if text else None
    if not words:
        return None
    return words[0][1:].partition("@")[0].casefold()


def callback_key(event: TelegramObject) -> str | None:
    """The prefix a button's data would be unpacked with."""
    if not isinstance(event, CallbackQuery) or not event.data:
        return None
    return event.data.split(SEPARATOR, 1)[0]


def _command_keys(handler: HandlerObject) -> Keys:
    for command in _filters_of(handler, Command):
        names = [name for name in command.commands if isinstance(name, str)]
        if len(names) == len(command.commands):  # a pattern may match any command
            return frozenset(name.casefold() for name in names)
    return None


def _prefix_keys(handler: HandlerObject) -> Keys:
    for button in _filters_of(handler, CallbackQueryFilter):
        data = button.callback_data
        if data.__separator__ == SEPARATOR:
            return frozenset({data.__prefix__})
    return None


def _filters_of(handler: HandlerObject, kind: type[Kind]) -> Iterable[Kind]:
    """The handler's own filters of one kind (all of its filters must pass)."""
    for filter_object in handler.filters or ():
        if isinstance(filter_object.callback, kind):
            yield filter_object.callback


class _Index:
    """The observer's handlers by key, rebuilt if handlers were registered since (aiogram
    only ever appends to the list)."""

    def __init__(
        self, observer: TelegramEventObserver, keys_of: Callable[[HandlerObject], Keys]
    ) -> None:
        self._observer = observer
        self._keys_of = keys_of
        self._built_for = -1  # how many handlers the index holds
        self._by_key: dict[str, list[HandlerObject]] = {}
        self._unkeyed: list[HandlerObject] = []

    def candidates(self, key: str | None) -> list[HandlerObject]:
        handlers = self._observer.handlers
        if len(handlers) != self._built_for:
            self._build(list(handlers))
        if key is None:
            return self._unkeyed
        return self._by_key.get(key, self._unkeyed)

    def _build(self, handlers: list[HandlerObject]) -> None:
        keyed = [(handler, self._keys_of(handler)) for handler in handlers]
        every_key = {key for _, keys in keyed if keys is not None for key in keys}
        self._by_key = {
            key: [handler for handler, keys in keyed if keys is None or key in keys]
            for key in every_key
        }
        self._unkeyed = [handler for handler, keys in keyed if keys is None]
        self._built_for = len(handlers)


def _install(
    observer: TelegramEventObserver,
    keys_of: Callable[[HandlerObject], Keys],
    key_of: Callable[[TelegramObject], str | None],
) -> None:
    index = _Index(observer, keys_of)

    async def trigger(event: TelegramObject, **kwargs: Any) -> Any:
        # aiogram's TelegramEventObserver.trigger, over the candidates instead of every handler.
        for handler in index.candidates(key_of(event)):
            kwargs["handler"] = handler
            result, data = await handler.check(event, **kwargs)
            if result:
                kwargs.update(data)
                try:
                    wrapped_inner = observer.outer_middleware.wrap_middlewares(
                        observer._resolve_middlewares(), handler.call
                    )
                    return await wrapped_inner(event, kwargs)
                except SkipHandler:
                    continue
        return UNHANDLED

    observer.trigger = trigger  # type: ignore[method-assign]
