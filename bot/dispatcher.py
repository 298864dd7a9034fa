"""create_dispatcher(): routers, middlewares and the services handlers receive by name."""

from __future__ import annotations

from datetime import datetime

from aiogram import Dispatcher
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import SimpleEventIsolation

from bot.i18n import CustomerLocaleMiddleware
from bot.middlewares import CustomerMiddleware, HandlerModeMiddleware, UnitOfWorkMiddleware
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
    dispatcher.update.outer_middleware(UnitOfWorkMiddleware(db))
    dispatcher.update.outer_middleware(CustomerMiddleware(services.customers, services.clock))
    # Inner middlewares of the dispatcher run for every router's handlers, after the filters.
    handler_mode = HandlerModeMiddleware(db)
    for name, observer in dispatcher.observers.items():
        if name not in {"update", "error"}:
            observer.middleware(handler_mode)
    CustomerLocaleMiddleware(services.i18n).setup(dispatcher)
    dispatcher.include_routers(*create_routers())
    return dispatcher
