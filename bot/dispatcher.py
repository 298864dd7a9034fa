"""create_dispatcher(): routers, middlewares and the services handlers receive by name."""

from __future__ import annotations

from datetime import datetime

from aiogram import Dispatcher
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import SimpleEventIsolation

from bot.handler_index import index_handlers
from bot.i18n import CustomerLocaleMiddleware
from bot.inline_filters import run_filters_inline
from bot.middlewares import (
    CustomerMiddleware,
    HandlerModeMiddleware,
    StateMiddleware,
    UnitOfWorkMiddleware,
    use_user_lock,
)
from bot.routing import one_router
from bot.services import Services
from handlers import create_routers


def create_dispatcher(
    *,
    services: Services,
    fsm_storage: BaseStorage,
    version: str,
    started_at: datetime,
    events_isolation: BaseEventIsolation | None = None,
) -> Dispatcher:
    """Every service of ``services`` reaches a handler that names it as a parameter
    (``ratings: SqlRatings``, ``staff_alerts: StaffAlerts``, ``shop_zone: ZoneInfo``...)."""
    db = services.db
    dispatcher = Dispatcher(
        storage=fsm_storage,
        # One update per user at a time: a double tap cannot race a wizard or a balance.
        events_isolation=events_isolation or SimpleEventIsolation(),
        version=version,
        started_at=started_at,
        **dict(services.by_name()),
    )
    # Outer order: aiogram's errors and user context, the user's lock, the unit of work, the
    # customer (one statement that also reads the FSM row), then the FSM state.
    use_user_lock(dispatcher)
    dispatcher.update.outer_middleware(UnitOfWorkMiddleware(db))
    dispatcher.update.outer_middleware(CustomerMiddleware(services.customers, services.clock))
    dispatcher.update.outer_middleware(StateMiddleware())
    # Inner middlewares of the dispatcher run for every router's handlers, after the filters.
    handler_mode = HandlerModeMiddleware(db)
    for name, observer in dispatcher.observers.items():
        if name not in {"update", "error"}:
            observer.middleware(handler_mode)
    CustomerLocaleMiddleware(services.i18n).setup(dispatcher)
    features = one_router(create_routers())
    index_handlers(features)
    dispatcher.include_router(features)
    run_filters_inline(dispatcher)
    return dispatcher
