"""aiogram's synchronous filters (``F.text``, a wizard's State) run on the event loop, inline."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.handler import FilterObject, HandlerObject


def run_filters_inline(root: Router) -> None:
    """aiogram 3 awaits a filter that is not a coroutine function through ``asyncio.to_thread``:
    every ``F.chat.type == "private"`` and every State checked against every update is a trip
    to a worker thread and back, and a command near the end of the routers passes dozens. Ours
    are all cheap and pure (attribute look-ups, comparisons), so they are called directly."""
    for handler in every_handler(root):
        for filter_object in handler.filters or ():
            if not filter_object.awaitable:
                _inline(filter_object)


def every_handler(root: Router) -> Iterator[HandlerObject]:
    """Every handler object under ``root``, each observer's own filters included."""
    for router in root.chain_tail:
        for observer in router.observers.values():
            # The observer's own filters (``router.message.filter(...)``) live in a handler
            # object of their own; aiogram has no public name for it.
            yield observer._handler
            yield from observer.handlers


def _inline(filter_object: FilterObject) -> None:
    check: Callable[..., Any] = filter_object.callback

    async def inline(*args: Any, **kwargs: Any) -> Any:
        return check(*args, **kwargs)

    # The keyword arguments it gets stay those of ``check``: aiogram read them from its
    # signature already (``params``), and passes only those.
    filter_object.callback = inline
    filter_object.awaitable = True
