"""The feature routers as one router: the same handlers in the same order, one pass per update."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from aiogram import Router


def one_router(routers: Sequence[Router], *, name: str = "features") -> Router:
    """A router whose handlers are those of ``routers``, feature by feature, in their order.

    aiogram passes an update through its routers one after another, and each router costs a
    middleware chain, a copy of the context and its own filters before its first handler is
    even checked: a rating press walked 16 routers to reach its own. The first handler whose
    filters pass wins either way, so one router with the same handlers in the same order
    answers every update as the separate routers did. A router's own filters
    (``router.message.filter(...)``) go first into each of its handlers' filters, where
    aiogram would have checked them before those handlers. Routers that carry middlewares or
    sub-routers are refused: their meaning would not survive the merge.
    """
    merged = Router(name=name)
    for router in routers:
        if router.sub_routers:
            raise ValueError(f"router {router.name!r} has sub-routers: include it as it is")
        for update_type, observer in router.observers.items():
            if len(observer.middleware) or len(observer.outer_middleware):
                raise ValueError(f"router {router.name!r} has {update_type} middlewares")
            shared = list(observer._handler.filters or ())
            target = merged.observers[update_type]
            for handler in observer.handlers:
                filters = [*shared, *(handler.filters or ())]
                target.handlers.append(dataclasses.replace(handler, filters=filters or None))
    return merged
