"""The composition root as tests build it: bot/services.py over a test database and clock."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from zoneinfo import ZoneInfo

from aiogram.utils.i18n import I18n

from bot.services import FollowerChoice, Services, build_services
from bot.settings import Settings
from locales import CatalogI18n, create_i18n
from locales.rendering import Renderer
from scenarios.clock import Clock, SystemClock
from scenarios.orders import OrderFollower
from scenarios.rules import Rules
from storage.database import Database


@cache
def _catalogs(locale: str) -> CatalogI18n:
    return create_i18n(locale)  # compiling the .po files once per test run is plenty


def services_for(
    db: Database,
    *,
    rules: Rules | None = None,
    clock: Clock | None = None,
    zone: ZoneInfo | None = None,
    i18n: I18n | None = None,
    renderer: Renderer | None = None,
    admin_ids: tuple[int, ...] = (),
    staff_chat_id: int | None = None,
    followers: Sequence[OrderFollower] | FollowerChoice | None = None,
    staff_redactor: bool = True,
    inbox_db: Database | None = None,
) -> Services:
    """``zone``: the shop's (else the renderer's, else UTC). ``followers``: what the order
    desks call after each order: a list, a choice among the services, or None for all."""
    rules = rules or Rules()
    zone = zone or (renderer.zone if renderer is not None else ZoneInfo("UTC"))
    i18n = i18n or (renderer.i18n if renderer is not None else None)
    settings = Settings(
        _env_file=None,
        timezone=zone.key,
        admin_ids=admin_ids,
        staff_chat_id=staff_chat_id,
        default_locale=i18n.default_locale if i18n is not None else "en",
        fraud_hash_secret=None,
    )
    choice: FollowerChoice | None
    if followers is None or callable(followers):
        choice = followers
    else:
        chosen = tuple(followers)
        choice = lambda _services: chosen  # noqa: E731
    return build_services(
        settings,
        rules,
        db,
        clock or SystemClock(),
        i18n=i18n or _catalogs(settings.default_locale),
        renderer=renderer,
        order_followers=choice,
        staff_redactor=staff_redactor,
        inbox_db=inbox_db,
    )
