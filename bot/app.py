"""The application: builds every part from settings and runs the bot until it is stopped."""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
from aiogram.utils.i18n import I18n
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.account_jobs import AccountJobs
from bot.api import create_api_app, start_api
from bot.delivery.sender import OutboxSender
from bot.dispatcher import create_dispatcher
from bot.fsm_storage import DatabaseFsmStorage
from bot.services import Services, build_runtime, build_services
from bot.settings import Settings
from handlers.menu import register_commands
from locales.rendering import Renderer
from scenarios.clock import Clock, SystemClock
from scenarios.rules import Rules
from storage.database import Database
from storage.fsm import SqlFsmStates
from storage.migrate import migrate

log = logging.getLogger(__name__)

# Updates handled at once. A burst (button presses after a broadcast) then waits in Telegram's
# queue instead of in the database pool (20 connections on PostgreSQL), where a wait of 30 s
# fails the update; the HTTP API, the outbox and the jobs keep connections of their own.
# Transactions are never held while Telegram answers, so 16 in flight still keep up with
# 100 ms round trips.
UPDATES_IN_FLIGHT = 16


def app_version() -> str:
    try:
        return package_version("repeat-sales-bot")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "dev"


@dataclass
class Application:
    settings: Settings
    rules: Rules
    clock: Clock
    db: Database
    i18n: I18n
    renderer: Renderer
    bot: Bot
    dispatcher: Dispatcher
    scheduler: AsyncIOScheduler
    fsm_storage: BaseStorage
    sender: OutboxSender
    account_jobs: AccountJobs
    services: Services


def create_bot(settings: Settings) -> Bot:
    if settings.bot_token is None:
        raise ValueError("BOT_TOKEN is not set")
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_base))
    return Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def build_application(
    settings: Settings, rules: Rules, *, clock: Clock | None = None
) -> Application:
    clock = clock or SystemClock()
    db = Database(settings.database_url)
    services = build_services(settings, rules, db, clock)
    fsm_states: SqlFsmStates | None = None
    fsm_storage: BaseStorage
    isolation: BaseEventIsolation | None = None
    if settings.redis_url:
        redis_storage = RedisStorage.from_url(settings.redis_url)
        fsm_storage = redis_storage
        # Several bot processes share one per-user lock through Redis.
        isolation = RedisEventIsolation(redis=redis_storage.redis)
    else:
        fsm_states = services.fsm_states
        fsm_storage = DatabaseFsmStorage(fsm_states, clock)
    dispatcher = create_dispatcher(
        services=services,
        fsm_storage=fsm_storage,
        version=app_version(),
        started_at=clock.now(),
        events_isolation=isolation,
    )
    bot = create_bot(settings)
    runtime = build_runtime(services, bot, fsm_states=fsm_states)
    dispatcher["sender"] = runtime.sender
    return Application(
        settings=settings,
        rules=rules,
        clock=clock,
        db=db,
        i18n=services.i18n,
        renderer=services.renderer,
        bot=bot,
        dispatcher=dispatcher,
        scheduler=runtime.scheduler,
        fsm_storage=fsm_storage,
        sender=runtime.sender,
        account_jobs=services.account_jobs,
        services=services,
    )


async def run_polling(app: Application) -> None:
    """Migrate, announce the menus, start the periodic jobs and poll until a signal stops us."""
    try:
        revision = await migrate(app.db)
        log.info("database %s at schema %s", app.db.safe_url, revision)
        me = await app.bot.get_me()
        await register_commands(
            app.bot,
            i18n=app.i18n,
            admin_ids=app.settings.admin_ids,
            default_locale=app.settings.default_locale,
        )
        # What is loaded by now lives as long as the process: keep it out of the collector's
        # full passes, whose pauses (a fifth of a second on a big heap) stall paced sending.
        gc.collect()
        gc.freeze()
        app.scheduler.start()
        delivery = asyncio.create_task(app.sender.run(), name="outbox-sender")
        api = await start_shop_api(app)
        log.info(
            "bot @%s (id %s) is polling %s; admins: %s; staff chat: %s",
            me.username,
            me.id,
            app.settings.telegram_api_base,
            ", ".join(map(str, app.settings.admin_ids)) or "none",
            app.settings.staff_chat_id or "not set",
        )
        try:
            await app.dispatcher.start_polling(
                app.bot,
                allowed_updates=app.dispatcher.resolve_used_update_types(),
                tasks_concurrency_limit=UPDATES_IN_FLIGHT,
            )
        finally:
            app.sender.stop()
            await delivery
            if api is not None:
                await api.cleanup()
    finally:
        await shutdown(app)


async def start_shop_api(app: Application) -> web.AppRunner | None:
    """The shop-facing HTTP API, when API_TOKEN is set; the log says which."""
    settings = app.settings
    if settings.api_token is None or not settings.api_token.get_secret_value():
        log.warning("API_TOKEN is not set: the shop's HTTP API is off")
        return None
    runner = await start_api(
        create_api_app(app.services, api_token=settings.api_token.get_secret_value()),
        settings.api_host,
        settings.api_port,
    )
    log.info("shop HTTP API on http://%s:%s", settings.api_host, settings.api_port)
    return runner


async def shutdown(app: Application) -> None:
    if app.scheduler.running:
        app.scheduler.shutdown(wait=False)
    await app.fsm_storage.close()
    await app.bot.session.close()
    await app.db.close()
    log.info("stopped")
