"""The reminder sweep is one periodic job at reminders.tick_seconds, plus a daily learning job."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from aiogram import Bot

from bot.broadcast_progress import BroadcastProgress
from bot.scheduler import create_scheduler
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock
from scenarios.rules import Reminders, Rules
from storage.broadcasts import SqlBroadcasts
from storage.customers import SqlCustomers
from storage.database import Database
from storage.outbox import SqlOutbox
from tests.support.recording_session import RecordingSession
from tests.support.services import services_for


def test_the_sweep_runs_every_tick_and_learning_daily(
    sqlite_db: Database, clock: FixedClock, i18n: CatalogI18n, renderer: Renderer
) -> None:
    rules = Rules(reminders=Reminders(tick_seconds=30))
    bot = Bot("123456:TEST", session=RecordingSession())
    scheduler = create_scheduler(
        rules=rules,
        clock=clock,
        fsm_states=None,
        outbox=SqlOutbox(sqlite_db),
        broadcast_progress=BroadcastProgress(
            broadcasts=SqlBroadcasts(sqlite_db),
            customers=SqlCustomers(sqlite_db),
            bot=bot,
            renderer=renderer,
            i18n=i18n,
            rules=rules,
            clock=clock,
        ),
        reminders=services_for(
            sqlite_db, i18n=i18n, rules=rules, clock=clock, zone=ZoneInfo("UTC")
        ).reminder_sweeper,
    )
    sweep = scheduler.get_job("reminder-sweep")
    learn = scheduler.get_job("reminder-learned-intervals")
    assert sweep is not None and learn is not None
    assert sweep.trigger.interval.total_seconds() == 30
    assert learn.trigger.interval.total_seconds() == 86400
