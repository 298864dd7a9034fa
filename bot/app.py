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
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
from aiogram.utils.i18n import I18n
from aiohttp import web

from bot.account_jobs import AccountJobs
from bot.api import create_api_app, start_api
from bot.delivery.sender import OutboxSender
from bot.dispatcher import create_dispatcher
from bot.fsm_storage import DatabaseFsmStorage
from bot.scheduler import Scheduler
from bot.services import Services, build_runtime, build_services
from bot.settings import Settings
from bot.stopping import StopDeadline
from bot.telegram_session import TelegramSession
from bot.webapp import create_webapp, create_webapp_server, mount_webapp, webapp_services
from bot.webapp.services import WebappServices
from handlers.menu import register_commands
from handlers.webapp import set_menu_button
from locales.rendering import Renderer
from scenarios.clock import Clock, SystemClock
from scenarios.rules import Rules
from storage.database import Database
from storage.fsm import SqlFsmStates
from storage.inbox_file import inbox_database, prepare_inbox
from storage.migrate import migrate

log = logging.getLogger(__name__)

# Updates handled at once. Each waits on Telegram for most of its life (100 ms and more per
# reply) holding no transaction and no pooled connection, so this is set by how many may wait
# on Telegram at once, not by the pool: 16 capped a one-reply update at 16 / 0.1 s = 160/s
# and a rating press (then three round trips) at 53/s, whatever the CPU could do. The pool is
# guarded on its own: at most UNIT_CONNECTIONS updates hold a connection at once
# (storage/database.py); the HTTP API, the outbox and the jobs keep the rest. A larger burst
# waits in Telegram's queue.
UPDATES_IN_FLIGHT = 64

# After the stop signal: the sender settles its last sends (giving up on a database that still
# refuses after 10 s), the webhook worker and the HTTP server finish; then connections close.
STOP_SECONDS = 12.0
CLOSE_SECONDS = 5.0


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
    scheduler: Scheduler
    fsm_storage: BaseStorage
    sender: OutboxSender
    account_jobs: AccountJobs
    services: Services


def create_bot(settings: Settings) -> Bot:
    if settings.bot_token is None:
        raise ValueError("BOT_TOKEN is not set")
    session = TelegramSession(api=TelegramAPIServer.from_base(settings.telegram_api_base))
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
    services = build_services(settings, rules, db, clock, inbox_db=inbox_database(db))
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


def settle_heap() -> None:
    """What is loaded by now lives as long as the process: keep it out of the collector's full
    passes, whose pauses (a fifth of a second on a big heap) stall paced sending and updates.
    The benchmarks call it too, to measure the bot as it runs."""
    gc.collect()
    gc.freeze()


async def run_polling(app: Application) -> None:
    """Migrate, announce the menus, start the periodic jobs and poll until a signal stops us."""
    try:
        revision = await migrate(app.db)
        await prepare_inbox(app.services.webhook_inbox.db, app.db)
        log.info("database %s at schema %s", app.db.safe_url, revision)
        me = await app.bot.get_me()
        await register_commands(
            app.bot,
            i18n=app.i18n,
            admin_ids=app.settings.admin_ids,
            default_locale=app.settings.default_locale,
        )
        if app.settings.webapp_url:
            await set_menu_button(
                app.bot,
                webapp_url=app.settings.webapp_url,
                i18n=app.i18n,
                locale=app.settings.default_locale,
            )
        settle_heap()
        app.scheduler.start()
        delivery = asyncio.create_task(app.sender.run(), name="outbox-sender")
        webhooks = app.services.webhooks
        inbox = (
            asyncio.create_task(webhooks.worker.run(), name="webhook-inbox")
            if webhooks.on
            else None
        )
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
            deadline = StopDeadline(STOP_SECONDS)
            app.sender.stop()
            await deadline.finish("the outbox sender", delivery)
            if inbox is not None:
                webhooks.worker.stop()
                await deadline.finish("the store-webhook worker", inbox)
            if api is not None:
                await deadline.finish("the HTTP server", api.cleanup())
    finally:
        await StopDeadline(CLOSE_SECONDS).finish("closing connections", shutdown(app))


async def start_shop_api(app: Application) -> web.AppRunner | None:
    """The shop-facing HTTP API, when API_TOKEN is set, and the Mini App under /app/ when
    WEBAPP_URL is set (alone, with /healthz, if the API is off); the log says which."""
    settings = app.settings
    webapp = start_webapp(app) if settings.webapp_url else None
    if settings.api_token is None or not settings.api_token.get_secret_value():
        log.warning("API_TOKEN is not set: the shop's HTTP API is off")
        if webapp is None and not app.services.webhooks.on:
            return None
        server = create_webapp_server(*webapp) if webapp is not None else web.Application()
    else:
        server = create_api_app(app.services, api_token=settings.api_token.get_secret_value())
        if webapp is not None:
            mount_webapp(server, webapp[0])
    if app.services.webhooks.on:
        app.services.webhooks.mount(server, clock=app.clock)
        log.info("store webhooks on http://%s:%s/webhooks/", settings.api_host, settings.api_port)
    runner = await start_api(server, settings.api_host, settings.api_port)
    log.info("HTTP server on http://%s:%s", settings.api_host, settings.api_port)
    return runner


def start_webapp(app: Application) -> tuple[web.Application, WebappServices]:
    assert app.settings.bot_token is not None
    services = webapp_services(
        app.services, bot=app.bot, bot_token=app.settings.bot_token.get_secret_value()
    )
    log.info("Mini App at %s (served under /app/)", app.settings.webapp_url)
    return create_webapp(services), services


async def shutdown(app: Application) -> None:
    await app.scheduler.stop()
    await app.fsm_storage.close()
    await app.bot.session.close()
    if (inbox_db := app.services.webhook_inbox.db) is not app.db:
        await inbox_db.close()
    await app.db.close()
    log.info("stopped")
